"""A run with a missing, unwritable HOME and an empty environment (a container or cluster node)."""

import os
import subprocess
import sys

import pytest

from qmriprep.cli.environment import CACHES, private_caches
from qmriprep.synth.dataset import DatasetSpec, write_dataset


def test_unset_caches_go_to_the_work_dir_and_set_ones_are_kept(tmp_path):
    env = {"TORCH_HOME": "/shared/torch"}
    chosen = private_caches(tmp_path / "work", env)
    assert env["TORCH_HOME"] == "/shared/torch" and "TORCH_HOME" not in chosen
    assert set(chosen) == set(CACHES) - {"TORCH_HOME"}
    assert all(os.path.isdir(p) and p.startswith(str(tmp_path / "work")) for p in chosen.values())


@pytest.mark.e2e
def test_run_with_unwritable_home_and_empty_environment(tmp_path):
    bids = write_dataset(tmp_path / "bids", DatasetSpec(downsample=8, n_slices=4, modalities=("MESE",)))
    env = {"HOME": "/proc/qmriprep-no-home", "PATH": "/usr/bin:/bin"}  # mkdir fails there, even as root
    proc = subprocess.run([sys.executable, "-m", "qmriprep.cli.run", str(bids), str(tmp_path / "out"),
                           "participant", "-w", str(tmp_path / "work"), "--nprocs", "1",
                           "--omp-nthreads", "1"], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "out" / "sub-01" / "anat" / "sub-01_desc-varpro_T2map.nii.gz").exists()
    assert (tmp_path / "out" / "sub-01.html").exists()
    assert "Traceback" not in proc.stderr and "mkdir -p failed" not in proc.stderr
    assert (tmp_path / "work" / ".cache" / "matplotlib").is_dir()
