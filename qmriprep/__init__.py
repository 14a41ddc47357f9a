"""qmriprep: a BIDS-App for quantitative MRI parameter mapping."""

__version__ = "0.1.0"
__packagename__ = "qmriprep"
