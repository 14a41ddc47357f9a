"""The centred unitary FFT of :mod:`qmriprep.recon`, one implementation for numpy and torch.

``F x = fftshift(fft(ifftshift(x)))`` over ``axes`` with ``norm="ortho"`` (unitary, so
``F^H = F^-1``); the DC sample sits at index ``n // 2`` of every transformed axis. The array
namespace (:func:`qmriprep.physics.xp`) picks ``numpy.fft`` or ``torch.fft``, whose functions
take the same positional arguments.
"""

from __future__ import annotations

from ..physics import xp

SPATIAL = (-2, -1)


def centred_fft(x, axes=SPATIAL, inverse=False):
    """Centred unitary (inverse) FFT of ``x`` over ``axes``: ``fftshift(fft(ifftshift(x)))``."""
    fft = xp(x).fft
    f = fft.ifftn if inverse else fft.fftn
    return fft.fftshift(f(fft.ifftshift(x, axes), None, axes, "ortho"), axes)
