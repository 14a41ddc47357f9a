"""Command-line parsing: BIDS-App arguments and option validation."""

import json

import pytest

from qmriprep.cli.parser import build_parser


def _parse(tmp_path, *args):
    return build_parser().parse_args([str(tmp_path), str(tmp_path / "out"), "participant", *args])


def test_parser_strips_sub_prefix_and_reads_estimators(tmp_path):
    opts = _parse(tmp_path, "--participant-label", "sub-01", "02",
                  "--estimators", "mese:varpro,nlls", "vfa:all")
    assert opts.participant_label == ["01", "02"]
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
    assert _parse(tmp_path, "--bids-filter-file", str(filters)).bids_filter_file == {
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
