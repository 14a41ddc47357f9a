"""Command-line parsing: BIDS-App arguments and option validation."""

import json

import pytest

from qmriprep.cli.parser import build_parser


def _parse(tmp_path, *args):
    return build_parser().parse_args([str(tmp_path), str(tmp_path / "out"), "participant", *args])


def test_parser_strips_sub_prefix_and_reads_estimators(tmp_path):
    opts = _parse(tmp_path, "--participant-label", "sub-01", "02",
                  "--estimators", "mese:varpro,nlls", "vfa:all")
    assert getattr(opts, "execution.participant_label") == ["01", "02"]
    assert dict(opts.estimators) == {"mese": ["varpro", "nlls"], "vfa": ["nlls", "linear"]}


@pytest.mark.parametrize("bad", ["mese:magic", "flair:varpro", "mese"])
def test_parser_rejects_unknown_estimators(tmp_path, bad, capsys):
    with pytest.raises(SystemExit) as exc:
        _parse(tmp_path, "--estimators", bad)
    assert exc.value.code == 2
    assert "estimators" in capsys.readouterr().err


def test_parser_reads_bids_filter_file(tmp_path):
    filters = tmp_path / "filters.json"
    filters.write_text(json.dumps({"vfa": {"acquisition": "hr"}}))
    assert getattr(_parse(tmp_path, "--bids-filter-file", str(filters)), "execution.bids_filters") == {
        "vfa": {"acquisition": "hr"}}


def test_parser_rejects_broken_filter_file(tmp_path, capsys):
    filters = tmp_path / "filters.json"
    filters.write_text("{not json")
    with pytest.raises(SystemExit):
        _parse(tmp_path, "--bids-filter-file", str(filters))
    assert "filters.json: not valid JSON" in capsys.readouterr().err


def test_parser_missing_bids_dir(tmp_path, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([str(tmp_path / "nope"), str(tmp_path / "out"), "participant"])
    assert "path does not exist" in capsys.readouterr().err


def test_every_option_destination_is_a_config_path(tmp_path):
    """Options write to the config path they name, so a saved TOML holds every setting."""
    from qmriprep.config import Config

    config = Config()
    dotted = [a for a in build_parser()._actions if "." in a.dest]
    assert len(dotted) > 30
    for action in dotted:
        assert config.section(action.dest.rsplit(".", 1)[0]) is not None, action.dest
        config.set(action.dest, getattr(config.section(action.dest.rsplit(".", 1)[0]),
                                        action.dest.rsplit(".", 1)[1]))


@pytest.mark.parametrize("args", [["--nprocs", "0"], ["--nprocs", "-1"], ["--omp-nthreads", "-2"],
                                  ["--omp-nthreads", "two"]])
def test_parser_rejects_non_positive_resources(tmp_path, args, capsys):
    with pytest.raises(SystemExit) as exc:
        _parse(tmp_path, *args)
    assert exc.value.code == 2 and "positive whole number" in capsys.readouterr().err


def test_given_options_override_the_config_file_and_the_preset(tmp_path):
    from qmriprep.cli.run import _build_config

    bids = tmp_path / "bids"
    bids.mkdir()
    saved = tmp_path / "saved.toml"

    def parse(*args):
        return build_parser().parse_args([str(bids), str(tmp_path / "out"), "participant", *args])

    first = _build_config(parse("--nn-epochs", "7", "--recon-preset", "seed", "--random-seed", "3"))
    assert first.nn.max_epochs == 7 and first.recon.zsssl.features == 64 and first.recon.zsssl.seed == 3
    first.to_toml(saved)
    again = _build_config(parse("--config-file", str(saved), "--recon-steps", "4", "--no-mel"))
    assert again.nn.max_epochs == 7 and again.recon.preset == "seed" and again.recon.zsssl.features == 64
    assert again.recon.zsssl.steps_per_epoch == 4 and again.recon.zsssl.mel is False


def test_quick_preset_is_the_measured_recipe(tmp_path):
    """``--recon-preset quick``: the fast network, 100 steps from lr 8e-3 down a cosine (RESULTS'
    R = 8 figures were measured with exactly these settings: benchmarks/bench_zsssl_subspace.py
    --preset quick); an epoch option given with it still wins."""
    from qmriprep.cli.run import _build_config
    from qmriprep.recon.pipeline import PRESETS

    bids = tmp_path / "bids"
    bids.mkdir()
    args = [str(bids), str(tmp_path / "out"), "participant", "--recon-preset", "quick"]
    z = _build_config(build_parser().parse_args(args)).recon.zsssl
    assert (z.lr, z.max_epochs * z.steps_per_epoch, z.schedule) == (8e-3, 100, "cosine") and z.patience >= z.max_epochs
    assert all(getattr(z, k) == PRESETS["fast"][k] for k in ("features", "blocks", "n_unrolls", "cg_iter"))
    assert z.subspace  # the contrast subspace (RESULTS, issue 14)
    z = _build_config(build_parser().parse_args([*args, "--recon-epochs", "4", "--no-recon-subspace"])).recon.zsssl
    assert z.max_epochs == 4 and z.lr == 8e-3 and not z.subspace
    seed = _build_config(build_parser().parse_args([*args, "--recon-preset", "seed"])).recon.zsssl
    assert not seed.subspace  # the paper's set-up


def test_a_kind_named_twice_in_estimators_keeps_both_lists(tmp_path):
    from qmriprep.cli.run import _build_config

    bids = tmp_path / "bids"
    bids.mkdir()
    config = _build_config(build_parser().parse_args([
        str(bids), str(tmp_path / "out"), "participant", "--estimators", "bssfp:miracle", "mese:varpro",
        "bssfp:svnn,miracle"]))
    assert config.workflow.estimators["bssfp"] == ["miracle", "svnn"]
    assert config.workflow.estimators["mese"] == ["varpro"]
