"""The names of qmriprep's own estimators and reconstructions (``--estimators KIND:NAME``,
``--recon NAME``, ``desc-<name>``, ``rec-<name>``), written once; the declarations use them."""

VARPRO, NLLS, LOGLINEAR, LINEAR = "varpro", "nlls", "loglinear", "linear"
MIRACLE, SVNN, PINN = "miracle", "svnn", "pinn"
COMPLEX = "complex"  #: suffix of the networks fed the real and imaginary parts
QDESS = "qdess"
SCANCNN = "scancnn"  #: scan-specific unsupervised CNN (seed 001)
ZSSSL, CGSENSE, ZEROFILLED = "zsssl", "cgsense", "zerofilled"
MATCHING, SUBSPACECNN = "matching", "subspacecnn"  #: MR fingerprinting
HYBRID, SUPERVISED = "hybrid", "supervised"  #: maps from weighted images (seed 002): edge loss or not
