"""qmriprep on a live SLURM scheduler (a single-node cluster on localhost, ``hpc_slurm``): the
documented array script (one subject per task, then the group level as a dependent job) and
``--use-plugin`` running one subject's nodes as cluster jobs."""

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import hpc_slurm
from qmriprep.synth.dataset import DatasetSpec, write_dataset

pytestmark = pytest.mark.e2e
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
QMRIPREP = f"{sys.executable} -m qmriprep.cli.run"  # the venv's qmriprep (no Apptainer here)
FAST = ["--estimators", "mese:loglinear", "--align-series", "never"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = hpc_slurm.unavailable()
    if reason:
        pytest.skip(reason)
    cluster = hpc_slurm.start_cluster(tmp_path_factory.mktemp("slurm"))
    yield cluster
    cluster.stop()


def _dataset(root: Path, subjects) -> Path:
    return write_dataset(root / "bids", DatasetSpec(subjects=subjects, downsample=8, n_slices=4,
                                                    modalities=("MESE",)))


def _check_t2(bids: Path, out: Path, subject: str) -> None:
    """The published T2 map equals the phantom's truth in white matter (noise-free, log-linear
    fit of an exact mono-exponential)."""
    truth = bids / "derivatives" / "truth" / f"sub-{subject}" / "anat"
    wm = np.asarray(nib.load(truth / f"sub-{subject}_dseg.nii.gz").dataobj) == 3
    t2 = nib.load(out / f"sub-{subject}" / "anat" / f"sub-{subject}_desc-loglinear_T2map.nii.gz").get_fdata()
    ref = nib.load(truth / f"sub-{subject}_T2map.nii.gz").get_fdata()
    assert wm.sum() > 10
    np.testing.assert_allclose(t2[wm], ref[wm], rtol=0.02)


def test_array_script_runs_each_subject_then_the_group_level(cluster, tmp_path):
    bids = _dataset(tmp_path, ("01", "02"))
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**cluster.env, "QMRIPREP": QMRIPREP, "SBATCH_OPTS": "--cpus-per-task=1 --mem=1500M --time=30"}
    ids = subprocess.run(["bash", str(SCRIPTS / "slurm_submit.sh"), str(bids), str(out), str(work), *FAST],
                         env=env, check=True, capture_output=True, text=True).stdout.split()
    states = cluster.wait(ids, timeout=1200)
    logs = "".join(p.read_text() for p in sorted((work / "slurm-logs").glob("*.out")))
    assert states == {f"{ids[0]}_0": "COMPLETED", f"{ids[0]}_1": "COMPLETED", ids[1]: "COMPLETED"}, logs
    for subject in ("01", "02"):
        _check_t2(bids, out, subject)
        assert (out / f"sub-{subject}.html").stat().st_size > 1000
    group = out / "group" / "qmriprep_maps.tsv"
    assert group.exists(), logs
    text = group.read_text()
    assert "sub-01_desc-loglinear_T2map" in text and "sub-02_desc-loglinear_T2map" in text
    # the group job started after both subjects were published
    published = max((out / f"sub-{s}" / ".qmriprep-complete").stat().st_mtime for s in ("01", "02"))
    assert group.stat().st_mtime >= published


def test_use_plugin_runs_nodes_as_cluster_jobs_and_publishes_after_them(cluster, tmp_path):
    bids = _dataset(tmp_path, ("01",))
    out, work = tmp_path / "out", tmp_path / "work"
    plugin = tmp_path / "slurm.yml"
    plugin.write_text("plugin: SLURM\nplugin_args:\n  sbatch_args: --mem=500M --time=10\n"
                      "  poll_sleep_duration: 1\n")
    env = {k: v for k, v in cluster.env.items() if k not in ("LOGNAME", "USER")}  # as under --cleanenv
    proc = subprocess.run([*QMRIPREP.split(), str(bids), str(out), "participant", "-w", str(work),
                           "--use-plugin", str(plugin), *FAST], env=env, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _check_t2(bids, out, "01")
    jobs = cluster.jobs(name_contains="qmriprep_wf")
    names = {job["JobName"].split(".")[0] for job in jobs}  # nipype: <node>.<workflows>.root
    assert {"mask", "fit_loglinear"} <= names, names  # the heavy nodes ran as cluster jobs
    assert all(job["JobState"] == "COMPLETED" for job in jobs), jobs
    published = (out / "sub-01" / ".qmriprep-complete").stat().st_mtime
    assert max(job["EndEpoch"] for job in jobs) <= published + 1  # SLURM times have 1 s resolution
