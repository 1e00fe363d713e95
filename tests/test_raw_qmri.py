"""Raw qMRI series (BIDS file collections): phantoms that write them, the app's search, checks
and fits, and a participant run from raw series alone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from swigapp.inputs.bundle import load_inputs
from swigapp.io.bids import find_inputs, layout
from swigapp.io.images import InputError
from swigapp.io.raw_qmri import fit_series, run_fit
from swigapp.phantom.bids import write_dataset
from swigapp.phantom.subject import PhantomConfig


def _dataset(root, raw=(), seed=3):
    config = PhantomConfig(size="tiny", raw_qmri=tuple(raw))
    return write_dataset(root, n_subjects=1, seed=seed, config=config, progress=False)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """The same phantom subject as maps, as MESE + IRT1 series, and as VFA + MP2RAGE series."""
    base = tmp_path_factory.mktemp("raw")
    return {
        "maps": _dataset(base / "maps"),
        "mese_ir": _dataset(base / "mese_ir", ("MESE", "IRT1")),
        "vfa_mp2": _dataset(base / "vfa_mp2", ("VFA", "MP2RAGE")),
    }


def _lr(root, suffix):
    return nib.load(root / "sub-01" / "anat" / f"sub-01_acq-lowres_{suffix}.nii.gz").get_fdata()


def test_phantom_writes_series_in_place_of_the_maps_they_give(datasets):
    anat = datasets["mese_ir"] / "sub-01" / "anat"
    assert len(list(anat.glob("*_echo-*_MESE.nii.gz"))) == 32
    assert len(list(anat.glob("*_inv-*_IRT1.nii.gz"))) == 7
    assert not list(anat.glob("*_T1map.nii.gz")) and not list(anat.glob("*_PDmap.nii.gz"))
    sidecar = json.loads((anat / "sub-01_acq-lowres_echo-3_MESE.json").read_text())
    assert sidecar["EchoTime"] == pytest.approx(0.03)
    mp2 = datasets["vfa_mp2"] / "sub-01" / "anat"
    assert (mp2 / "sub-01_acq-lowres_T2map.nii.gz").exists()  # neither series gives T2
    assert (mp2 / "sub-01_acq-lowres_inv-2_part-phase_MP2RAGE.nii.gz").exists()
    unit1 = json.loads((mp2 / "sub-01_acq-lowres_UNIT1.json").read_text())
    assert len(unit1["BasedOn"]) == 4
    if shutil.which("bids-validator-deno"):
        for root in (datasets["mese_ir"], datasets["vfa_mp2"]):
            run = subprocess.run(["bids-validator-deno", "--format", "json", str(root)],
                                 capture_output=True, text=True, check=False)  # fmt: skip
            errors = [i for i in json.loads(run.stdout)["issues"]["issues"]
                      if i["severity"] == "error"]  # fmt: skip
            assert errors == []


def test_the_fitted_maps_match_the_maps_the_series_were_made_from(datasets, tmp_path):
    files = find_inputs(layout(datasets["mese_ir"]), "01")
    assert files.fit_plan == {"PD": "MESE", "T1": "IRT1", "T2": "MESE"}
    assert files.maps == {}
    bundle = load_inputs(files)  # checks the series before any fit
    assert bundle.lr_maps == {}
    fitted = fit_series(files.raw_series, files.fit_plan, tmp_path, files.label)
    truth_pd = _lr(datasets["maps"], "PDmap")
    head = truth_pd > 0.3 * truth_pd.max()
    for name, suffix in (("T1", "T1map"), ("T2", "T2map"), ("PD", "PDmap")):
        value = nib.load(fitted["maps"][name]).get_fdata()
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = value[head] / _lr(datasets["maps"], suffix)[head]
        assert np.isfinite(ratio).mean() > 0.99
        # Rician noise of 0.5 % per image; PD after the T1-saturation correction
        assert np.nanmedian(np.abs(ratio - 1)) < 0.02, name
    assert fitted["map_suffixes"] == {"T1": "T1map", "T2": "T2map", "PD": "PDmap"}
    assert fitted["map_metadata"]["PD"]["Units"] == "arbitrary"
    record = fitted["result"]["series"]["MESE"]
    assert record["medians"]["B1"] == pytest.approx(0.95, abs=0.05)  # the phantom's B1 field
    assert any("saturation" in n for n in record["notes"])
    residual = nib.load(record["outputs"]["fitresidual"]["file"]).get_fdata()
    assert np.nanmedian(residual[head]) < 0.02 * np.nanmedian(truth_pd[head])


def test_vfa_and_mp2rage_fits_recover_t1(datasets):
    files = find_inputs(layout(datasets["vfa_mp2"]), "01")
    assert files.fit_plan == {"PD": "VFA", "T1": "VFA"}  # T2 is a file; VFA before MP2RAGE
    found = find_inputs(layout(datasets["vfa_mp2"]), "01", fit_qmri=True)
    truth = _lr(datasets["maps"], "T1map")
    pd = _lr(datasets["maps"], "PDmap")
    head = pd > 0.3 * pd.max()
    assert set(found.raw_series) == {"VFA"}
    from swigapp.io.raw_qmri import find_series

    every = find_series(layout(datasets["vfa_mp2"]), {"subject": "01"}, "sub-01")
    for kind in ("VFA", "MP2RAGE"):
        fit, _, _ = run_fit(every[kind])
        ratio = fit.maps["T1"][head] / truth[head]
        assert np.nanmedian(np.abs(ratio - 1)) < 0.02, kind
    assert any("B1" in n for n in run_fit(every["VFA"])[0].notes)


@pytest.mark.parametrize(
    "kind,entity,suffix", [("MESE", "echo", "T2map"), ("IRT1", "inv", "T1map")]
)
def test_clipped_magnitudes_are_left_out_of_the_fit_and_counted(datasets, tmp_path, kind, entity,
                                                                suffix):  # fmt: skip
    # 12-bit images scaled so that the brightest voxels sit at the ceiling in some images
    # (the NIST phantom's MESE in benchmarks/real.py holds 650 000 such samples)
    from swigapp.io.raw_qmri import find_series

    root = tmp_path / "ds"
    shutil.copytree(datasets["mese_ir"], root)
    paths = sorted((root / "sub-01" / "anat").glob(f"*_{entity}-*_{kind}.nii.gz"))
    images = [nib.load(p) for p in paths]
    scale = 1.6 * 4095 / max(np.nanmax(np.abs(i.get_fdata())) for i in images)
    stack = []
    for path, image in zip(paths, images, strict=True):
        data = np.minimum(np.round(np.abs(image.get_fdata()) * scale), 4095).astype(np.int16)
        nib.save(nib.Nifti1Image(data, image.affine), path)
        stack.append(data)
    stack = np.stack(stack, -1)
    clipped = np.any(stack == 4095, axis=-1)
    assert clipped.sum() > 20
    series = find_series(layout(root), {"subject": "01"}, "sub-01")[kind]
    fit, _, _ = run_fit(series)
    unclipped, _, _ = run_fit(find_series(layout(datasets["mese_ir"]), {"subject": "01"},
                                          "sub-01")[kind])  # fmt: skip
    quantity, truth = suffix[:2], _lr(datasets["maps"], suffix)[clipped]

    def error(value):
        return np.nanmedian(np.abs(value / truth - 1))

    assert np.isfinite(fit.maps[quantity][clipped]).mean() > 0.9
    # as good as the unclipped series' fit, less the samples lost (measured: 1.1-1.7x)
    assert error(fit.maps[quantity][clipped]) < 2 * error(unclipped.maps[quantity][clipped]) + 0.005
    # left in, the clipped samples bias the fit (measured: 6x for IRT1, 3000x for MESE)
    from swigapp.fitting.irt1 import fit_irt1
    from swigapp.fitting.mese import fit_mese

    naive = (fit_mese if kind == "MESE" else fit_irt1)(stack[clipped], series["values"])
    assert error(naive.maps[quantity]) > 3 * error(fit.maps[quantity][clipped])
    assert fit.parameters["ClippedVoxels"] == int(clipped.sum())
    assert any("ceiling (4095: clipped" in n for n in fit.notes)


def test_broken_series_are_refused_naming_the_file(datasets, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(datasets["mese_ir"], root)
    anat = root / "sub-01" / "anat"
    for path in anat.glob("*_MESE.*"):
        path.unlink()
    files = find_inputs(layout(root), "01")  # no T2 source: T2 is estimated
    assert files.acquired == ["PD", "T1"] and files.fit_plan == {"PD": "IRT1", "T1": "IRT1"}
    shutil.rmtree(root)
    shutil.copytree(datasets["mese_ir"], root)
    sidecar = anat / "sub-01_acq-lowres_echo-5_MESE.json"
    meta = json.loads(sidecar.read_text())
    del meta["EchoTime"]
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(
        InputError, match=r"echo-5_MESE.nii.gz: the MESE series needs a numeric EchoTime"
    ):
        find_inputs(layout(root), "01")
    meta["EchoTime"] = 0.0515  # echo 5 of 10 ms spacing moved by 1.5 ms
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"echo-1_MESE.nii.gz: the MESE fit .* n x the echo"):
        load_inputs(find_inputs(layout(root), "01"))
    shutil.rmtree(root)
    shutil.copytree(datasets["vfa_mp2"], root)
    for path in [*anat.glob("*_VFA.*"), *anat.glob("*_UNIT1.*"), *anat.glob("*part-phase*")]:
        path.unlink()
    files = find_inputs(layout(root), "01")
    assert files.fit_plan == {"PD": "MP2RAGE", "T1": "MP2RAGE"}
    with pytest.raises(InputError, match="magnitudes only"):
        load_inputs(files)


def test_participant_runs_from_raw_series_alone(datasets, tmp_path):
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "swigapp.cli.run", str(datasets["mese_ir"]), str(out),
         "participant", "--work-dir", str(tmp_path / "work"), "--skip-bids-validation",
         "--nprocs", "1"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "maps fitted from raw series: PD from MESE, T1 from IRT1, T2 from MESE" in run.stdout
    anat = out / "sub-01" / "anat"
    for name in ("fitMESE_T2map", "fitMESE_M0map", "fitIRT1_T1map", "fitMESE_fitresidual"):
        assert (anat / f"sub-01_res-lo_desc-{name}.nii.gz").exists(), name
    sr_t1 = json.loads((anat / "sub-01_res-hi_desc-swig_T1map.json").read_text())
    assert "bids::sub-01/anat/sub-01_res-lo_desc-fitIRT1_T1map.nii.gz" in sr_t1["Sources"]
    fitted = json.loads((anat / "sub-01_res-lo_desc-fitIRT1_T1map.json").read_text())
    assert fitted["Units"] == "s" and "inversion-recovery" in fitted["EstimationMethod"]
    assert fitted["Sources"][0] == "bids:raw:sub-01/anat/sub-01_acq-lowres_inv-1_IRT1.nii.gz"
    qc = json.loads((out / "sub-01" / "log" / "sub-01_qc.json").read_text())
    assert qc["FittedMaps"] == {"PD": "MESE", "T1": "IRT1", "T2": "MESE"}
    assert qc["Fits"]["IRT1"]["failed_voxels"] == 0
    gm_t1 = qc["TissueMedians"]["GM"]["T1"]
    assert 1.0 < gm_t1 < 1.8  # seconds
    methods = (out / "sub-01" / "log" / "sub-01_methods.md").read_text()
    assert "fitted by swigapp from the raw MESE series (32 images)" in methods
    if shutil.which("bids-validator-deno"):
        check = subprocess.run(["bids-validator-deno", "--format", "json", str(out)],
                               capture_output=True, text=True, check=False)  # fmt: skip
        errors = [i for i in json.loads(check.stdout)["issues"]["issues"]
                  if i["severity"] == "error"]  # fmt: skip
        assert errors == []
