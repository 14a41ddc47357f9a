"""ISMRMRD XML header <-> BIDS metadata of one k-space file (:mod:`qmriprep.recon.io`).

BIDS units (``EchoTime``, ``RepetitionTimeExcitation`` s, ``FlipAngle`` deg,
``SpoilerGradientAmplitude`` T/m, ``SpoilerGradientDuration`` s, ``MagneticFieldStrength`` T,
``ImagingFrequency`` MHz, ...) map to ``sequenceParameters`` (ms, deg),
``acquisitionSystemInformation``, ``experimentalConditions`` and ``userParameterDouble``
(:data:`USER_DOUBLES`, plus ``EffectiveAcceleration`` on writing). The encoded and the recon
space are the same: matrix ``(X, Y, Z)`` (2-D multi-slice: ``Z = 1`` and ``S`` slices in the
slice limits), field of view matrix times voxel size.
"""

from __future__ import annotations

from ismrmrd import xsd

#: BIDS fields kept as userParameterDouble (SI/BIDS units, same name)
USER_DOUBLES = ("SpoilerGradientAmplitude", "SpoilerGradientDuration", "RefocusingFlipAngle")


def metadata_to_header(shape, zooms, layout, mask, meta):
    """ISMRMRD header of k-space ``shape`` ``(N, X, Y, Z or S)`` (``zooms`` mm, acquired ``mask``
    ``(Y, Z or S)``) with the BIDS fields of ``meta`` (module docstring)."""
    n, nx, ny, nz = shape
    mz = nz if layout == "3d" else 1
    space = xsd.encodingSpaceType(
        matrixSize=xsd.matrixSizeType(x=nx, y=ny, z=mz),
        fieldOfView_mm=xsd.fieldOfViewMm(x=float(nx * zooms[0]), y=float(ny * zooms[1]),
                                         z=float(mz * zooms[2])))
    lim = lambda m: xsd.limitType(minimum=0, maximum=m - 1, center=m // 2)  # noqa: E731
    limits = xsd.encodingLimitsType(kspace_encoding_step_0=lim(nx), kspace_encoding_step_1=lim(ny),
                                    kspace_encoding_step_2=lim(mz),
                                    slice=lim(1 if layout == "3d" else nz))
    accel = mask.size / mask.sum()
    parallel = xsd.parallelImagingType(
        accelerationFactor=xsd.accelerationFactorType(
            kspace_encoding_step_1=max(int(round(accel)), 1), kspace_encoding_step_2=1),
        calibrationMode=xsd.calibrationModeType.EMBEDDED)
    freq = meta.get("ImagingFrequency")  # MHz
    if freq is None and meta.get("MagneticFieldStrength"):
        freq = 42.577478 * float(meta["MagneticFieldStrength"])
    seq = xsd.sequenceParametersType(
        TR=_list(meta.get("RepetitionTimeExcitation"), 1e3),
        TE=_list(meta.get("EchoTime"), 1e3), flipAngle_deg=_list(meta.get("FlipAngle"), 1),
        sequence_type=meta.get("PulseSequenceType"))
    doubles = [xsd.userParameterDoubleType(name=k, value=float(meta[k]))
               for k in USER_DOUBLES if meta.get(k) is not None]
    doubles.append(xsd.userParameterDoubleType(name="EffectiveAcceleration", value=float(accel)))
    return xsd.ismrmrdHeader(
        version=2,
        experimentalConditions=xsd.experimentalConditionsType(
            H1resonanceFrequency_Hz=int(round(float(freq or 0) * 1e6))),
        acquisitionSystemInformation=xsd.acquisitionSystemInformationType(
            systemVendor=meta.get("Manufacturer"), systemModel=meta.get("ManufacturersModelName"),
            systemFieldStrength_T=meta.get("MagneticFieldStrength"), receiverChannels=n),
        encoding=[xsd.encodingType(encodedSpace=space, reconSpace=space, encodingLimits=limits,
                                   trajectory=xsd.trajectoryType.CARTESIAN,
                                   parallelImaging=parallel)],
        sequenceParameters=seq, userParameters=xsd.userParametersType(userParameterDouble=doubles))


def _list(value, scale):
    return [] if value is None else [float(value) * scale]


def header_to_metadata(hdr) -> dict:
    """BIDS metadata (module docstring) of a parsed ISMRMRD header."""
    meta = {}
    seq = hdr.sequenceParameters
    if seq is not None:
        for key, vals, scale in (("RepetitionTimeExcitation", seq.TR, 1e-3),
                                 ("EchoTime", seq.TE, 1e-3), ("FlipAngle", seq.flipAngle_deg, 1)):
            if vals:
                meta[key] = round(float(vals[0]) * scale, 12)
        if seq.sequence_type:
            meta["PulseSequenceType"] = seq.sequence_type
    sysinfo = hdr.acquisitionSystemInformation
    if sysinfo is not None:
        for key, val in (("MagneticFieldStrength", sysinfo.systemFieldStrength_T),
                         ("Manufacturer", sysinfo.systemVendor),
                         ("ManufacturersModelName", sysinfo.systemModel)):
            if val is not None:
                meta[key] = val
    if hdr.experimentalConditions.H1resonanceFrequency_Hz:
        meta["ImagingFrequency"] = hdr.experimentalConditions.H1resonanceFrequency_Hz / 1e6
    if hdr.userParameters is not None:
        meta.update({p.name: p.value for p in hdr.userParameters.userParameterDouble
                     if p.name in USER_DOUBLES})
    enc = hdr.encoding[0]
    meta["MRAcquisitionType"] = "3D" if enc.encodedSpace.matrixSize.z > 1 else "2D"
    return meta
