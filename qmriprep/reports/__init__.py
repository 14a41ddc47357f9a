"""Per-subject HTML reports: mosaics, histograms and in-mask statistics of every map.

The workflow calls :func:`build_report` once per subject after the derivatives are written.
"""

from .subject import build_report

__all__ = ["build_report"]
