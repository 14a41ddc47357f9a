"""Image-quality metrics for reconstructions: with a reference, and without one (real data).

numpy inside; torch tensors are accepted (detached, moved to the CPU). Arrays of any
dimension; where a metric is two-dimensional (SSIM, HFEN, background mask, sharpness) the last
two axes are the image plane ``(H, W)`` and leading axes are a stack (slices, contrasts), as in
:mod:`qmriprep.recon`. ``mask`` (bool, broadcastable) restricts a metric to the region of
interest; it is applied after any filtering, so borders of the region see their neighbours.

With a reference: :func:`nrmse`, :func:`psnr`, :func:`ssim`, :func:`hfen`; reconstructions
known only up to a global scale/phase are first matched with :func:`magnitude_scale_fit`.
Without one: :func:`background_artifact_ratio` (aliasing, noise), :func:`tenengrad_sharpness`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

HFEN_SIGMA = 1.5  # pixels (Ravishankar & Bresler 2011, IEEE TMI 30:1028)


def _np(x) -> np.ndarray:
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _region(x: np.ndarray, mask) -> np.ndarray:
    """Boolean selector of ``x``'s elements in ``mask`` (all when None)."""
    if mask is None:
        return np.ones(x.shape, bool)
    return np.broadcast_to(_np(mask).astype(bool), x.shape)


def _plane(ndim: int, value: float) -> tuple:
    """Per-axis parameter acting only on the last two axes (image plane)."""
    return (0,) * (ndim - 2) + (value, value)


def nrmse(x, ref, mask=None) -> float:
    """``||x - ref|| / ||ref||`` over ``mask``; complex or magnitude, as given."""
    x, ref = _np(x), _np(ref)
    sel = _region(ref, mask)
    return float(np.linalg.norm((x - ref)[sel]) / np.linalg.norm(ref[sel]))


def psnr(x, ref, mask=None) -> float:
    """``10 log10(max|ref|^2 / mean|x - ref|^2)`` in dB over ``mask``; complex or magnitude,
    as given (pass magnitudes for the usual magnitude PSNR); inf for identical images."""
    x, ref = _np(x), _np(ref)
    sel = _region(ref, mask)
    mse = np.mean(np.abs(x - ref)[sel] ** 2)
    with np.errstate(divide="ignore"):
        return float(10.0 * np.log10(np.abs(ref[sel]).max() ** 2 / mse))


def ssim(x, ref, mask=None) -> float:
    """Structural similarity of the magnitudes (Wang et al. 2004, IEEE TIP 13:600).

    ``skimage.metrics.structural_similarity`` (7x7 window) on each 2-D image of the stack, with
    one ``data_range = max|ref| - min|ref|`` for the whole stack; the SSIM map is averaged over
    ``mask`` per image, then over the images with mask pixels (a per-slice mean, not a 3-D
    SSIM: the slice direction of undersampled 3-D data is typically thin or anisotropic).
    Images need at least 7 pixels per side. 1 for identical images.
    """
    from skimage.metrics import structural_similarity

    x, ref = np.abs(_np(x)).astype(np.float64), np.abs(_np(ref)).astype(np.float64)
    sel = _region(ref, mask)
    rng = float(ref.max() - ref.min())
    h, w = ref.shape[-2:]
    values = []
    for xi, ri, mi in zip(x.reshape(-1, h, w), ref.reshape(-1, h, w), sel.reshape(-1, h, w)):
        if mi.any():
            smap = structural_similarity(xi, ri, data_range=rng, full=True)[1]
            values.append(smap[mi].mean())
    return float(np.mean(values))


def hfen(x, ref, mask=None, sigma: float = HFEN_SIGMA) -> float:
    """High-frequency error norm ``||LoG(|x|) - LoG(|ref|)|| / ||LoG(|ref|)||``.

    Laplacian of Gaussian (``sigma`` in pixels, in-plane, kernel radius 7 = the 15x15 kernel
    of Ravishankar & Bresler 2011) of the magnitudes: measures the error in edges and fine
    texture, the part of the image blurring or residual aliasing damages most.
    """
    x, ref = np.abs(_np(x)).astype(np.float64), np.abs(_np(ref)).astype(np.float64)
    lx, lr = _plane_log(x, sigma), _plane_log(ref, sigma)
    sel = _region(ref, mask)
    return float(np.linalg.norm((lx - lr)[sel]) / np.linalg.norm(lr[sel]))


def _plane_log(img: np.ndarray, sigma: float) -> np.ndarray:
    """In-plane Laplacian of Gaussian (``ndimage.gaussian_laplace`` would also add the
    smoothed image of every leading axis with sigma 0)."""
    sig, out = _plane(img.ndim, sigma), 0.0
    for axis in (img.ndim - 1, img.ndim - 2):
        order = [0] * img.ndim
        order[axis] = 2
        out = out + ndimage.gaussian_filter(img, sig, order=order, truncate=7.0 / sigma)
    return out


def magnitude_scale_fit(x, ref, mask=None):
    """Least-squares scale ``a = <x, ref> / <x, x>`` minimising ``||a x - ref||`` over ``mask``.

    Complex when either input is complex (global scale *and* phase), else real. Use it before
    :func:`nrmse` / :func:`psnr` when a reconstruction is defined only up to a global factor
    (different k-space normalisation, coil-combination phase, a network trained on normalised
    data); do not use it when the absolute scale matters (quantitative maps fitted from the
    images are scale-free, but a scale error between contrasts is not removed by one factor).
    Returns ``a``; compare ``a * x`` with ``ref``.
    """
    x, ref = _np(x), _np(ref)
    sel = _region(ref, mask)
    xs, rs = x[sel], ref[sel]
    a = np.vdot(xs, rs) / np.vdot(xs, xs).real
    return complex(a) if np.iscomplexobj(xs) or np.iscomplexobj(rs) else float(a)


def object_mask_otsu(image, dilation: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Object mask of a magnitude image: Otsu threshold, holes filled in-plane, and the same
    mask dilated by ``dilation`` pixels in-plane; returns ``(filled, dilated)``."""
    from skimage.filters import threshold_otsu

    mag = np.abs(_np(image))
    return _fill_and_dilate(mag > threshold_otsu(mag), dilation)


def _fill_and_dilate(mask: np.ndarray, dilation: int) -> tuple[np.ndarray, np.ndarray]:
    plane = np.zeros((1,) * (mask.ndim - 2) + (3, 3), bool)
    plane[..., :, 1] = plane[..., 1, :] = True  # 4-connectivity in the image plane only
    filled = ndimage.binary_fill_holes(mask, structure=plane)
    if dilation == 0:
        return filled, filled
    return filled, ndimage.binary_dilation(filled, structure=plane, iterations=dilation)


def background_artifact_ratio(image, object_mask=None, dilation: int = 3) -> float:
    """No-reference artefact level: ``mean |image|`` outside the dilated object mask divided
    by ``median |image|`` inside the object.

    Ghosts and incoherent aliasing from undersampling (and noise) put signal in the
    background, where a clean image has only noise; lower is better, scale-free. The object
    mask is given or found by Otsu (:func:`object_mask_otsu`); it is hole-filled and dilated
    by ``dilation`` pixels so that edge blurring is not counted as artefact. Compare images of
    the same scan only (the ratio depends on the field of view left empty and on the noise).
    """
    mag = np.abs(_np(image)).astype(np.float64)
    if object_mask is None:
        inside, grown = object_mask_otsu(mag, dilation)
    else:
        given = np.broadcast_to(_np(object_mask).astype(bool), mag.shape)
        inside, grown = _fill_and_dilate(given, dilation)
    outside = ~grown
    if not outside.any() or not inside.any():
        raise ValueError("object mask leaves no background (or no object) to compare")
    return float(mag[outside].mean() / np.median(mag[inside]))


def tenengrad_sharpness(image) -> float:
    """No-reference sharpness: mean squared in-plane Sobel gradient magnitude of ``|image|``
    divided by the squared mean magnitude (Tenengrad; Krotkov 1988, IJCV 1:223), so a global
    scale does not change it.

    Higher means more edge energy: blurring (over-regularisation) lowers it, but noise and
    aliasing raise it too, so read it together with :func:`background_artifact_ratio`.
    """
    mag = np.abs(_np(image)).astype(np.float64)
    g2 = ndimage.sobel(mag, axis=-1) ** 2 + ndimage.sobel(mag, axis=-2) ** 2
    return float(g2.mean() / mag.mean() ** 2)
