"""Cluster settings without a cluster: ``--use-plugin`` files, the plugin passed to Nipype and
``LOGNAME`` under ``--cleanenv`` (the live scheduler runs are in ``test_hpc_slurm.py``)."""

import pytest

import os

from qmriprep.cli import execute
from qmriprep.cli.environment import login_name
from qmriprep.cli.parser import build_parser
from qmriprep.config import Config


def _parse(tmp_path, *args):
    return build_parser().parse_args([str(tmp_path), str(tmp_path / "out"), "participant", *args])


def test_plugin_file_is_read_and_given_to_nipype_with_a_login_name(tmp_path, monkeypatch):
    plugin = tmp_path / "plugin.yml"
    plugin.write_text("plugin: SLURMGraph\nplugin_args:\n  sbatch_args: --time=10 --mem=2G\n")
    settings = getattr(_parse(tmp_path, "--use-plugin", str(plugin)), "nipype.plugin")
    assert settings == {"plugin": "SLURMGraph", "plugin_args": {"sbatch_args": "--time=10 --mem=2G"}}
    config = Config()
    config.set("nipype.plugin", settings)
    for var in ("LOGNAME", "USER"):
        monkeypatch.delenv(var, raising=False)
    run_args = execute._plugin(config.nipype)
    assert run_args["plugin"] == "SLURMGraph"
    assert run_args["plugin_args"]["sbatch_args"] == "--time=10 --mem=2G"
    assert os.environ["LOGNAME"]  # nipype names the jobs after it


def test_login_name_is_kept_or_made_up(monkeypatch):
    env = {"LOGNAME": "alice", "USER": "bob"}
    assert login_name(env) == "alice"
    env = {"USER": "bob"}
    assert login_name(env) == "bob" and env["LOGNAME"] == "bob"
    import pwd

    monkeypatch.setattr(pwd, "getpwuid", lambda uid: (_ for _ in ()).throw(KeyError(uid)))
    env = {}
    assert login_name(env).startswith("uid")


def test_multiproc_plugin_args_from_the_file_override_the_defaults(tmp_path):
    config = Config()
    config.nipype.nprocs, config.nipype.mem_gb = 4, 8.0
    config.nipype.plugin = {"plugin": "MultiProc", "plugin_args": {"n_procs": 2}}
    plugin = execute._plugin(config.nipype)["plugin"]
    assert plugin.processors == 2 and plugin.memory_gb == 8.0


@pytest.mark.parametrize("text, problem", [
    ("plugin: [unclosed", "not valid YAML"),
    ("plugin: Nonexistent\n", "not a Nipype plugin"),
    ("plugin_args: {}\n", "needs 'plugin"),
    ("plugin: SLURM\nextra: 1\n", "needs 'plugin"),
])
def test_bad_plugin_file_is_a_command_line_error(tmp_path, capsys, text, problem):
    plugin = tmp_path / "plugin.yml"
    plugin.write_text(text)
    with pytest.raises(SystemExit) as err:
        _parse(tmp_path, "--use-plugin", str(plugin))
    assert err.value.code == 2
    err = capsys.readouterr().err
    assert problem in err and "plugin.yml" in err


def test_processing_nodes_reserve_omp_threads_main_process_nodes_are_not_monitored():
    from nipype.interfaces.utility import IdentityInterface
    from nipype.pipeline import engine as pe

    workflow = pe.Workflow(name="wf")
    work = pe.Node(IdentityInterface(fields=["x"]), name="work")
    passthrough = pe.Node(IdentityInterface(fields=["x"]), name="passthrough", run_without_submitting=True)
    busy = pe.Node(IdentityInterface(fields=["x"]), name="busy", n_procs=4)
    workflow.connect([(work, passthrough, [("x", "x")]), (passthrough, busy, [("x", "x")])])
    execute._set_node_resources(workflow, 3)
    assert (work.n_procs, passthrough.n_procs, busy.n_procs) == (3, 1, 4)
    assert (work.interface.resource_monitor, passthrough.interface.resource_monitor) == (True, False)
