"""BIDS-derivatives output for qmriprep: one sink, one path-pattern config for every qMRI suffix.

The niworkflows sink is reused; qmriprep only swaps in its own patterns
(``qmriprep/data/derivatives.json``: R1map, M0map, TB1map, fit-quality ``<map>RMSE`` ... that the
niworkflows defaults lack) and writes into the run's staging folder, which ``cli/run.py`` moves
into the output folder only when the subject finished (no half-written derivatives).
"""

from __future__ import annotations

import json
from collections import defaultdict
from importlib import resources

from niworkflows.interfaces.bids import DerivativesDataSink as _NiwDerivativesDataSink

_CONFIG = json.loads(resources.files("qmriprep").joinpath("data/derivatives.json").read_text())
_DTYPES = defaultdict(lambda: None, {"mask": "uint8", "dseg": "int16"})


class DerivativesDataSink(_NiwDerivativesDataSink):
    """niworkflows' sink with qmriprep's derivative path patterns (own suffixes, no templates)."""

    out_path_base = ""
    _config_entities = frozenset(e["name"] for e in _CONFIG["entities"])
    _config_entities_dict = _CONFIG["entities"]
    _file_patterns = tuple(_CONFIG["default_path_patterns"])
    _default_dtypes = _DTYPES
