"""The ZS-SSL start network qmriprep ships (qmriprep.recon.pipeline.shipped_init) and when the
workflow uses it."""

import dataclasses
from pathlib import Path

from qmriprep.config import Config
from qmriprep.recon.pipeline import PRESETS, SHIPPED_INIT, shipped_init
from qmriprep.recon.zsssl import ReconSettings, load_model


def _fast(**changes):
    return dataclasses.replace(ReconSettings(**PRESETS["fast"]), **changes)


def test_the_shipped_network_is_the_recorded_one_and_fits_only_its_architecture():
    path = shipped_init(8, _fast())
    assert path and Path(path).is_file()
    model, meta = load_model(path)
    assert meta["sha256"] == SHIPPED_INIT[8][1]
    assert meta["hparams"]["n_contrasts"] == 8
    assert shipped_init(16, _fast()) is None  # no network for 16 contrasts
    assert shipped_init(8, ReconSettings()) is None  # the seed preset's architecture differs
    assert shipped_init(8, _fast(features=4)) is None


def test_the_workflow_starts_from_it_only_when_asked(tmp_path):
    from qmriprep.workflows.recon import _recon_node
    from qmriprep import estimators

    method = estimators.reconstruction("zsssl")
    config = Config()
    assert not _recon_node(method, config, 8).inputs.init_model  # default: from scratch
    config.recon.pretrained = True  # --recon-pretrained
    assert _recon_node(method, config, 8).inputs.init_model == shipped_init(8, config.recon.zsssl)
    assert not _recon_node(method, config, 4).inputs.init_model  # no network for 4 contrasts
    given = tmp_path / "model.pt"
    given.write_bytes(b"")
    config.recon.init = str(given)  # --recon-init wins
    assert _recon_node(method, config, 8).inputs.init_model == str(given)
