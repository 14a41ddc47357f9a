"""Settings object: TOML round trip and unknown keys."""

import pytest

from qmriprep.config import Config


def test_config_toml_round_trip(tmp_path):
    config = Config()
    config.execution.participant_label = ["01", "02"]
    config.workflow.estimators["mese"] = ["nlls", "loglinear"]
    config.seeds.random_seed = 42
    config.recon.zsssl.max_epochs = 3
    config.nn.snr = 25.0
    path = config.to_toml(tmp_path / "log" / "qmriprep.toml")
    again = Config.from_toml(path)
    assert again.to_dict() == config.to_dict()


def test_config_rejects_unknown_setting(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[workflow]\nnot_a_setting = 1\n")
    with pytest.raises(KeyError, match="workflow.not_a_setting"):
        Config.from_toml(path)


def test_config_rejects_unknown_nested_setting(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[recon.zsssl]\nnot_a_setting = 1\n")
    with pytest.raises(KeyError, match="recon.zsssl.not_a_setting"):
        Config.from_toml(path)


def test_config_defaults_come_from_the_registry_and_the_presets():
    from qmriprep import estimators
    from qmriprep.recon.pipeline import PRESETS

    config = Config()
    assert config.workflow.estimators == estimators.default_estimators()
    assert all(getattr(config.recon.zsssl, k) == v for k, v in PRESETS["fast"].items())
