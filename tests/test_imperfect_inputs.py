"""Imperfect LR maps are processed, invalid ones refused (DESIGN: imperfect versus invalid).

Library-level checks on the tiny phantom's sub-01 maps (conform_maps, prepare_lr_maps, the
LR terms), and one CLI run on a 3-participant dataset: sub-01 as simulated, sub-02 the
same maps with PD x100, sub-03 with background noise (negative values) in every map,
scattered NaN voxels in T2 and T1 as int16 ms with a scale slope.
"""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage

from swigapp.cli import run as cli
from swigapp.consistency import lr_residual
from swigapp.inputs.bundle import load_lr_maps
from swigapp.inputs.qmri import fill_invalid, head_region, prepare_lr_maps
from swigapp.io.bids import InputError, find_inputs, layout
from swigapp.models.crops import collate, random_crop
from swigapp.models.features import prepare_subject
from swigapp.models.losses import lr_loss
from swigapp.operators import kspace
from swigapp.operators.acquisition import KSpace3D
from swigapp.participant import conform_maps, load_valid

ANAT = "sub-01/anat"
SUFFIX = {"PD": "PDmap", "T1": "T1map", "T2": "T2map"}


def _maps(root, sub="01"):
    anat = root / f"sub-{sub}" / "anat"
    return {m: str(anat / f"sub-{sub}_acq-lowres_{s}.nii.gz") for m, s in SUFFIX.items()}


@pytest.fixture
def lr_copy(tiny_dataset, tmp_path):
    """sub-01's LR maps and T1w guide copied into tmp_path: (map paths, guide path)."""
    src = _maps(tiny_dataset)
    out = {}
    for m, path in src.items():
        out[m] = str(tmp_path / f"sub-01_acq-lowres_{SUFFIX[m]}.nii.gz")
        shutil.copyfile(path, out[m])
    guide = tmp_path / "sub-01_T1w.nii.gz"
    shutil.copyfile(tiny_dataset / ANAT / "sub-01_T1w.nii.gz", guide)
    return out, str(guide)


def _read(path):
    img = nib.load(path)
    return np.asarray(img.dataobj, dtype=np.float32), img


def _write(path, data, like, dtype=np.float32, slope=None):
    img = nib.Nifti1Image(np.asarray(data).astype(dtype), like.affine)
    if slope is not None:
        img.header.set_slope_inter(slope, 0.0)
    nib.save(img, path)


def _rewrite(path, fn):
    data, img = _read(path)
    _write(path, fn(data), img)


def _conform(maps, guide, out, metadata=None):
    out.mkdir(exist_ok=True)
    return conform_maps(maps, SUFFIX, guide, out, map_metadata=metadata)


def _head(maps):
    return head_region(_read(maps["PD"])[0], _read(maps["T1"])[0])


def _noisy_background(data, head, sigma, seed):
    rng = np.random.default_rng(seed)
    out = data.copy()
    out[~head] = sigma * rng.standard_normal(int((~head).sum()))
    return out


def test_clean_phantom_is_unchanged(lr_copy, tmp_path):
    maps, guide = lr_copy
    res = _conform(maps, guide, tmp_path / "c")
    lr = _read(res["lr_file"])[0]
    for i, m in enumerate(SUFFIX):
        np.testing.assert_array_equal(lr[..., i], _read(maps[m])[0])
        assert res["input_quality"][m]["invalid_total"] == 0
    assert res["pd_scale"]["factor"] == 1.0
    assert 0.6 < res["pd_scale"]["reference_value"] < 0.8
    # said as a reader would say it, not as a rescaling by 1
    assert res["units"]["PD"].endswith(": already a water fraction, not rescaled")
    assert "x 1 ->" not in res["units"]["PD"]
    valid = _read(res["lr_valid_file"])[0]
    assert valid.shape == (*lr.shape[:3], 3) and (valid == 1).all()
    assert load_valid(res["lr_valid_file"]) is None  # all valid: the LR terms are unchanged
    assert res["units"]["T1"].startswith("s (detected")


def test_scattered_nan_voxels_are_counted_and_filled(lr_copy, tmp_path):
    maps, guide = lr_copy
    t2, img = _read(maps["T2"])
    head = _head(maps)
    rng = np.random.default_rng(0)
    inside = np.flatnonzero(head & (t2 > 0))
    holes = rng.choice(inside, size=inside.size // 50, replace=False)  # 2 % of the head
    poisoned = t2.copy()
    poisoned.ravel()[holes[::2]] = np.nan
    poisoned.ravel()[holes[1::2]] = np.inf
    _write(maps["T2"], poisoned, img)
    res = _conform(maps, guide, tmp_path / "c")
    q = res["input_quality"]["T2"]
    assert q["invalid_in_head"] == holes.size == q["invalid_total"] == q["nonfinite_total"]
    assert q["invalid_fraction_in_head"] == pytest.approx(holes.size / head.sum())
    assert res["input_quality"]["T1"]["invalid_total"] == 0
    lr = _read(res["lr_file"])[0]
    up = _read(res["lr_up_file"])[0]
    assert np.isfinite(lr).all() and np.isfinite(up).all()
    filled = lr[..., 2].ravel()[holes]
    valid_t2 = t2[head & (t2 > 0)]
    assert filled.min() >= valid_t2.min() and filled.max() <= valid_t2.max()  # seconds
    # filled values are local means: close to the voxels they replace in the median
    assert np.median(np.abs(filled - t2.ravel()[holes]) / t2.ravel()[holes]) < 0.3
    keep = np.ones(t2.size, bool)
    keep[holes] = False
    np.testing.assert_array_equal(lr[..., 2].ravel()[keep], t2.ravel()[keep])
    valid = load_valid(res["lr_valid_file"])
    assert valid.shape == (3, *t2.shape)
    assert not valid[2].ravel()[holes].any() and valid[2].sum() == t2.size - holes.size
    assert valid[:2].all()


def test_background_negatives_are_invalid_but_harmless(lr_copy, tmp_path):
    maps, guide = lr_copy
    clean = _conform(maps, guide, tmp_path / "clean")
    head = _head(maps)
    for seed, (m, sigma) in enumerate((("PD", 0.03), ("T1", 0.3), ("T2", 0.1))):
        data, img = _read(maps[m])
        _write(maps[m], _noisy_background(data, head, sigma, seed), img)
    res = _conform(maps, guide, tmp_path / "noisy")
    for m in SUFFIX:
        q = res["input_quality"][m]
        assert q["invalid_in_head"] < 1e-3 * q["head_voxels"] and q["negative_total"] > 1000
        assert q["head_voxels"] == pytest.approx(head.sum(), rel=0.02)
    assert res["units"]["T1"].startswith("s (") and res["pd_scale"]["factor"] == 1.0
    lr = _read(res["lr_file"])[0]
    assert (lr >= 0).all() and np.isfinite(lr).all()
    ref = _read(clean["lr_file"])[0]
    np.testing.assert_array_equal(lr[head], ref[head])  # the head is untouched


def test_ms_detection_ignores_the_background(lr_copy, tmp_path):
    maps, guide = lr_copy
    head = _head(maps)
    rng = np.random.default_rng(3)
    # failed fits outside the head: large positive T1 (the old data > 0 median said ms)
    _rewrite(maps["T1"], lambda d: np.where(head, d, rng.uniform(60, 5000, d.shape)))
    res = _conform(maps, guide, tmp_path / "c")
    assert res["units"]["T1"].startswith("s (detected")
    lr = _read(res["lr_file"])[0]
    t1 = _read(maps["T1"])[0]
    np.testing.assert_array_equal(lr[..., 1][head], t1[head])


def test_pd_in_any_scale(lr_copy, tmp_path):
    maps, guide = lr_copy
    ref = _read(_conform(maps, guide, tmp_path / "x1")["lr_file"])[0]
    pd = _read(maps["PD"])[0]
    _rewrite(maps["PD"], lambda d: d * 100)
    pct = _conform(maps, guide, tmp_path / "x100")
    assert pct["pd_scale"]["factor"] == 0.01 and pct["pd_scale"]["rule"] == "decimal scale 1e2"
    lr = _read(pct["lr_file"])[0]
    np.testing.assert_allclose(lr[..., 0], ref[..., 0], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(lr[..., 1:], ref[..., 1:])
    units = _conform(maps, guide, tmp_path / "pct", {"PD": {"Units": "percent"}})
    assert units["pd_scale"]["factor"] == 0.01
    assert units["pd_scale"]["rule"] == "sidecar Units percent"
    assert units["pd_scale"]["input_units"] == "percent"
    # scanner units: the WM reference is scaled to 0.69
    _write(maps["PD"], pd * 3172.0, nib.load(maps["T1"]))
    scanner = _conform(maps, guide, tmp_path / "scanner")
    factor = scanner["pd_scale"]["factor"]
    assert factor == pytest.approx(0.69 / scanner["pd_scale"]["reference_value"])
    assert scanner["pd_scale"]["reference_value"] == pytest.approx(
        3172.0 * pct["pd_scale"]["reference_value"] / 100, rel=1e-4
    )
    lr = _read(scanner["lr_file"])[0]
    np.testing.assert_allclose(lr[..., 0], pd * 3172.0 * factor, rtol=1e-5)
    t1, head = lr[..., 1], _head(maps)
    wm = head & (t1 >= 0.5) & (t1 <= 1.1) & (pd > 0)
    assert np.median(lr[..., 0][wm]) == pytest.approx(0.69, rel=1e-5)


def test_int16_t1_in_ms_with_scale_slope(lr_copy, tmp_path):
    maps, guide = lr_copy
    t1, img = _read(maps["T1"])
    stored = np.round(t1 * 1000 / 0.5)
    assert stored.max() < 32767
    _write(maps["T1"], stored, img, dtype=np.int16, slope=0.5)
    assert nib.load(maps["T1"]).get_data_dtype() == np.int16
    res = _conform(maps, guide, tmp_path / "c", {"T1": {"Units": "ms"}})
    assert res["units"]["T1"] == "ms -> s (sidecar Units)"
    lr = _read(res["lr_file"])[0]
    np.testing.assert_allclose(lr[..., 1], t1, atol=2.6e-4)  # s; the int16 step is 0.5 ms
    # the same file without a sidecar: detected from the head median
    res = _conform(maps, guide, tmp_path / "d")
    assert res["units"]["T1"].startswith("ms -> s (detected")


def test_r1_in_hz_is_inverted(lr_copy, tmp_path):
    maps, guide = lr_copy
    t1, img = _read(maps["T1"])
    r1 = np.where(t1 > 0, 1 / np.where(t1 > 0, t1, 1), 0)
    path = maps["T1"].replace("T1map", "R1map")
    _write(path, r1, img)
    out = tmp_path / "c"
    out.mkdir()
    res = conform_maps({**maps, "T1": path}, {**SUFFIX, "T1": "R1map"}, guide, out,
                       map_metadata={"T1": {"Units": "Hz"}})  # fmt: skip
    assert res["units"]["T1"].startswith("1/s -> s (R1map inverted")
    np.testing.assert_allclose(_read(res["lr_file"])[0][..., 1], t1, rtol=1e-6)


@pytest.mark.parametrize(
    ("name", "change", "metadata", "needle"),
    [
        ("T2", lambda d: -d - 0.01, None, "no positive voxel (the map is negative throughout)"),
        ("PD", lambda d: np.full_like(d, np.nan), None, "every voxel is NaN or infinite"),
        ("T1", lambda d: np.zeros_like(d), None, "no positive voxel (the map is zero throughout)"),
        ("T1", lambda d: d * 100, {"T1": {"Units": "s"}}, "outside the physical range 0.1-5.0 s"),
        ("T1", lambda d: d * 1000, {"T1": {"Units": "s"}}, "sidecar Units 's' contradicts"),
        ("T2", lambda d: d, {"T2": {"Units": "ms"}}, "sidecar Units 'ms' contradicts"),
        ("PD", lambda d: d, {"PD": {"Units": "%"}}, "sidecar Units '%' contradicts"),
    ],
)
def test_invalid_maps_are_refused(lr_copy, name, change, metadata, needle):
    maps, _ = lr_copy
    _rewrite(maps[name], change)
    with pytest.raises(InputError) as err:
        prepare_lr_maps(maps, SUFFIX, metadata)
    message = str(err.value)
    assert needle in message and message.startswith(maps[name]) and "\n" not in message


def test_more_than_a_fifth_of_the_head_invalid_is_refused(lr_copy):
    maps, _ = lr_copy
    head = _head(maps)
    rng = np.random.default_rng(1)
    holes = rng.random(head.shape) < 0.25
    t1, img = _read(maps["T1"])
    _write(maps["T1"], np.where(holes, np.nan, t1), img)
    with pytest.raises(InputError, match=r"T1map.nii.gz: 2[4-6] % of the head voxels are invalid"):
        prepare_lr_maps(maps, SUFFIX)
    _write(maps["T1"], np.where(holes, -t1, t1), img)  # negative relaxation times
    with pytest.raises(InputError, match="at most 20 % is accepted"):
        prepare_lr_maps(maps, SUFFIX)
    _write(maps["T1"], np.where(holes & (rng.random(head.shape) < 0.5), np.nan, t1), img)
    assert prepare_lr_maps(maps, SUFFIX).quality["T1"]["invalid_fraction_in_head"] < 0.15


def test_fill_invalid_and_head_region():
    data = np.zeros((20, 20, 20), np.float32)
    data[4:16, 4:16, 4:16] = 2.0
    data[6:14, 6:14, 6:14] = 1.0
    head = head_region(data, data)
    np.testing.assert_array_equal(head, data > 0)
    hole = np.zeros_like(head)
    hole[9:11, 9:11, 9:11] = True  # inside the inner cube: filled with its value
    hole[0, 0, 0] = True  # outside the head: 0
    bad = np.where(hole, np.nan, data)
    bad[0, 0, 0] = -5.0
    nan_head = head_region(bad, bad)
    np.testing.assert_array_equal(nan_head, head)  # enclosed NaN voxels still count as head
    out = fill_invalid(bad, ~hole, head)
    np.testing.assert_allclose(out[9:11, 9:11, 9:11], 1.0, rtol=1e-3)  # local mean
    assert out[0, 0, 0] == 0.0
    np.testing.assert_array_equal(out[~hole], data[~hole])


def test_failed_fits_inside_a_single_slice_are_head_and_filled():
    """A single slice (a real 2D acquisition of one slice, as the in-vivo IR slice): every
    voxel touches the slice's faces, so hole filling in 3D enclosed nothing, failed fits
    inside the brain were set to 0 (the IR slice's output held T1 = 0 there), not filled from
    their neighbours. The slice's holes are now filled in its plane."""
    data = np.zeros((40, 40, 1), np.float32)
    data[5:35, 5:35] = 1.2
    hole = np.zeros(data.shape, bool)
    hole[18:21, 18:21] = True
    bad = np.where(hole, np.nan, data)
    head = head_region(bad, bad)
    np.testing.assert_array_equal(head, data > 0)
    out = fill_invalid(bad, ~hole, head)
    np.testing.assert_allclose(out[hole], 1.2, rtol=1e-3)
    assert out[0, 0, 0] == 0.0


def test_invalid_lr_voxels_leave_the_lr_terms():
    rng = np.random.default_rng(2)
    lr = rng.random((1, 3, 8, 8, 4)) + 0.5
    truth_up = kspace.upsample(torch.from_numpy(lr), (16, 16, 8))
    wrong = lr.copy()
    wrong[0, 1, 3, 4, 2] = 9.0  # a badly filled voxel in T1
    lr_up = kspace.upsample(torch.from_numpy(wrong), (16, 16, 8))
    mask = torch.ones((1, 16, 16, 8), dtype=torch.bool)
    valid = torch.ones((1, 3, 8, 8, 4), dtype=torch.float64)
    acq = KSpace3D((16, 16, 8), (8, 8, 4))
    assert float(lr_loss(truth_up, lr_up, torch.from_numpy(wrong), mask, acq)) > 1e-2
    valid[0, 1, 3, 4, 2] = 0.0
    assert float(lr_loss(truth_up, lr_up, torch.from_numpy(wrong), mask, acq, valid)) < 1e-20
    # the QC residual likewise
    hr = truth_up[0].numpy()
    without = lr_residual(hr, wrong[0], acq, valid[0].numpy() > 0)
    assert without["T1"] < 1e-12 and lr_residual(hr, wrong[0], acq)["T1"] > 1e-2


def test_validity_travels_with_crops(tiny_subject):
    s = tiny_subject
    valid = np.ones((3, *s.lr_maps["T1"].shape), bool)
    valid[1, ::3] = False
    subject = prepare_subject(s.lr_maps, s.guides, s.protocols, s.truth.brain_mask, lr_valid=valid)
    assert subject.with_guides(["T1w"]).lr_valid is subject.lr_valid
    rng = np.random.default_rng(0)
    crops = [random_crop(subject, rng, (32, 32, 8), perm=(0, 1, 2)) for _ in range(2)]
    batch = collate(crops)
    assert batch["lr_valid"].shape == batch["lr"].shape
    assert 0 < float(batch["lr_valid"][:, 1].mean()) < 1 and bool(
        (batch["lr_valid"][:, 0] == 1).all()
    )
    plain = prepare_subject(s.lr_maps, s.guides, s.protocols, s.truth.brain_mask)
    assert collate([random_crop(plain, rng, (32, 32, 8))])["lr_valid"] is None


# ---- the CLI on imperfect participants ------------------------------------------------


@pytest.fixture(scope="module")
def imperfect_run(tiny_dataset, tmp_path_factory):
    """sub-01 as simulated; sub-02: PD x100 and nothing else; sub-03: noisy background
    (negatives) in every map, 1 % NaN voxels in T2, and T1 as int16 in ms (slope 0.5,
    Units ms). One CLI run."""
    base = tmp_path_factory.mktemp("imperfect")
    bids = base / "bids"
    shutil.copytree(tiny_dataset, bids, ignore=shutil.ignore_patterns("derivatives", "sub-02"))
    for sub in ("02", "03"):
        (bids / f"sub-{sub}" / "anat").mkdir(parents=True)
        for path in (bids / ANAT).iterdir():
            target = bids / f"sub-{sub}" / "anat" / path.name.replace("sub-01", f"sub-{sub}")
            shutil.copyfile(path, target)
    m2 = _maps(bids, "02")
    head = _head(m2)
    _rewrite(m2["PD"], lambda d: d * 100)
    m3 = _maps(bids, "03")
    for seed, (m, sigma) in enumerate((("PD", 0.03), ("T1", 0.3), ("T2", 0.1))):
        data, img = _read(m3[m])
        _write(m3[m], _noisy_background(data, head, sigma, seed), img)
    rng = np.random.default_rng(5)
    _rewrite(m3["T2"], lambda d: np.where(head & (rng.random(d.shape) < 0.01), np.nan, d))
    t1, img = _read(m3["T1"])
    _write(m3["T1"], np.round(t1 * 1000 / 0.5), img, dtype=np.int16, slope=0.5)
    sidecar = bids / "sub-03/anat/sub-03_acq-lowres_T1map.json"
    sidecar.write_text(json.dumps(json.loads(sidecar.read_text()) | {"Units": "ms"}))
    out = base / "out"
    rc = cli.main([str(bids), str(out), "participant", "--skip-bids-validation", "-w",
                   str(base / "work"), "--nprocs", "2", "--omp-nthreads", "1",
                   "--single-orientation"])  # fmt: skip
    return {"rc": rc, "out": out, "bids": bids}


def _sr(run, sub, m):
    anat = run["out"] / f"sub-{sub}" / "anat"
    name = f"sub-{sub}_res-hi_desc-swig_{SUFFIX[m]}"
    sidecar = json.loads((anat / f"{name}.json").read_text())
    return _read(str(anat / f"{name}.nii.gz"))[0], sidecar


def test_imperfect_participants_are_processed(imperfect_run):
    run = imperfect_run
    assert run["rc"] == 0
    mask = _read(str(run["out"] / "sub-01/anat/sub-01_res-hi_desc-brain_mask.nii.gz"))[0] > 0
    base = {m: _sr(run, "01", m)[0] for m in SUFFIX}
    for sub in ("02", "03"):
        for m in SUFFIX:
            data, sidecar = _sr(run, sub, m)
            assert np.isfinite(data).all() and (data >= 0).all()
            assert sidecar["Units"] == ("arbitrary" if m == "PD" else "s")
    # sub-02: PD comes back x100, T1 and T2 (s) within 1 %
    pd, sidecar = _sr(run, "02", "PD")
    assert sidecar["PDScaling"]["Factor"] == 0.01
    assert "WM-like" in sidecar["PDScaling"]["Reference"]
    assert _sr(run, "01", "PD")[1]["PDScaling"]["Factor"] == 1.0
    rel = np.abs(pd[mask] / 100 - base["PD"][mask]).sum() / base["PD"][mask].sum()
    assert rel < 0.01
    assert np.median(pd[mask]) / np.median(base["PD"][mask]) == pytest.approx(100, rel=0.01)
    # brain medians in seconds (ms would be ~1000x, a double conversion ~1000x smaller)
    brain_median_s = {"T1": (0.5, 3.0), "T2": (0.03, 0.5)}
    for m in ("T1", "T2"):
        data = _sr(run, "02", m)[0]
        assert np.abs(data[mask] - base[m][mask]).sum() / base[m][mask].sum() < 0.01
        low, high = brain_median_s[m]
        assert low < np.median(data[mask]) < high
    # sub-03: noise, NaN and T1 in int16 ms; T1 and T2 in seconds and close to sub-01's
    for m in ("T1", "T2"):
        data = _sr(run, "03", m)[0]
        assert np.median(data[mask]) == pytest.approx(np.median(base[m][mask]), rel=0.02)
    qc = json.loads((run["out"] / "sub-03/log/sub-03_qc.json").read_text())
    assert qc["Subject"] == "03"


def test_one_warning_per_participant(imperfect_run, caplog):
    bids = layout(imperfect_run["bids"])
    with caplog.at_level("WARNING", logger="swigapp.io"):
        for sub in ("01", "02", "03"):
            maps, _ = load_lr_maps(find_inputs(bids, sub, guides=("T1w",)))
            assert all(np.isfinite(v).all() for v in maps.values())
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("sub-02: imperfect qMRI maps accepted")
    assert "sub-02_acq-lowres_PDmap.nii.gz: PD arbitrary (water = 1) x 0.01" in warnings[0]
    assert warnings[1].startswith("sub-03: imperfect qMRI maps accepted")
    for m in SUFFIX.values():
        assert f"sub-03_acq-lowres_{m}.nii.gz: " in warnings[1]
    assert "NaN/Inf" in warnings[1] and "negative" in warnings[1]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda d: -d - 0.01, "no positive voxel (the map is negative throughout)"),
        (lambda d: np.full_like(d, np.nan), "every voxel is NaN or infinite"),
        (lambda d: np.where(np.arange(d.size).reshape(d.shape) % 3 == 0, np.nan, d), "invalid"),
    ],
)
def test_cli_refuses_invalid_maps(tiny_dataset, tmp_path, capsys, change, needle):
    bids = tmp_path / "bids"
    shutil.copytree(tiny_dataset, bids, ignore=shutil.ignore_patterns("derivatives"))
    path = bids / ANAT / "sub-01_acq-lowres_T2map.nii.gz"
    _rewrite(str(path), change)
    out = tmp_path / "out"
    rc = cli.main([str(bids), str(out), "participant", "--skip-bids-validation",
                   "-w", str(tmp_path / "work")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 3, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("swigapp: error:") and str(path) in line and needle in line
    assert not out.exists() or not any(out.iterdir())


def test_adaptation_and_inr_leave_out_invalid_lr_voxels(tiny_subject):
    from swigapp.models.inference import AdaptConfig, adapt
    from swigapp.models.inr import INRConfig, fit_inr
    from swigapp.models.losses import LossWeights, total_loss
    from swigapp.models.network import NetConfig, SwigNet

    s = tiny_subject
    bad = {m: v.copy() for m, v in s.lr_maps.items()}
    valid = np.ones((3, *bad["T1"].shape), bool)
    valid[1].ravel()[::7] = False
    bad["T1"][~valid[1]] = 9.0  # a badly filled T1 (s): not data
    args = (bad, s.guides, s.protocols, s.truth.brain_mask)
    marked, unmarked = prepare_subject(*args, lr_valid=valid), prepare_subject(*args)
    clean = prepare_subject(s.lr_maps, s.guides, s.protocols, s.truth.brain_mask)

    def lr_term(subject):  # the LR term of the adaptation loss for the clean maps
        crop = random_crop(subject, np.random.default_rng(4), (32, 32, 16), perm=(0, 1, 2))
        maps = random_crop(clean, np.random.default_rng(4), (32, 32, 16), perm=(0, 1, 2))
        batch = collate([crop]) | {"truth": None}
        weights = LossWeights(guide=0.0, lr=1.0, supervised=0.0)
        return total_loss(weights, maps["lr_up"][None], batch)[1]["lr"]

    # (crop edges and the clipping of lr_up leak a little of the bad voxels)
    assert lr_term(marked) < 0.1 * lr_term(unmarked)
    torch.manual_seed(0)
    losses = adapt(SwigNet(NetConfig(width=8, blocks=1)), marked, 2, AdaptConfig(crop=(32, 32, 8)))[
        1
    ]
    assert len(losses) == 2 and np.isfinite(losses).all()
    cfg = INRConfig(max_steps=2, min_steps=1, crops_per_step=2, check_voxels=500)
    assert np.isfinite(fit_inr(marked, (2.0, 2.0, 2.0), cfg).losses).all()


def test_a_failed_fit_sentinel_is_missing_data_not_a_crash(lr_copy, tmp_path):
    """One T1 voxel at 3e38 (a fitting tool's failure value) and a few in ms T2 and PD far
    beyond any tissue: counted as out of range, filled, and the brain mask still found
    (with today's code before this check the brain mask came out empty)."""
    from swigapp.participant import make_mask

    maps, guide = lr_copy
    head = _head(maps)
    t1, img = _read(maps["T1"])
    inside = np.argwhere(ndimage.binary_erosion(head, iterations=2) & (t1 > 0.5))
    centre = tuple(inside[len(inside) // 2])
    t1[centre] = 3e38
    _write(maps["T1"], t1, img)
    t2, img = _read(maps["T2"])
    far = tuple(inside[len(inside) // 3])
    t2[far] = 50.0  # 50 s
    _write(maps["T2"], t2, img)
    res = _conform(maps, guide, tmp_path / "c")
    q = res["input_quality"]
    assert q["T1"]["out_of_range_total"] == 1 == q["T1"]["invalid_in_head"]
    assert q["T2"]["out_of_range_total"] == 1 and q["PD"]["out_of_range_total"] == 0
    lr = _read(res["lr_file"])[0]
    assert np.isfinite(lr).all()
    ring = t1[tuple(slice(c - 1, c + 2) for c in centre)]
    filled = lr[(*centre, 1)]
    assert 0.5 <= filled <= float(np.max(ring[ring < 100]))  # a local mean, in seconds
    assert lr[(*far, 2)] < 3.0
    valid = load_valid(res["lr_valid_file"])
    assert not valid[1][centre] and not valid[2][far] and valid.sum() == valid.size - 2
    assert any("1 beyond the physical range" in n for n in res["notes"])
    mask = make_mask(res["lr_file"], res["lr_up_file"], tmp_path / "c", template=False)
    brain = _read(mask["mask_file"])[0] > 0
    assert brain.sum() > 0.5 * kspace.upsample(head.astype(float), brain.shape).__gt__(0.5).sum()


def test_a_map_mostly_beyond_the_physical_range_is_refused(lr_copy, tmp_path):
    maps, guide = lr_copy
    head = _head(maps)
    _rewrite(
        maps["T2"], lambda d: np.where(head & (np.arange(d.size).reshape(d.shape) % 3 == 0), 1e6, d)
    )
    with pytest.raises(InputError, match=r"T2map.*% of the head voxels are invalid.*physical"):
        _conform(maps, guide, tmp_path / "c")


def test_signal_cut_off_from_the_head_by_failed_fits_stays_in_the_head(tmp_path):
    # the NIST phantom's MESE: spheres in a fluid whose fits failed (clipped echoes); with
    # the head region the largest piece alone, the app set the spheres to 0
    pd = np.zeros((40, 40, 12), np.float32)
    pd[4:36, 4:36, 2:10] = np.nan  # the object, its fits failed
    pd[4:36, 26:36, 2:10] = 0.8  # the part the fits kept: the largest piece
    pd[8:13, 8:13, 3:8] = 0.9  # a sphere of 125 voxels inside the failed fluid
    pd[30, 4, 2] = pd[31, 4, 2] = 0.9  # a speck of 2 voxels (noise): not head
    t1 = np.where(np.isfinite(pd) & (pd > 0), 1.0, pd).astype(np.float32)
    maps = {m: str(tmp_path / f"sub-01_{SUFFIX[m]}.nii.gz") for m in ("PD", "T1")}
    like = nib.Nifti1Image(pd, np.diag([2.0, 2.0, 2.0, 1.0]))
    _write(maps["PD"], pd, like)
    _write(maps["T1"], t1, like)
    head = prepare_lr_maps(maps, SUFFIX).head
    assert head[8:13, 8:13, 3:8].all() and head[4:36, 26:36, 2:10].all()
    assert not head[30, 4, 2] and not head[20, 18, 5]  # the speck, the failed fluid
    assert head.sum() == 125 + 32 * 10 * 8
    np.testing.assert_array_equal(head, head_region(pd, t1))  # the guard's head is this one


def test_a_t2_map_alone_finds_the_whole_head(lr_copy):
    """T2 spans 20-40x from WM to CSF: at PD's and T1's 10 % of the 99th percentile a T2 map
    alone kept only the CSF as head, and the maps beyond it were zeroed (a real slice given
    as a T2 map: SR T2 SSIM 0.13)."""
    maps, _ = lr_copy
    head = _head(maps)
    t2, img = _read(maps["T2"])
    csf = t2 > np.percentile(t2[head], 97)
    t2[csf] = 2.0  # pure CSF in vivo (this phantom's LR T2 peaks at 0.5 s)
    _write(maps["T2"], t2, img)
    assert np.percentile(t2[head], 99) > 10 * np.median(t2[head])  # WM-GM far below 10 %
    alone = head_region(None, None, t2)
    assert (alone & head).sum() >= 0.99 * head.sum()  # (the old rule: 5 %)
    assert (alone & ~head).sum() <= 0.05 * head.sum()  # partial volume at the edge
    lr = prepare_lr_maps({"T2": maps["T2"]}, SUFFIX)
    assert lr.acquired == ["T2"] and np.array_equal(lr.head, alone)
    # where PD is given it decides, as before; T2 decides only where PD and T1 are not finite
    pd = _read(maps["PD"])[0]
    np.testing.assert_array_equal(head_region(pd, None, t2), head_region(pd, None))
