"""Test-session settings: one torch/BLAS thread per xdist worker (2 workers share 2 cores)."""

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(1)
