"""Per-subject HTML reports (mosaics, histograms and in-mask statistics of every map) and the
group table of map statistics.

The workflow calls :func:`build_report` once per subject after the derivatives are written;
the group level calls :func:`write_group_summary`.
"""

from .group import write_group_summary
from .subject import ReportContext, build_report

__all__ = ["ReportContext", "build_report", "write_group_summary"]
