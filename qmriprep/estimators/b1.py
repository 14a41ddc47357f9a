"""B1+ maps: closed forms of DAM, AFI and TFL, and scanner maps passed through (not choosable)."""

from __future__ import annotations

from .spec import Estimator, Output, register

for _kind, _name, _algorithm, _cites in (
        ("TB1DAM", "dam", "Double angle method: B1 = arccos(S(2a) / (2 S(a))) / a", ("dam",)),
        ("TB1AFI", "afi", "Actual flip angle imaging: B1 = arccos((r n - 1)/(n - r)) / a, r = S2/S1, "
                          "n = TR2/TR1", ("afi",)),
        ("TB1TFL", "tfl", "Siemens turbo-FLASH B1 map: B1 = famp / (10 a_nominal)", ("tfl",)),
        ("TB1map", "scanner", "B1+ map provided by the scanner, resampled", ())):
    register(Estimator(kind=_kind, name=_name, algorithm=_algorithm, citations=_cites, default=True,
                       choosable=False, node="qmriprep.interfaces.b1:B1Map",
                       outputs=(Output("out_raw", "TB1map", datatype="fmap"),
                                Output("out_b1", "TB1map", desc="smooth", datatype="fmap"))))
