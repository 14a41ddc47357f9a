"""Memory each processing node declares to Nipype (``node.mem_gb``), from the size of its series.

    mem_gb = WORKER_GB + copies x series_gb

``series_gb`` is the collection's images as float64 (raw k-space: zero-filled, as complex128),
read from the headers; ``copies`` is how many such copies the node's interface holds at its peak,
declared by the interface class as ``mem_copies`` (default :data:`DEFAULT_COPIES`; copies of the
k-space for interfaces with ``reads_kspace``) and calibrated on whole-brain runs
(``benchmarks/RESULTS.md``, issue 12). MultiProc starts a node only when its
estimate fits in the free part of ``--mem``; a collection with a node that could never fit is
refused while the workflow is built, before any work (not an OOM kill mid-run).
"""

from __future__ import annotations

import math

import nibabel as nb

from ..bids.sidecars import relpath
from ..errors import InputError

#: resident size of a worker before its step: what it inherits from the main process at fork
#: (torch, nipype, niworkflows imported) and keeps from earlier steps (measured 0.3-0.8 GB)
WORKER_GB = 0.9
#: float64 copies of the series a node holds at its peak when its interface declares nothing
DEFAULT_COPIES = 1.0
_GB = 1024.0 ** 3


def series_gb(collection) -> tuple[float, float]:
    """GB of the collection's series in memory: ``(images, k-space)``. Images as float64
    (part-phase ones too); raw k-space as complex128 once zero-filled (coils x matrix x slices,
    from the ISMRMRD headers), its images one float64 volume per file (0 without k-space)."""
    if collection.kind == "kspace":
        from ..recon.io import kspace_size

        sizes = [kspace_size(f) for f in collection.files]
        return 8 * sum(v for _, v in sizes) / _GB, 16 * sum(c * v for c, v in sizes) / _GB
    # headers only: nibabel maps the data lazily
    values = sum(math.prod(nb.load(str(f)).shape) for f in (*collection.files, *collection.phase_files))
    return 8 * values / _GB, 0.0


def declare_memory(workflow, collection, limit_gb: float = 0.0) -> None:
    """Set ``mem_gb`` of every node of ``workflow`` that runs in a worker; with ``limit_gb``
    (``--mem``), an :class:`InputError` naming the collection if a node's estimate exceeds it."""
    images, kspace = series_gb(collection)
    nodes = [n for n in workflow._get_all_nodes() if not n.run_without_submitting]  # noqa: SLF001
    for node in nodes:
        copies = float(getattr(node.interface, "mem_copies", DEFAULT_COPIES))
        size = kspace if getattr(node.interface, "reads_kspace", False) else images
        node._mem_gb = round(WORKER_GB + copies * size, 2)  # noqa: SLF001 (Node.mem_gb has no setter)
    largest = max(nodes, key=lambda n: n.mem_gb, default=None)
    if limit_gb and largest is not None and largest.mem_gb > limit_gb:
        raise InputError(relpath(collection.files[0], collection.root),
                         f"its {collection.name} step '{largest.name}' needs about {largest.mem_gb:.1f} GB "
                         f"({max(images, kspace):.2f} GB of series data), more than --mem {limit_gb:g} GB: "
                         "raise --mem, or process this collection on a machine with more memory")

