"""Reconstruction of undersampled multi-coil Cartesian k-space (seed 000, SCIENCE.md section 4).

Pure torch/numpy core, no Nipype. Conventions shared by every module here:

- images ``x``: ``(B, C, H, W)`` complex, ``B`` independent 2-D problems (slices of a 2-D
  multi-slice scan, or readout positions of a 3-D scan after the inverse FFT along the readout),
  ``C`` contrasts (echoes, flip angles) reconstructed jointly;
- coil sensitivities ``maps``: ``(B, N, H, W)`` complex, shared by the contrasts;
- k-space ``y``: ``(B, C, N, H, W)`` complex, zero where not acquired;
- sampling ``mask``: real 0/1, broadcastable to ``(B, C, H, W)`` (``(1, C, H, W)`` for a 3-D
  scan, whose mask is the same for every readout position);
- ``H`` is the first phase-encode direction, ``W`` the readout (2-D scans) or the second
  phase-encode direction (3-D scans).

Modules: :mod:`.fft` (the centred unitary FFT, numpy and torch), :mod:`.sense` (SENSE operator,
CG, zero-filled and CG-SENSE), :mod:`.mel` (CG data consistency with implicit backward),
:mod:`.unrolled` (residual CNN and the unrolled network), :mod:`.masks` (undersampling masks,
ZS-SSL splits), :mod:`.zsssl` (losses and the ZSSSL / SSL / SL training modes), :mod:`.metrics`,
:mod:`.coils` (ESPIRiT through sigpy, calibration region), :mod:`.io` (ISMRMRD files to the arrays
above and back to volumes) and :mod:`.ismrmrd_header` (ISMRMRD XML header <-> BIDS metadata).
"""
