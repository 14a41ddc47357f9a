"""The estimator registry (:mod:`.spec`) with qmriprep's own declarations loaded.

``from qmriprep import estimators; estimators.get("MESE", name)`` etc. Adding an estimator: a
core function, one :func:`register` call (in a module imported below, or in your own code before
the run), its test, and its BibTeX entry in ``data/boilerplate.bib``.
"""

# declarations, in the order the CLI lists them
from . import multiecho  # noqa: F401  isort: skip
from . import vfa  # noqa: F401  isort: skip
from . import bssfp  # noqa: F401  isort: skip
from . import dess  # noqa: F401  isort: skip
from . import mrf  # noqa: F401  isort: skip
from . import b1  # noqa: F401  isort: skip
from . import recon  # noqa: F401  isort: skip
from . import hybrid  # noqa: F401  isort: skip
from .spec import (  # noqa: F401
    Estimator,
    Output,
    Reconstruction,
    b1_kinds,
    choices,
    default_estimators,
    estimators,
    get,
    kind_of,
    reconstruction,
    reconstructions,
    register,
    resolve,
    unregister,
)
