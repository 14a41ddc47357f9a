"""Crash safety: whole-or-nothing publishing, stale staging, subject locks, killed and stopped runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from qmriprep.cli.outputs import MARKER, SubjectLocks, open_staging, publish_subject
from qmriprep.cli.run import main
from qmriprep.errors import EXIT_INPUT, EXIT_PROCESSING
from qmriprep.synth.dataset import DatasetSpec, write_dataset


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _write(path: Path, text="x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_publish_replaces_the_subject_folder_keeping_logs_and_other_sessions(tmp_path):
    out = tmp_path / "out"
    for rel in ("sub-01/ses-1/anat/old_T2map.nii.gz", "sub-01/ses-2/anat/kept_T1map.nii.gz",
                "sub-01/log/run0/qmriprep.toml", "sub-01/figures/old.svg"):
        _write(out / rel)
    staging, lock = open_staging(out, "run1")
    _write(staging / "sub-01/ses-1/anat/new_T2map.nii.gz")
    publish_subject(staging, out, "01", run_uuid="run1", sessions=["1"])
    os.close(lock)
    assert _tree(out / "sub-01") == {"ses-1/anat/new_T2map.nii.gz", "ses-2/anat/kept_T1map.nii.gz",
                                     "log/run0/qmriprep.toml", MARKER}
    assert json.loads((out / "sub-01" / MARKER).read_text())["run"] == "run1"
    assert not (staging / "sub-01").exists() and not (staging / ".old-sub-01").exists()


def test_stale_staging_is_removed_and_an_interrupted_publish_restored(tmp_path):
    out = tmp_path / "out"
    stale = out / ".qmriprep-staging-dead"
    # killed between the two renames: the old folder moved away, the new one complete beside it
    _write(stale / ".old-sub-01" / "old_T2map.nii.gz")
    _write(stale / "sub-01" / "new_T2map.nii.gz")
    _write(stale / "sub-01" / MARKER, "{}")
    _write(stale / "sub-02" / "partial_T1map.nii.gz")  # a subject that never finished
    staging, lock = open_staging(out, "run2")
    os.close(lock)
    assert not stale.exists() and staging.is_dir()
    assert _tree(out / "sub-01") == {"new_T2map.nii.gz", MARKER}
    assert not (out / "sub-02").exists()


class _Died(BaseException):
    """The process dying at that instruction."""


@pytest.mark.parametrize("rename", [1, 2], ids=["before-the-old-moves", "between-the-renames"])
def test_a_run_dying_while_it_publishes_leaves_a_whole_subject(tmp_path, monkeypatch, rename):
    """Death at the first or second directory rename of the publish: the folder visible is the
    old whole one, or, after the next start's recovery, the new whole one; never a mix."""
    import qmriprep.cli.outputs as outputs

    out = tmp_path / "out"
    _write(out / "sub-01" / "anat" / "old_T2map.nii.gz")
    staging, lock = open_staging(out, "dying")
    _write(staging / "sub-01" / "anat" / "new_T2map.nii.gz")
    calls, real = [], os.replace

    def replace(src, dst):  # counts the directory renames (the marker is written with one too)
        calls.extend([src] if os.path.isdir(src) else [])
        if len(calls) == rename:
            raise _Died()
        real(src, dst)

    monkeypatch.setattr(outputs.os, "replace", replace)
    with pytest.raises(_Died):
        publish_subject(staging, out, "01", run_uuid="dying")
    monkeypatch.setattr(outputs.os, "replace", real)
    visible = _tree(out / "sub-01") if (out / "sub-01").exists() else set()
    assert visible in ({"anat/old_T2map.nii.gz"}, set())
    os.close(lock)  # the process is gone: the kernel releases its lock
    _, lock2 = open_staging(out, "next")
    os.close(lock2)
    want = {"anat/old_T2map.nii.gz"} if rename == 1 else {"anat/new_T2map.nii.gz", MARKER}
    assert _tree(out / "sub-01") == want


def test_an_old_unlocked_half_made_staging_folder_is_removed(tmp_path):
    out = tmp_path / "out"
    old, young = out / ".qmriprep-new-dead", out / ".qmriprep-new-starting"
    for folder in (old, young):
        folder.mkdir(parents=True)
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    _, lock = open_staging(out, "run3")
    os.close(lock)
    assert not old.exists() and young.exists()  # a young one may be a run starting now


def test_a_live_runs_staging_folder_is_left_alone(tmp_path):
    out = tmp_path / "out"
    staging, lock = open_staging(out, "live")
    _write(staging / "sub-01" / "a_T1map.nii.gz")
    other, lock2 = open_staging(out, "second")
    assert (staging / "sub-01" / "a_T1map.nii.gz").exists()
    os.close(lock)
    os.close(lock2)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("crash") / "bids",
                         DatasetSpec(downsample=8, n_slices=4, modalities=("MESE", "VFA", "TB1DAM")))


def test_a_second_run_on_a_locked_subject_is_refused(small, tmp_path, capsys):
    out = tmp_path / "out"
    with SubjectLocks(out, ["01"], "other-run"):
        code = main([str(small), str(out), "participant", "-w", str(tmp_path / "work"), "--nprocs", "1"])
    msg = capsys.readouterr().out
    assert code == EXIT_INPUT
    assert "sub-01: is being processed by another qmriprep run (pid" in msg and "other-run" in msg
    assert not [p for p in out.rglob("*.nii.gz")]


def _start(bids, out, work, *extra):
    code = "import sys; from qmriprep.cli.run import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-c", code, str(bids), str(out), "participant", "-w",
                             str(work), "--nprocs", "2", "--omp-nthreads", "1", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _descendants(pid: int) -> list[int]:
    """The processes under ``pid``: the fork server, the resource tracker and the workers."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie is dead (waiting for init to reap it)


def _staged(out: Path) -> bool:
    return any(p.name.endswith(".nii.gz") for p in out.glob(".qmriprep-staging-*/**/*"))


def _wait_for_workers(proc, lines: list[str], ready=lambda: True) -> list[int]:
    """Read the run's output until a node started, ``ready()`` and the worker processes exist."""
    deadline = time.monotonic() + 300
    for line in proc.stdout:
        lines.append(line)
        if any(" started" in x for x in lines) and ready():
            while time.monotonic() < deadline:
                workers = _descendants(proc.pid)
                if len(workers) > 2:  # more than the fork server and the resource tracker
                    return workers
                time.sleep(0.1)
        assert time.monotonic() < deadline, "".join(lines)
    raise AssertionError("the run ended before a node started:\n" + "".join(lines))


def _no_survivors(workers):
    deadline = time.monotonic() + 15
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [w for w in workers if _alive(w)]


@pytest.fixture(scope="module")
def clean_run(small, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "out"
    assert main([str(small), str(out), "participant", "-w", str(out.parent / "work"), "--nprocs", "1"]) == 0
    return out


def _maps(out: Path) -> dict:
    import nibabel as nib

    return {p.relative_to(out).as_posix(): np.asarray(nib.load(p).dataobj)
            for p in sorted((out / "sub-01").rglob("*.nii.gz"))}


@pytest.mark.parametrize("moment", ["first-node", "derivatives-staged"])
def test_killed_run_leaves_no_partial_subject_nor_worker_and_the_rerun_succeeds(small, clean_run, tmp_path,
                                                                                 moment):
    """SIGKILL of the main process once ``moment`` nodes started: no derivative visible, no worker
    alive, and the rerun (which removes the stale staging folder) gives the clean run's maps."""
    out, work = tmp_path / "out", tmp_path / "work"
    proc = _start(small, out, work)
    lines: list[str] = []
    staged = moment == "derivatives-staged"
    workers = _wait_for_workers(proc, lines, (lambda: _staged(out)) if staged else (lambda: True))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert _no_survivors(workers) == []
    assert _staged(out) or not staged
    assert not [p for p in (out / "sub-01").rglob("*.nii.gz")], "".join(lines)  # staged, not visible
    assert not (out / "sub-01" / MARKER).exists()
    assert list(out.glob(".qmriprep-staging-*"))  # left by the killed run...
    code = main([str(small), str(out), "participant", "-w", str(work), "--nprocs", "1"])
    assert code == 0
    assert not list(out.glob(".qmriprep-staging-*"))  # ...and removed by the rerun
    assert (out / "sub-01" / MARKER).is_file()
    rerun, clean = _maps(out), _maps(clean_run)
    assert rerun.keys() == clean.keys() and len(clean) > 10
    for name, array in clean.items():
        np.testing.assert_array_equal(rerun[name], array, err_msg=name)


def test_sigterm_stops_the_run_cleanly(small, tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    proc = _start(small, out, work)
    lines: list[str] = []
    workers = _wait_for_workers(proc, lines)
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)
    text = "".join(lines) + rest
    assert proc.returncode == EXIT_PROCESSING, text
    assert "stopped by SIGTERM" in text and "Traceback" not in text
    assert _no_survivors(workers) == []
    assert not list(out.glob(".qmriprep-staging-*"))
    assert not [p for p in out.rglob("*.nii.gz")]


def test_two_runs_on_different_subjects_share_the_output_and_work_folders(tmp_path):
    bids = write_dataset(tmp_path / "bids", DatasetSpec(subjects=("01", "02"), downsample=8, n_slices=4,
                                                        modalities=("MESE",)))
    out, work = tmp_path / "out", tmp_path / "work"
    procs = [_start(bids, out, work, "--participant-label", label) for label in ("01", "02")]
    texts = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], texts
    for label in ("01", "02"):
        assert (out / f"sub-{label}" / MARKER).is_file()
        assert list((out / f"sub-{label}" / "anat").glob("*_T2map.nii.gz"))
        assert (out / f"sub-{label}.html").is_file()
    assert json.loads((out / "dataset_description.json").read_text())["DatasetType"] == "derivative"
    assert not list(out.glob(".qmriprep-staging-*")) and not list(out.rglob(".*.tmp"))


def test_a_swallowed_interrupt_still_ends_the_run(tmp_path):
    """A library catching the Interrupted exception must not keep the run alive: the timer armed by
    the signal runs the clean-ups and exits 1."""
    marker = tmp_path / "cleaned"
    code = f"""
import os, signal, time
from pathlib import Path
from qmriprep.cli.processes import Interrupted, interruptible
with interruptible(grace=0.5) as cleanups:
    cleanups.append(lambda: Path({str(marker)!r}).write_text("yes"))
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)
    except Interrupted:
        pass  # swallowed, as a broad except would
    time.sleep(30)
"""
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_PROCESSING, proc.stderr
    assert time.monotonic() - t0 < 20  # not the 30 s sleep
    assert marker.read_text() == "yes"
    assert "stopped by SIGTERM" in proc.stderr
