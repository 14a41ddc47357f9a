"""Progress lines: throttled per step, readable durations, and no empty lines for MapNode items."""

import logging

import pytest

from qmriprep.utils import progress
from qmriprep.utils.progress import Progress, duration


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def lines():
    handler, logger = Lines(), logging.getLogger("qmriprep")  # qmriprep.progress propagates here
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(progress.LEVEL)  # (setLevel also clears the loggers' isEnabledFor caches)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_durations():
    assert [duration(s) for s in (4.4, 65, 3725, float("nan"))] == ["4 s", "1 min 05 s", "1 h 02 min", "?"]


def test_a_step_writes_its_first_line_then_one_per_interval_and_the_last(lines):
    step = Progress("fit", 1000, unit="voxels")
    step.every_s = 3600.0
    assert step.update(100) and not step.update(200) and not step.update(900)
    assert step.update(1000, "all", final=True)
    assert lines[0].startswith("fit 100/1,000 voxels (0 s elapsed, ~") and lines[0].endswith("left)")
    assert lines[1] == "fit 1,000/1,000 voxels: all (0 s elapsed)" and len(lines) == 2
    step.every_s = 0.0
    assert step.update(300, left_s=7200, at_most=True) and lines[-1].endswith("at most 2 h 00 min left)")


def test_cli_progress_names_subject_and_step_and_skips_mapnode_items(lines):
    from nipype.interfaces.utility import IdentityInterface
    from nipype.pipeline import engine as pe

    from qmriprep.cli.execute import _progress

    node = pe.Node(IdentityInterface(fields=["a"]), name="fit_miracle")
    node._hierarchy = "qmriprep_wf.sub_01_wf.bssfp_acqpc12_wf"
    item = pe.Node(IdentityInterface(fields=["a"]), name="_ds_rec0")  # a MapNode's item
    for status in ("start", "end"):
        _progress(node, status)
        _progress(item, status)
    assert lines == ["sub-01 | bssfp_acqpc12_wf.fit_miracle started", "sub-01 | bssfp_acqpc12_wf.fit_miracle done"]
