"""A run on a read-only machine, as in a container: the whole file system (input dataset, the
installed package, HOME, the current folder, /tmp) is mounted read-only in a private mount
namespace, except the output folder, the work folder and one cache folder the user declared;
the environment is empty and HOME does not exist. The run must succeed, so qmriprep writes
nothing anywhere else."""

import shutil
import subprocess
import sys

import pytest

from qmriprep.synth.dataset import DatasetSpec, write_dataset

pytestmark = pytest.mark.e2e


def _namespace_unavailable() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare (util-linux) not installed"
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True,
                           text=True)
    if probe.returncode:
        return f"no private mount namespace here (needs root): {probe.stderr.strip()}"
    return None


def _read_only_run(writable, argv, env, cwd) -> subprocess.CompletedProcess:
    """``argv`` in a mount namespace where only the ``writable`` folders can be written."""
    binds = "".join(f'mount --bind "{d}" "{d}" && ' for d in writable)
    script = f'{binds}mount -o remount,bind,ro / && exec "$@"'
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script,
                           "sh", *argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=900)


def test_run_writes_only_to_output_work_and_the_declared_cache(tmp_path):
    reason = _namespace_unavailable()
    if reason:
        pytest.skip(reason)
    bids = write_dataset(tmp_path / "bids", DatasetSpec(downsample=8, n_slices=4, modalities=("MESE",)))
    out, work, cache, cwd = (tmp_path / name for name in ("out", "work", "cache", "cwd"))
    for folder in (out, work, cache, cwd):
        folder.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "MPLCONFIGDIR": str(cache / "matplotlib")}
    qmriprep = [sys.executable, "-m", "qmriprep.cli.run", str(bids), str(out)]
    proc = _read_only_run((out, work, cache), [*qmriprep, "participant", "-w", str(work), "--nprocs", "2",
                                               "--omp-nthreads", "1", "--estimators", "mese:loglinear"],
                          env, cwd)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert (out / "sub-01" / "anat" / "sub-01_desc-loglinear_T2map.nii.gz").exists()
    assert (out / "sub-01.html").exists()
    # the declared cache is used (not replaced by one in the work dir); the others go to the work dir
    assert not (work / ".cache" / "matplotlib").exists() and (work / ".cache" / "templateflow").is_dir()
    assert not list(cwd.iterdir())
    group = _read_only_run((out, work, cache), [*qmriprep, "group", "-w", str(work)], env, cwd)
    assert group.returncode == 0, group.stdout[-3000:] + group.stderr[-3000:]
    assert (out / "group" / "qmriprep_maps.tsv").exists()
