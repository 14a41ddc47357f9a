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


def test_templateflow_home_made_here_lists_the_templates_without_the_skeleton(tmp_path):
    env = {}
    private_caches(tmp_path / "work", env)
    home = tmp_path / "work" / ".cache" / "templateflow"
    files = [p for p in home.rglob("*") if p.is_file()]
    assert 10 < len(files) < 100 and all(p.name == "template_description.json" for p in files)
    code = ("import templateflow.api as api; t = api.templates(); "
            "assert 'MNI152NLin2009cAsym' in t and len(t) == %d, t" % len(files))
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len([p for p in home.rglob("*") if p.is_file()]) == len(files)  # nothing unpacked
