"""What a subject has, with what protocol, what corrects what, and why.

A pure layer (pybids, nibabel; no Nipype) that runs before any workflow is built:

- :mod:`~qmriprep.bids.collections`: find and group a subject's qMRI collections, choose the
  B1+ map for each flip-angle-dependent collection, record the reason for every decision;
- :mod:`~qmriprep.bids.metadata`: required sidecar fields, BIDS units to SI once, typed
  protocols;
- :mod:`~qmriprep.bids.validate`: checks on the image data (shape, grid, NaN, all-zero, B1+
  field of view).
"""

from .collections import Collection, choose_b1, find_collections, list_subjects, load_layout
from .metadata import (
    AFIProtocol,
    B1MapProtocol,
    BSSFPProtocol,
    DAMProtocol,
    DESSProtocol,
    MultiEchoProtocol,
    Sidecar,
    TFLProtocol,
    VFAProtocol,
    build_protocol,
)
from .validate import check_b1_overlap, check_collection_data

__all__ = [
    "AFIProtocol", "B1MapProtocol", "BSSFPProtocol", "Collection", "DAMProtocol", "DESSProtocol",
    "MultiEchoProtocol", "Sidecar", "TFLProtocol", "VFAProtocol", "build_protocol",
    "check_b1_overlap", "check_collection_data", "choose_b1", "find_collections",
    "list_subjects", "load_layout",
]
