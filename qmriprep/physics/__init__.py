"""Signal models, written once for numpy arrays and torch tensors alike.

Each function dispatches on its inputs (:func:`xp`) so the same formula simulates data
(numpy), forms losses (torch, differentiable) and serves as the forward model of fits.
SI units throughout: seconds, radians, B1+ as a fraction of nominal.
"""

from __future__ import annotations

import numpy as np


def xp(*arrays):
    """Array namespace of the inputs: ``torch`` if any is a tensor, else ``numpy``."""
    for a in arrays:
        if type(a).__module__.startswith("torch"):
            import torch

            return torch
    return np
