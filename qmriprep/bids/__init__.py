"""What a subject has, with what protocol, what corrects what, and why.

A pure layer (pybids, nibabel; no Nipype) that runs before any workflow is built:

- :mod:`~qmriprep.bids.layout`: open the dataset, list subjects, read BIDS filters;
- :mod:`~qmriprep.bids.collection`: the :class:`Collection` record;
- :mod:`~qmriprep.bids.collections` and :mod:`~qmriprep.bids.kspace`: find and group a
  subject's qMRI collections (images, raw k-space), record the reason for every decision;
- :mod:`~qmriprep.bids.b1choice`: the default B1+ map of each flip-angle-dependent collection;
- :mod:`~qmriprep.bids.plan`: the frozen run plan of a subject (estimators, B1+ decisions);
- :mod:`~qmriprep.bids.names`: the one BIDS file-name parser;
- :mod:`~qmriprep.bids.sidecars`: read sidecar JSON with the inheritance principle, remembering
  which file set each field;
- :mod:`~qmriprep.bids.metadata`: required sidecar fields, BIDS units to SI once, protocol
  builders;
- :mod:`~qmriprep.bids.protocols`: the typed, checked protocols;
- :mod:`~qmriprep.bids.validate`: checks on the image data (shape, grid, NaN, all-zero, B1+
  field of view).
"""

from .b1choice import choose_b1
from .collection import Collection
from .collections import find_collections
from .layout import list_subjects, load_layout
from .metadata import build_protocol
from .plan import B1Decision, CollectionPlan, SubjectPlan, plan_subject
from .protocols import (
    AFIProtocol,
    B1MapProtocol,
    BSSFPProtocol,
    DAMProtocol,
    DESSProtocol,
    MultiEchoProtocol,
    TFLProtocol,
    VFAProtocol,
)
from .sidecars import Sidecar
from .validate import check_b1_overlap, check_collection_data

__all__ = [
    "AFIProtocol", "B1Decision", "B1MapProtocol", "BSSFPProtocol", "Collection", "CollectionPlan", "DAMProtocol", "DESSProtocol",
    "MultiEchoProtocol", "Sidecar", "TFLProtocol", "VFAProtocol", "build_protocol",
    "check_b1_overlap", "check_collection_data", "choose_b1", "find_collections",
    "list_subjects", "load_layout", "plan_subject", "SubjectPlan",
]
