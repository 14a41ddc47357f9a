"""The bad-input corpus: broken datasets and command lines through the CLI.

Every case asserts the exit code (65 bad input, 2 bad command line), that the one error line
names the file (or option) and the field or problem, that no traceback is printed, and that
nothing but logs was written to the output folder. The checks run before any processing
(``--boilerplate-only`` stops right after them), so the corpus takes seconds per case.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from badinputs import (ANAT, FMAP, KSPACE, data, datasets, edit_json, kspace_data, kspace_xml,
                       rename_label, replace, self_link, set_voxels, write)
from qmriprep.cli.run import main
from qmriprep.errors import EXIT_INPUT, EXIT_USAGE

MESE2, MESE2J = f"{ANAT}/sub-01_echo-2_MESE.nii.gz", f"{ANAT}/sub-01_echo-2_MESE.json"
MEGRE3J = f"{ANAT}/sub-01_echo-3_MEGRE.json"
VFA2, VFA2J = f"{ANAT}/sub-01_flip-2_VFA.nii.gz", f"{ANAT}/sub-01_flip-2_VFA.json"
DAM1J, DAM2J = f"{FMAP}/sub-01_flip-1_TB1DAM.json", f"{FMAP}/sub-01_flip-2_TB1DAM.json"
AFI1J, AFI2J = f"{FMAP}/sub-01_acq-tr1_TB1AFI.json", f"{FMAP}/sub-01_acq-tr2_TB1AFI.json"
FAMP, FAMPJ = f"{FMAP}/sub-01_acq-famp_TB1TFL.nii.gz", f"{FMAP}/sub-01_acq-famp_TB1TFL.json"
B1MAP, B1MAPJ = f"{FMAP}/sub-01_TB1map.nii.gz", f"{FMAP}/sub-01_TB1map.json"
MAG, MAGJ = f"{ANAT}/sub-01_acq-pc4_part-mag_bSSFP.nii.gz", f"{ANAT}/sub-01_acq-pc4_part-mag_bSSFP.json"
PHASE, PHASEJ = (f"{ANAT}/sub-01_acq-pc4_part-phase_bSSFP.{e}" for e in ("nii.gz", "json"))
DESS1J, DESS2 = f"{ANAT}/sub-01_echo-1_DESS.json", f"{ANAT}/sub-01_echo-2_DESS.nii.gz"
DESS2J = f"{ANAT}/sub-01_echo-2_DESS.json"
H5 = f"{KSPACE}/sub-01_echo-2_MESE.h5"


def js(rel, **changes):
    return lambda root: edit_json(root / rel, **changes)


def image(rel, fn):
    return lambda root: replace(root / rel, fn(data(root / rel)))


def voxels(rel, value, fraction=1.0):
    return lambda root: set_voxels(root / rel, value, fraction)


def raw(rel, content: bytes):
    return lambda root: (root / rel).write_bytes(content)


def truncated(rel):
    def edit(root):
        payload = gzip.decompress((root / rel).read_bytes())
        (root / rel).write_bytes(gzip.compress(payload[: len(payload) // 2]))
    return edit


def each(rels, fn):
    return lambda root: [fn(root / r) for r in rels]  # noqa: E731


def shifted(rel, mm=30.0):
    def edit(root):
        import nibabel as nib
        img = nib.load(root / rel)
        affine = img.affine.copy()
        affine[:3, 3] += mm
        replace(root / rel, np.asarray(img.dataobj), affine)
    return edit


def _all_mese_constant(root):
    for p in root.glob(f"{ANAT}/*_MESE.nii.gz"):
        set_voxels(p, 100.0)


def _zero_acquisitions(acqs):
    return acqs[:0]


def _nan_kspace(acqs):
    acqs["data"][0][:] = np.nan
    return acqs


CASES = [  # id, dataset, edit, extra arguments, expected exit code, expected phrases in the error
    # --- MESE: sidecars
    ("mese-te-missing", "MESE", js(MESE2J, EchoTime=None), [], 65, [MESE2J, "EchoTime"]),
    ("mese-te-ms", "MESE", lambda r: [edit_json(p, EchoTime=round(float(i) * 10, 3)) for i, p in
                                      enumerate(sorted(r.glob(f"{ANAT}/*_MESE.json")), 1)],
     [], 65, ["MESE.json", "EchoTime", "milliseconds"]),
    ("mese-te-text", "MESE", js(MESE2J, EchoTime="abc"), [], 65, [MESE2J, "EchoTime"]),
    ("mese-te-negative", "MESE", js(MESE2J, EchoTime=-0.02), [], 65, [MESE2J, "EchoTime"]),
    ("mese-te-zero", "MESE", js(MESE2J, EchoTime=0), [], 65, [MESE2J, "EchoTime"]),
    ("mese-te-duplicate", "MESE", js(MESE2J, EchoTime=0.01), [], 65, ["MESE", "EchoTime"]),
    ("mese-json-array", "MESE", lambda r: write(r / MESE2J, "[0.003]"), [], 65,
     [MESE2J, "not a JSON object", "array"]),
    ("mese-json-broken", "MESE", lambda r: write(r / MESE2J, '{"EchoTime": 0.02,'), [], 65,
     [MESE2J, "not valid JSON"]),
    ("mese-json-selflink", "MESE", lambda r: self_link(r / MESE2J), [], 65,
     [MESE2J, "symbolic link"]),
    # --- MESE: images
    ("mese-empty", "MESE", raw(MESE2, b""), [], 65, [MESE2, "empty"]),
    ("mese-garbage", "MESE", raw(MESE2, b"not a nifti file at all"), [], 65, [MESE2, "NIfTI"]),
    ("mese-truncated", "MESE", truncated(MESE2), [], 65, [MESE2, "cannot be read"]),
    ("mese-2d", "MESE", image(MESE2, lambda a: a[..., 0]), [], 65, [MESE2, "dimensions"]),
    ("mese-4d", "MESE", image(MESE2, lambda a: np.stack([a, a], -1)), [], 65, [MESE2, "volumes"]),
    ("mese-grid", "MESE", image(MESE2, lambda a: a[:-1]), [], 65, [MESE2, "grid"]),
    ("mese-affine", "MESE", shifted(MESE2), [], 65, [MESE2, "affine"]),
    ("mese-all-zero", "MESE", voxels(MESE2, 0.0), [], 65, [MESE2, "all zeros"]),
    ("mese-constant-echo", "MESE", voxels(MESE2, 100.0), [], 65, [MESE2, "same value (100)"]),
    ("mese-all-constant", "MESE", _all_mese_constant, [], 65, ["MESE.nii.gz", "same value (100)"]),
    ("mese-mostly-nan", "MESE", voxels(MESE2, np.nan, 0.8), [], 65, [MESE2, "NaN or infinite"]),
    ("mese-image-selflink", "MESE", lambda r: self_link(r / MESE2), [], 65, [MESE2, "symbolic link"]),
    ("mese-acq-nonascii", "MESE", lambda r: rename_label(r, "sub-01_echo", "sub-01_acq-é_echo"), [], 65,
     ["acq-", "'é'", "not a BIDS label"]),
    ("subject-nonascii", "MESE", lambda r: rename_label(r, "sub-01", "sub-café"), [], 65,
     ["sub-café", "not a BIDS label"]),
    # --- MEGRE
    ("megre-te-missing", "MEGRE", js(MEGRE3J, EchoTime=None), [], 65, [MEGRE3J, "EchoTime"]),
    ("megre-te-duplicate", "MEGRE", js(MEGRE3J, EchoTime=0.003), [], 65, [MEGRE3J, "EchoTime", "duplicated"]),
    ("megre-te-long", "MEGRE", js(MEGRE3J, EchoTime=13), [], 65, [MEGRE3J, "EchoTime", "milliseconds"]),
    ("megre-te-list", "MEGRE", js(MEGRE3J, EchoTime=[0.01, 0.02]), [], 65, [MEGRE3J, "EchoTime"]),
    ("megre-nan-image", "MEGRE", voxels(f"{ANAT}/sub-01_echo-3_MEGRE.nii.gz", np.inf, 0.9), [], 65,
     ["sub-01_echo-3_MEGRE.nii.gz", "NaN or infinite"]),
    # --- VFA
    ("vfa-flip-missing", "VFA", js(VFA2J, FlipAngle=None), [], 65, [VFA2J, "FlipAngle"]),
    ("vfa-flip-negative", "VFA", js(VFA2J, FlipAngle=-8), [], 65, [VFA2J, "FlipAngle"]),
    ("vfa-flip-zero", "VFA", js(VFA2J, FlipAngle=0), [], 65, [VFA2J, "FlipAngle"]),
    ("vfa-flip-text", "VFA", js(VFA2J, FlipAngle="eight"), [], 65, [VFA2J, "FlipAngle"]),
    ("vfa-flip-radians", "VFA", lambda r: [edit_json(p, FlipAngle=a) for p, a in zip(
        sorted(r.glob(f"{ANAT}/*_VFA.json")), (0.05, 0.14, 0.26, 0.35))], [], 65,
     ["VFA.json", "FlipAngle", "radians"]),
    ("dam-flip-radians", "TB1DAM", lambda r: [edit_json(r / DAM1J, FlipAngle=0.52),
                                              edit_json(r / DAM2J, FlipAngle=1.05)], [], 65,
     [DAM1J, "FlipAngle", "radians"]),
    ("vfa-flip-duplicate", "VFA", js(VFA2J, FlipAngle=3), [], 65, ["VFA", "FlipAngle"]),
    ("vfa-tr-mismatch", "VFA", js(VFA2J, RepetitionTimeExcitation=0.03), [], 65,
     ["VFA", "RepetitionTime"]),
    ("vfa-tr-missing", "VFA", js("VFA.json", RepetitionTimeExcitation=None), [], 65,
     ["VFA", "RepetitionTime"]),
    ("vfa-tr-ms", "VFA", js("VFA.json", RepetitionTimeExcitation=15), [], 65,
     ["VFA.json", "RepetitionTime", "milliseconds"]),
    ("vfa-constant-flip", "VFA", voxels(VFA2, 7.0), [], 65, [VFA2, "same value (7)"]),
    ("vfa-one-flip", "VFA", lambda r: [p.unlink() for p in r.glob(f"{ANAT}/*_flip-[234]_VFA.*")], [],
     65, ["VFA", "flip"]),
    # --- B1+ maps
    ("dam-ratio", "TB1DAM", js(DAM2J, FlipAngle=100), [], 65, ["TB1DAM", "FlipAngle"]),
    ("dam-flip-missing", "TB1DAM", js(DAM1J, FlipAngle=None), [], 65, [DAM1J, "FlipAngle"]),
    ("dam-grid", "TB1DAM", image(f"{FMAP}/sub-01_flip-2_TB1DAM.nii.gz", lambda a: a[:, :-1]), [], 65,
     ["sub-01_flip-2_TB1DAM.nii.gz", "grid"]),
    ("afi-tr-order", "TB1AFI", js(AFI2J, RepetitionTimeExcitation=0.01), [], 65,
     ["TB1AFI", "RepetitionTime"]),
    ("afi-tr-missing", "TB1AFI", js(AFI1J, RepetitionTimeExcitation=None), [], 65,
     [AFI1J, "RepetitionTime"]),
    ("afi-flip-differs", "TB1AFI", js(AFI2J, FlipAngle=45), [], 65, ["TB1AFI", "FlipAngle"]),
    ("tfl-flip-missing", "TB1TFL", js(FAMPJ, FlipAngle=None), [], 65, [FAMPJ, "FlipAngle"]),
    ("tfl-famp-zero", "TB1TFL", voxels(FAMP, 0.0), [], 65, [FAMP, "all zeros"]),
    ("b1map-percent-as-fraction", "TB1map", image(B1MAP, lambda a: a / 100), [], 65,
     [B1MAP, "percent", "look like a fraction"]),
    ("b1map-fraction-as-percent", "TB1map", js(B1MAPJ, Units="fraction"), [], 65,
     [B1MAP, "fraction", "look like percent"]),
    ("b1map-units-unknown", "TB1map", js(B1MAPJ, Units="Hz"), [], 65, [B1MAPJ, "Units"]),
    ("b1map-units-missing", "TB1map", js(B1MAPJ, Units=None), [], 65, [B1MAPJ, "Units"]),
    ("b1map-negative", "TB1map", image(B1MAP, lambda a: -a), [], 65, [B1MAP, "negative"]),
    ("b1map-outside-fov", "TB1map", shifted(B1MAP, 500.0), [], 65, [B1MAP, "overlap"]),
    # --- bSSFP
    ("bssfp-increments-missing", "bSSFP", js(MAGJ, RFPhaseIncrement=None), [], 65,
     ["bSSFP", "RFPhaseIncrement"]),
    ("bssfp-increments-count", "bSSFP", js(MAGJ, RFPhaseIncrement=[45, 135, 225]), [], 65,
     ["bSSFP", "RFPhaseIncrement"]),
    ("bssfp-phase-degrees", "bSSFP", image(PHASE, np.rad2deg), [], 65, [PHASE, "radians"]),
    ("bssfp-flip-missing", "bSSFP", each([MAGJ, PHASEJ], lambda p: edit_json(p, FlipAngle=None)), [],
     65, ["bSSFP", "FlipAngle", "missing"]),
    ("bssfp-tr-missing", "bSSFP", each([MAGJ, PHASEJ], lambda p: edit_json(
        p, RepetitionTimeExcitation=None)), [], 65, ["bSSFP", "RepetitionTime", "missing"]),
    ("bssfp-flip-radians", "bSSFP", each([MAGJ, PHASEJ], lambda p: edit_json(p, FlipAngle=0.26)), [],
     65, ["bSSFP", "FlipAngle", "radians"]),
    ("bssfp-mag-volumes", "bSSFP", image(MAG, lambda a: a[..., :3]), [], 65,
     [MAGJ, "RFPhaseIncrement", "3 volumes"]),
    # --- DESS
    ("dess-te-missing", "DESS", js(DESS1J, EchoTime=None), [], 65, [DESS1J, "EchoTime"]),
    ("dess-one-echo", "DESS", lambda r: [p.unlink() for p in r.glob(f"{ANAT}/*_echo-2_DESS.*")], [],
     65, ["DESS", "echo"]),
    ("dess-tr-missing", "DESS", each([DESS1J, DESS2J], lambda p: edit_json(
        p, RepetitionTimeExcitation=None)), [], 65, ["DESS", "RepetitionTime", "missing"]),
    ("dess-grid", "DESS", image(DESS2, lambda a: a[:-1]), [], 65, [DESS2, "grid"]),
    # --- raw k-space (ISMRMRD)
    ("kspace-te-text", "kspace", lambda r: kspace_xml(r / H5, r"<TE>[^<]*</TE>", "<TE>abc</TE>"), [],
     65, [H5, "TE", "abc", "not a valid float"]),
    ("kspace-matrix-text", "kspace", lambda r: kspace_xml(r / H5, r"<x>[^<]*</x>", "<x>abc</x>"), [],
     65, [H5, "matrixSize", "not a valid int"]),
    ("kspace-field-text", "kspace", lambda r: kspace_xml(
        r / H5, r"<systemFieldStrength_T>[^<]*<", "<systemFieldStrength_T>three<"), [], 65,
     [H5, "systemFieldStrength_T"]),
    ("kspace-not-hdf5", "kspace", raw(H5, b"not hdf5"), [], 65, [H5, "HDF5"]),
    ("kspace-no-acquisitions", "kspace", lambda r: kspace_data(r / H5, _zero_acquisitions), [], 65,
     [H5, "acquisitions"]),
    ("kspace-nan", "kspace", lambda r: kspace_data(r / H5, _nan_kspace), [], 65, [H5, "NaN"]),
    ("kspace-sidecar-disagrees", "kspace", js(H5.replace(".h5", ".json"), EchoTime=0.5), [], 65,
     ["sub-01_echo-2_MESE", "EchoTime"]),
    ("kspace-echo-missing", "kspace", lambda r: [p.unlink() for p in r.glob(f"{KSPACE}/*_echo-3_MESE.*")],
     [], 65, ["echo-3", "k-space"]),
]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return datasets(tmp_path_factory.mktemp("corpus"))


def _written(out: Path) -> list[str]:
    """Files in the output folder other than logs."""
    if not os.path.exists(out):
        return []
    return sorted(str(p.relative_to(out)) for p in out.rglob("*")
                  if p.is_file() and p.relative_to(out).parts[0] != "logs")


def _check(code, text, out, want_code, needles):
    assert code == want_code, text
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if "ERROR" in line or "error:" in line]
    assert errors, text
    for needle in needles:
        assert any(needle in line for line in errors), (needle, errors)
    assert _written(out) == []


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_dataset(case, pristine, tmp_path, capsys):
    _, kind, edit, extra, want_code, needles = case
    root = shutil.copytree(pristine[kind], tmp_path / "bids", symlinks=True)
    edit(root)
    sub = next(p.name for p in root.glob("sub-*"))
    out = tmp_path / "out"
    code = main([str(root), str(out), "participant", "-w", str(tmp_path / "work"), "--nprocs", "1",
                 "--boilerplate-only", "--skip-bids-validation", "--participant-label", sub[4:], *extra])
    captured = capsys.readouterr()
    _check(code, captured.out + captured.err, out, want_code, needles)


def _file(tmp, name="taken"):
    (tmp / name).write_text("a file")
    return tmp / name


CLI_CASES = [  # id, arguments after the BIDS folder (OUT: the output, TMP: a scratch folder), code, phrases
    ("out-is-file", lambda t: [_file(t), "participant"], 65, ["taken", "is a file"]),
    ("out-under-file", lambda t: [_file(t) / "out", "participant"], 65, ["taken", "is a file", "cannot be made"]),
    ("out-name-too-long", lambda t: [t / ("x" * 300), "participant"], 65, ["folder name of 300 characters"]),
    ("out-path-too-long", lambda t: [Path(t, *["y" * 200] * 20), "participant"], 65,
     ["output folder path is", "characters long"]),
    ("out-inside-input", lambda t: ["BIDS/derivatives/q", "participant"], 65, ["must not be the input BIDS folder"]),
    ("work-is-file", lambda t: [t / "out", "participant", "-w", _file(t)], 65, ["taken", "is a file", "work folder"]),
    ("participant-unknown", lambda t: [t / "out", "participant", "--participant-label", "99"], 65,
     ["'99' not found"]),
    ("participant-nonascii", lambda t: [t / "out", "participant", "--participant-label", "é"], 65, ["'é' not found"]),
    ("filter-key-unknown", lambda t: [t / "out", "participant", "--bids-filter-file",
                                      _json(t, {"t9map": {}})], 65, ["t9map", "not a collection kind"]),
    ("nprocs-zero", lambda t: [t / "out", "participant", "--nprocs", "0"], 2, ["--nprocs", "positive"]),
    ("nprocs-negative", lambda t: [t / "out", "participant", "--nprocs", "-1"], 2, ["--nprocs", "positive"]),
    ("omp-negative", lambda t: [t / "out", "participant", "--omp-nthreads", "-2"], 2, ["--omp-nthreads", "positive"]),
    ("estimator-unknown", lambda t: [t / "out", "participant", "--estimators", "mese:magic"], 2,
     ["--estimators", "magic"]),
    ("filter-not-json", lambda t: [t / "out", "participant", "--bids-filter-file", _file(t)], 2,
     ["--bids-filter-file", "not valid JSON"]),
    ("filter-array", lambda t: [t / "out", "participant", "--bids-filter-file", _json(t, [1])], 2,
     ["--bids-filter-file", "JSON object"]),
    ("level-unknown", lambda t: [t / "out", "subject"], 2, ["analysis_level", "subject"]),
]


def _json(tmp, obj):
    write(tmp / "filter.json", obj)
    return tmp / "filter.json"


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_bad_command_line(case, pristine, tmp_path, capsys):
    _, args, want_code, needles = case
    root = shutil.copytree(pristine["MESE"], tmp_path / "bids")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    argv = [str(a).replace("BIDS", str(root)) for a in args(scratch)]
    if "-w" not in argv:
        argv += ["-w", str(tmp_path / "work")]
    try:
        code = main([str(root), *argv, "--nprocs", "1", "--boilerplate-only"]
                    if "--nprocs" not in argv else [str(root), *argv, "--boilerplate-only"])
    except SystemExit as exc:  # argparse: exit 2 with its usage message
        code = exc.code
    captured = capsys.readouterr()
    _check(code, captured.out + captured.err, Path(argv[0]), want_code, needles)


@pytest.mark.parametrize("problem", ["not-bids", "description-array", "missing"])
def test_bad_bids_folder(problem, pristine, tmp_path, capsys):
    root = shutil.copytree(pristine["MESE"], tmp_path / "bids")
    if problem == "not-bids":
        (root / "dataset_description.json").unlink()
    elif problem == "description-array":
        write(root / "dataset_description.json", "[]")
    else:
        root = tmp_path / "absent"
    try:
        code = main([str(root), str(tmp_path / "out"), "participant", "--boilerplate-only"])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    needles = {"not-bids": ["bids", "dataset_description.json is missing"],
               "description-array": ["dataset_description.json", "not a JSON object"],
               "missing": ["absent", "does not exist"]}[problem]
    _check(code, captured.out + captured.err, tmp_path / "out", EXIT_USAGE if problem == "missing"
           else EXIT_INPUT, needles)


def test_read_only_output_folder(pristine, tmp_path, capsys, monkeypatch):
    """Permission denied on the output folder (as root, which ignores modes, os.access says so)."""
    root = shutil.copytree(pristine["MESE"], tmp_path / "bids")
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    if os.geteuid() == 0:
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != out and real(p, mode, **kw))
    code = main([str(root), str(out), "participant", "-w", str(tmp_path / "work"), "--boilerplate-only"])
    captured = capsys.readouterr()
    _check(code, captured.out + captured.err, out, EXIT_INPUT, [str(out), "not writable"])
