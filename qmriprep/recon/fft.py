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


def centring_phases(n: int):
    """``(pre, post)`` of one axis of length ``n`` (numpy complex128): the centred FFT without
    shifts, ``F x = post * fft(pre * x)`` (ortho), from the shift theorem with ``a = n // 2``:
    ``pre[m] = exp(2 pi i a m / n)``, ``post[k] = exp(2 pi i (k - a) a / n)``; exactly
    ``(-1)^m`` and ``(-1)^(k - a)`` for even ``n``. The inverse is ``conj(pre) * ifft(conj(post) * y)``.
    """
    import numpy as np

    a, idx = n // 2, np.arange(n)
    if n % 2 == 0:
        return (1.0 - 2.0 * (idx % 2)).astype(complex), (1.0 - 2.0 * ((idx - a) % 2)).astype(complex)
    return np.exp(2j * np.pi * a * idx / n), np.exp(2j * np.pi * (idx - a) * a / n)
