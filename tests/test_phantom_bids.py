"""The phantom BIDS dataset: layout, values, sidecars, validator, crash safety, CLI."""

import json
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pytest

from swigapp.cli import phantom as phantom_cli
from swigapp.operators import grid, kspace
from swigapp.phantom import bids as phantom_bids
from swigapp.phantom.bids import DatasetExistsError, write_dataset
from swigapp.phantom.subject import PhantomConfig
from swigapp.physics import Protocol


def test_layout_and_units(tiny_dataset):
    anat = tiny_dataset / "sub-02" / "anat"
    names = sorted(p.name for p in anat.iterdir())
    assert names == sorted(
        f"sub-02_{stem}.{ext}"
        for stem in (
            "acq-lowres_PDmap",
            "acq-lowres_T1map",
            "acq-lowres_T2map",
            "T1w",
            "T2w",
            "FLAIR",
        )
        for ext in ("nii.gz", "json")
    )
    lr = nib.load(anat / "sub-02_acq-lowres_T1map.nii.gz")
    hr = nib.load(anat / "sub-02_T1w.nii.gz")
    assert hr.shape == (76, 92, 40) and lr.shape == (76, 92, 10)
    np.testing.assert_allclose(lr.affine, grid.lr_affine(hr.affine, hr.shape, lr.shape))
    assert lr.header.get_xyzt_units() == ("mm", "sec")
    t1 = lr.get_fdata()
    truth_mask = nib.load(
        tiny_dataset / "derivatives/phantom-truth/sub-02/anat/sub-02_desc-brain_mask.nii.gz"
    ).get_fdata()
    lr_mask = kspace.downsample(truth_mask, lr.shape) > 0.9
    assert 0.8 < np.median(t1[lr_mask]) < 2.0  # seconds, brain median
    sidecar = json.loads((anat / "sub-02_acq-lowres_T1map.json").read_text())
    assert sidecar["Units"] == "s"


def test_guide_sidecars_carry_protocols(tiny_dataset):
    anat = tiny_dataset / "sub-01" / "anat"
    info = json.loads(
        (
            tiny_dataset / "derivatives/phantom-truth/sub-01/anat/sub-01_desc-brain_mask.json"
        ).read_text()
    )
    expected_models = {"T1w": "MPRAGE", "T2w": "SE", "FLAIR": "IR"}
    for name, model in expected_models.items():
        proto = Protocol.from_sidecar(anat / f"sub-01_{name}.json")
        assert proto.model == model
        recorded = info["GuideProtocols"][name]
        assert proto.tr == pytest.approx(recorded["tr"]) and proto.te == pytest.approx(
            recorded["te"]
        )
    assert set(info["GuideMotion"]) == set(expected_models)
    assert info["Seed"] == [3, 0]


def test_truth_derivative(tiny_dataset):
    truth = tiny_dataset / "derivatives" / "phantom-truth"
    desc = json.loads((truth / "dataset_description.json").read_text())
    assert (
        desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Name"] == "swigapp-phantom"
    )
    t2 = nib.load(truth / "sub-01/anat/sub-01_desc-truth_T2map.nii.gz").get_fdata()
    wm = nib.load(truth / "sub-01/anat/sub-01_label-WM_probseg.nii.gz").get_fdata()
    assert 0.06 < np.median(t2[wm > 0.95]) < 0.1  # WM T2 in s at 3T


@pytest.mark.skipif(
    shutil.which("bids-validator-deno") is None, reason="bids-validator-deno not installed"
)
def test_bids_validator_finds_no_errors(tiny_dataset):
    run = subprocess.run(
        ["bids-validator-deno", "--recursive", "--format", "json", str(tiny_dataset)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(run.stdout)
    errors = [i for i in report["issues"]["issues"] if i["severity"] == "error"]
    assert errors == [], errors[:3]
    assert run.returncode == 0


def test_existing_output_refused_and_untouched(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DatasetExistsError, match="not empty"):
        write_dataset(out, 1, progress=False)
    assert (out / "keep.txt").read_text() == "mine"


def test_crash_leaves_no_partial_dataset(tmp_path, monkeypatch):
    calls = []

    def failing(index, **kwargs):
        calls.append(index)
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(phantom_bids, "make_subject", failing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_dataset(tmp_path / "ds", 2, progress=False)
    assert calls == [0]
    assert list(tmp_path.iterdir()) == []  # neither the dataset nor a staging folder


def test_cli_writes_dataset_deterministically(tmp_path, capsys):
    args = ["--subjects", "1", "--lr-factor", "2", "--seed", "5", "-q", "--guides", "T1w,T2w"]
    assert phantom_cli.main([str(tmp_path / "a"), *args]) == 0
    assert phantom_cli.main([str(tmp_path / "b"), *args]) == 0
    assert "wrote 1 subject(s)" in capsys.readouterr().out
    a = nib.load(tmp_path / "a/sub-01/anat/sub-01_T1w.nii.gz").get_fdata()
    b = nib.load(tmp_path / "b/sub-01/anat/sub-01_T1w.nii.gz").get_fdata()
    np.testing.assert_array_equal(a, b)
    assert not (tmp_path / "a/sub-01/anat/sub-01_FLAIR.nii.gz").exists()
    assert phantom_cli.main([str(tmp_path / "a"), *args]) == 1  # exists: refused
    assert "exists and is not empty" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["0.5", "2,2", "x"])
def test_cli_rejects_bad_factors(bad, tmp_path):
    with pytest.raises(SystemExit) as exc:
        phantom_cli.main([str(tmp_path / "ds"), "--lr-factor", bad])
    assert exc.value.code == 2


def test_cli_rejects_unknown_guide(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        phantom_cli.main([str(tmp_path / "ds"), "--guides", "T1w,T3w"])
    assert exc.value.code == 2
    assert "unknown T3w (choose from T1w, T2w, FLAIR" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()


def test_parse_factors():
    assert phantom_cli.parse_factors("1,1,4") == (1.0, 1.0, 4.0)
    assert phantom_cli.parse_factors("2") == (2.0,)
    assert PhantomConfig().lr_factors == (2.0, 2.0, 2.0)
