"""Bad inputs: each gives exit code 3, a one-line message naming the file and the problem,
and writes nothing into the output folder. Also the CLI's help, version and options."""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from swigapp.cli import run as cli
from swigapp.cli.parser import build_parser
from swigapp.io.bids import InputError, check_label

ANAT = "sub-01/anat"


@pytest.fixture
def dataset(tiny_dataset, tmp_path):
    """A writable copy of the tiny dataset (without its truth derivatives)."""
    copy = tmp_path / "bids"
    shutil.copytree(tiny_dataset, copy, ignore=shutil.ignore_patterns("derivatives"))
    return copy


def _run(bids, out, *extra):
    return cli.main([str(bids), str(out), "participant", "--skip-bids-validation",
                     "-w", str(out.parent / "work"), *extra])  # fmt: skip


def _expect_input_error(capsys, bids, out, *needles, extra=()):
    rc = _run(bids, out, *extra)
    err = capsys.readouterr().err
    assert rc == 3, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("swigapp: error:")
    for needle in needles:
        assert needle in line, (needle, line)
    assert not out.exists() or not any(out.iterdir()), "output written on bad input"
    return line


def _rewrite(path, fn):
    img = nib.load(path)
    data = fn(np.asarray(img.dataobj, dtype=np.float32))
    nib.save(nib.Nifti1Image(data, img.affine), path)


def test_missing_maps(dataset, tmp_path, capsys):
    # a subset of the maps is accepted (tests/test_map_subsets.py); none at all is not
    for m in ("PD", "T1", "T2"):
        (dataset / ANAT / f"sub-01_acq-lowres_{m}map.nii.gz").unlink()
        (dataset / ANAT / f"sub-01_acq-lowres_{m}map.json").unlink(missing_ok=True)
    _expect_input_error(capsys, dataset, tmp_path / "out", "sub-01", "no qMRI map", "MESE")


def test_missing_guides(dataset, tmp_path, capsys):
    for name in ("T1w", "T2w"):
        (dataset / ANAT / f"sub-01_{name}.nii.gz").unlink()
    _expect_input_error(capsys, dataset, tmp_path / "out", "sub-01", "none of the guides")


def test_sidecar_without_inversion_time(dataset, tmp_path, capsys):
    sidecar = dataset / ANAT / "sub-01_T1w.json"
    meta = json.loads(sidecar.read_text())
    del meta["InversionTime"]
    sidecar.write_text(json.dumps(meta))
    _expect_input_error(capsys, dataset, tmp_path / "out", "sub-01_T1w", "InversionTime")


def test_protocol_override_file_supplies_the_missing_field(dataset, tmp_path):
    sidecar = dataset / ANAT / "sub-01_T1w.json"
    meta = json.loads(sidecar.read_text())
    ti = meta.pop("InversionTime")
    sidecar.write_text(json.dumps(meta))
    overrides = tmp_path / "overrides.json"
    overrides.write_text(json.dumps({"T1w": {"InversionTime": ti}}))
    args = build_parser().parse_args(
        [str(dataset), str(tmp_path / "o"), "participant", "--protocol-overrides", str(overrides),
         "--participant-label", "01"]
    )  # fmt: skip
    subjects = cli.collect_subjects(args)
    assert subjects[0][1]["T1w"]["ti"] == pytest.approx(ti)


def test_four_dimensional_map(dataset, tmp_path, capsys):
    path = dataset / ANAT / "sub-01_acq-lowres_T1map.nii.gz"
    _rewrite(path, lambda d: np.stack([d, d], axis=-1))
    _expect_input_error(capsys, dataset, tmp_path / "out", "T1map", "expected a 3D image")


def test_nan_in_guide(dataset, tmp_path, capsys):
    def poison(d):
        d[10, 10, 10] = np.nan
        return d

    _rewrite(dataset / ANAT / "sub-01_T2w.nii.gz", poison)
    _expect_input_error(capsys, dataset, tmp_path / "out", "sub-01_T2w", "NaN")


def test_negative_relaxation_times(dataset, tmp_path, capsys):
    # most T2 voxels negative: more than 20 % of the head invalid (a few would be accepted)
    _rewrite(dataset / ANAT / "sub-01_acq-lowres_T2map.nii.gz", lambda d: d - 0.5)
    _expect_input_error(
        capsys, dataset, tmp_path / "out", "T2map", "of the head voxels are invalid"
    )


def test_corrupt_nifti(dataset, tmp_path, capsys):
    path = dataset / ANAT / "sub-01_acq-lowres_PDmap.nii.gz"
    path.write_bytes(path.read_bytes()[:200])
    _expect_input_error(capsys, dataset, tmp_path / "out", "PDmap", "cannot read NIfTI")


def test_unknown_participant(dataset, tmp_path, capsys):
    _expect_input_error(
        capsys, dataset, tmp_path / "out", "07", "not in the dataset",
        extra=("--participant-label", "sub-07"),
    )  # fmt: skip


@pytest.mark.parametrize("label", ["01/../02", "sub-0_1", "01 02", "../x"])
def test_label_with_unsafe_characters(dataset, tmp_path, capsys, label):
    _expect_input_error(
        capsys,
        dataset,
        tmp_path / "out",
        "letters and digits",
        extra=("--participant-label", label),
    )


def test_output_inside_input(dataset, capsys):
    _expect_input_error(capsys, dataset, dataset / "derivatives" / "swigapp", "inside the input")
    assert not (dataset / "derivatives").exists()


def test_not_a_bids_dataset(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    _expect_input_error(capsys, tmp_path / "empty", tmp_path / "out", "no dataset_description")


def test_output_of_another_pipeline_refused(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    desc = {"Name": "x", "BIDSVersion": "1.10.0", "GeneratedBy": [{"Name": "fmriprep"}]}
    (out / "dataset_description.json").write_text(json.dumps(desc))
    rc = _run(dataset, out)
    assert rc == 3
    assert "fmriprep" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["dataset_description.json"]


def test_unknown_synthesis_contrast(dataset, tmp_path, capsys):
    _expect_input_error(
        capsys, dataset, tmp_path / "out", "T2star", "--synth-protocol",
        extra=("--synthesize", "T2star"),
    )  # fmt: skip


def test_synthesis_protocol_file(tmp_path):
    path = tmp_path / "synth.yaml"
    path.write_text("FLAIR:\n  InversionTime: 2.2\nDIR:\n  Model: IR\n  RepetitionTime: 7.5\n"
                    "  InversionTime: 0.5\n  EchoTime: 0.09\n")  # fmt: skip
    out = cli.synthesis_protocols(["FLAIR", "DIR", "T2w"], path)
    assert out["FLAIR"]["ti"] == 2.2 and out["FLAIR"]["tr"] == 9.0  # default TR kept
    assert out["DIR"]["model"] == "IR" and out["DIR"]["ti"] == 0.5
    assert out["T2w"]["te"] == 0.095


def test_bad_model_file(dataset, tmp_path, capsys):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a model")
    _expect_input_error(capsys, dataset, tmp_path / "out", "model.pt", extra=("--model", str(bad)))


def test_validator_errors_stop_the_run(dataset, tmp_path, capsys):
    if shutil.which("bids-validator-deno") is None:
        pytest.skip("bids-validator-deno not installed")
    (dataset / "sub-01" / "anat" / "sub-01_notbids.txt").write_text("x")
    rc = cli.main([str(dataset), str(tmp_path / "out"), "participant", "-w", str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert rc == 3 and "BIDS validator" in err and "--skip-bids-validation" in err
    assert not (tmp_path / "out").exists()


def test_check_label():
    assert check_label("sub-01") == "01"
    assert check_label("ABC2") == "ABC2"
    assert check_label("ses-pre", "session") == "pre"
    with pytest.raises(InputError, match="letters and digits"):
        check_label("sub-")


def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--participant-label", "--bids-filter-file", "--work-dir", "--nprocs",
                   "--omp-nthreads", "--mem", "--plugin", "--plugin-args", "--guides", "--model",
                   "--adapt-steps", "--synthesize", "--synth-protocol", "--device",
                   "--skip-bids-validation", "--stop-on-first-crash", "--seed", "--verbose",
                   "Exit codes"):  # fmt: skip
        assert option in text
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("swigapp ")


def test_bad_option_values_exit_2(tmp_path, capsys):
    bad = (["--guides", "T1w,T3w"], ["--adapt-steps", "-1"], ["--adapt-steps", "often"],
           ["--plugin", "Nope"])  # fmt: skip
    for extra in bad:
        with pytest.raises(SystemExit) as exc:
            cli.main([str(tmp_path), str(tmp_path / "o"), "participant", *extra])
        assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "T3w" in err and "must be 'auto' or a step count, got 'often'" in err
