"""The MultiProc plugin of qmriprep runs (qmriprep.cli.multiproc): cached nodes are finished in
the main process without a worker slot, the run leaves the garbage collector as it found it, and
workers come from a fork server unless its socket has no home."""

import gc
import shutil
import tempfile
from pathlib import Path

from nipype.interfaces.utility import Function
from nipype.pipeline import engine as pe

from qmriprep.cli.multiproc import ResumingMultiProc, _fork_server_possible


def _add(x, k):
    return x + k


def _chain(base_dir, n_nodes: int):
    workflow = pe.Workflow(name="chain", base_dir=str(base_dir))
    nodes = [pe.Node(Function(input_names=["x", "k"], output_names=["out"], function=_add), name=f"n{i}")
             for i in range(n_nodes)]
    nodes[0].inputs.x = 0
    for node in nodes:
        node.inputs.k = 1
    workflow.connect([(a, b, [("out", "x")]) for a, b in zip(nodes, nodes[1:])])
    return workflow, nodes


class _Counting(ResumingMultiProc):
    """Counts the jobs sent to worker processes and the scheduling rounds (one per poll)."""

    submitted = rounds = 0

    def _send_procs_to_workers(self, updatehash=False, graph=None):
        type(self).rounds += 1
        return super()._send_procs_to_workers(updatehash=updatehash, graph=graph)

    def _submit_job(self, node, updatehash=False):
        type(self).submitted += 1
        return super()._submit_job(node, updatehash=updatehash)


def test_rerun_finishes_cached_nodes_without_workers_and_gets_the_same_result(tmp_path):
    workflow, _ = _chain(tmp_path, 6)
    _Counting.submitted = 0
    workflow.run(plugin=_Counting({"n_procs": 2}))
    assert _Counting.submitted == 6

    workflow, nodes = _chain(tmp_path, 6)
    _Counting.submitted = _Counting.rounds = 0
    graph = workflow.run(plugin=_Counting({"n_procs": 2}))
    assert _Counting.submitted == 0
    assert _Counting.rounds == 1  # Nipype's MultiProc: one node per round, a poll (2 s) apart
    last = next(n for n in graph.nodes() if n.name == nodes[-1].name)
    assert last.result.outputs.out == 6
    assert gc.get_freeze_count() == 0


def test_a_changed_input_reruns_only_what_depends_on_it(tmp_path):
    workflow, _ = _chain(tmp_path, 4)
    workflow.run(plugin=ResumingMultiProc({"n_procs": 2}))

    workflow, nodes = _chain(tmp_path, 4)
    nodes[2].inputs.k = 10
    _Counting.submitted = 0
    graph = workflow.run(plugin=_Counting({"n_procs": 2}))
    assert _Counting.submitted == 2  # the changed node and the one after it
    last = next(n for n in graph.nodes() if n.name == nodes[-1].name)
    assert last.result.outputs.out == 13


def test_workers_come_from_a_fork_server_unless_its_socket_has_no_home(tmp_path, monkeypatch):
    temp = Path(tempfile.mkdtemp(prefix="q"))  # a short path, as /tmp's are
    monkeypatch.chdir(tmp_path)
    assert _fork_server_possible(str(temp))
    deep = temp / ("d" * 80)
    deep.mkdir()
    assert not _fork_server_possible(str(deep))  # a Unix socket's path is at most 108 bytes
    monkeypatch.chdir(temp)
    assert not _fork_server_possible(str(temp))  # Python's last resort: the current folder
    read_only = tmp_path / "ro"
    read_only.mkdir(mode=0o500)
    monkeypatch.setattr("os.access", lambda path, mode: path != str(read_only))
    assert not _fork_server_possible(str(read_only))
    shutil.rmtree(temp)


def test_a_worker_start_cut_short_by_a_stopping_run_prints_no_traceback():
    """The fork server's hook (qmriprep.cli.worker_start, preloaded there) is silent for a pipe
    the main process closed, and prints any other error."""
    import subprocess
    import sys

    code = ("import qmriprep.cli.worker_start, sys\n"
            "try:\n    raise EOFError('pipe closed')\nexcept EOFError:\n    sys.excepthook(*sys.exc_info())\n"
            "try:\n    raise ValueError('real problem')\nexcept ValueError:\n    sys.excepthook(*sys.exc_info())\n")
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stderr
    assert "real problem" in err and "pipe closed" not in err and err.count("Traceback") == 1
