"""Test-session settings: one torch/BLAS thread per xdist worker (2 workers share 2 cores), and
every test run from its own temporary folder: Nipype's resource monitor, once a CLI test in the
same worker has switched it on, writes a ``.proc-*`` sample file into the working directory of
every node run in-process, which must not be the repository."""

import os

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _run_in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
