"""Library pieces behind the app: tissue classes, data consistency, atomic publishing,
naming, group statistics."""

import json

import numpy as np
import pytest
from scipy import ndimage

from swigapp import tissue
from swigapp.consistency import lr_residual
from swigapp.group import OUTLIER_Z, collect, robust_z
from swigapp.io import naming, publishing
from swigapp.metrics import guide_ssim
from swigapp.operators import kspace
from swigapp.operators.acquisition import KSpace3D


def test_tissue_classes_follow_t1():
    rng = np.random.default_rng(0)
    t1 = np.concatenate([rng.normal(0.8, 0.03, 500), rng.normal(1.4, 0.05, 400),
                         rng.normal(4.0, 0.2, 100)])  # fmt: skip
    labels = tissue.classify(t1, np.ones_like(t1, bool))
    assert (labels[:500] == 1).mean() > 0.99  # WM
    assert (labels[500:900] == 2).mean() > 0.99  # GM
    assert (labels[900:] == 3).mean() > 0.99  # CSF
    med = tissue.tissue_medians({"T1": t1}, labels)
    assert med["GM"]["T1"] == pytest.approx(1.4, abs=0.02)
    assert (tissue.classify(t1, np.zeros_like(t1, bool)) == 0).all()


def test_tissue_classes_ignore_float_residue_at_a_maps_edge():
    """Zeros in a map (an interpolation clipped at 0 leaves 1e-16 s) are a class of their own
    in ln T1: they took the WM class of the real IR slice (the report said WM T1 0 ms); they
    are unlabelled."""
    rng = np.random.default_rng(0)
    t1 = np.concatenate([rng.normal(0.8, 0.03, 500), rng.normal(1.4, 0.05, 400),
                         rng.normal(4.0, 0.2, 100), np.full(70, 5e-16)])  # fmt: skip
    labels = tissue.classify(t1, np.ones_like(t1, bool))
    assert (labels[1000:] == 0).all()
    assert (labels[:500] == 1).mean() > 0.99
    med = tissue.tissue_medians({"T1": t1}, labels)
    assert med["WM"]["T1"] == pytest.approx(0.8, abs=0.02)


def test_report_figures_of_a_single_slice_show_its_plane_only():
    """Through one slice the coronal and sagittal views are a line: only the axial is shown,
    in the maps' mosaic and in the registration flicker; a volume keeps all three."""
    import base64
    import io

    from PIL import Image

    from swigapp.reports import figures

    assert figures.shown_views((128, 128, 1)) == [("axial", 2)]
    assert figures.shown_views((40, 48, 36)) == list(figures.VIEWS)
    assert figures.shown_views((3, 3, 3)) == [("axial", 2)]  # never none

    def height(uri: str) -> int:
        png = base64.b64decode(uri.split(",", 1)[1])
        return Image.open(io.BytesIO(png)).size[1]

    rng = np.random.default_rng(0)
    one, volume = rng.random((64, 64, 1)), rng.random((64, 64, 32))
    assert height(figures.mosaic({"a": one, "b": one})) < 0.6 * height(
        figures.mosaic({"a": volume, "b": volume})
    )
    frames = figures.flicker_frames(one, one, np.ones(one.shape, bool))
    wide = figures.flicker_frames(volume, volume, np.ones(volume.shape, bool))
    width = [Image.open(io.BytesIO(base64.b64decode(u.split(",", 1)[1]))).size[0]
             for u in (frames[0], wide[0])]  # fmt: skip
    assert width[0] < 0.5 * width[1]


def test_lr_residual_zero_for_consistent_maps():
    rng = np.random.default_rng(1)
    lr = rng.random((3, 8, 8, 6)) + 0.5
    up = np.asarray(kspace.upsample(lr, (16, 16, 12)))
    acq = KSpace3D((16, 16, 12), (8, 8, 6))
    res = lr_residual(up, lr, acq)
    assert max(res.values()) < 1e-6
    noisy = lr_residual(up + 0.1 * rng.standard_normal(up.shape), lr, acq)
    assert min(noisy.values()) > 1e-3


def test_guide_ssim_is_scale_invariant():
    rng = np.random.default_rng(2)
    image = rng.random((20, 20, 20)).astype(np.float32)
    mask = np.ones(image.shape, bool)
    assert guide_ssim(image * 7.0, image, mask) == pytest.approx(1.0, abs=1e-6)
    assert guide_ssim(rng.random(image.shape), image, mask) < 0.5


def test_publish_is_all_or_nothing(tmp_path):
    out = tmp_path / "out"
    good = {"sub-01/anat/a.json": "{}", "sub-01/anat/b.txt": b"bytes"}
    written = publishing.publish(good, out)
    assert sorted(p.name for p in written) == ["a.json", "b.txt"]
    bad = {"sub-02/anat/a.json": "{}", "sub-02/anat/missing.nii.gz": tmp_path / "nope.nii.gz"}
    with pytest.raises(FileNotFoundError):
        publishing.publish(bad, out)
    assert not (out / "sub-02").exists()
    assert not list(out.glob(".swigapp-staging-*"))


def test_names_and_uris(tmp_path):
    name = naming.entity_name("sub-01_ses-a", "T1map", res="hi", desc="swig")
    assert name == "sub-01_ses-a_res-hi_desc-swig_T1map.nii.gz"
    (tmp_path / "sub-01" / "anat").mkdir(parents=True)
    uri = naming.bids_uri(tmp_path / "sub-01" / "anat" / "x.nii.gz", tmp_path)
    assert uri == "bids:raw:sub-01/anat/x.nii.gz"


def test_dataset_description_written_once_and_checked(tmp_path):
    out = tmp_path / "out"
    path = publishing.init_dataset(out, tmp_path / "bids")
    first = path.read_bytes()
    publishing.init_dataset(out, tmp_path / "bids")
    assert path.read_bytes() == first
    assert (path.stat().st_mode & 0o044) == 0o044  # readable by others, not 0600
    desc = json.loads(first)
    assert desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Name"] == "swigapp"


def test_robust_z_flags_outliers(tmp_path):
    z = robust_z([1.0, 1.1, 0.9, 1.05, 0.95, 5.0])
    assert abs(z[-1]) > OUTLIER_Z and (np.abs(z[:-1]) < OUTLIER_Z).all()
    assert (robust_z([2.0, 2.0, 2.0]) == 0).all()
    base = {"Session": None, "LRResidual": {"T1": 0.01}, "GuideSSIM": {"T1w": 0.9},
            "RegistrationMI": {"T1w": -1.0}, "BrainVolume_ml": 1400.0,
            "Seconds": {"inference": 10.0}}  # fmt: skip
    for i, gm_t1 in enumerate([1.30, 1.32, 1.28, 1.31, 1.29, 2.5]):
        qc = {**base, "Subject": f"{i:02d}", "TissueMedians": {
            t: {"T1": gm_t1, "T2": 0.1, "PD": 0.8} for t in ("GM", "WM")}}  # fmt: skip
        path = tmp_path / f"sub-{i:02d}" / "log" / f"sub-{i:02d}_qc.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(qc))
    rows = collect(tmp_path)
    assert [r["outliers"] for r in rows[:5]] == ["n/a"] * 5
    assert "GM_T1_ms" in rows[5]["outliers"]
    assert rows[5]["GM_T1_ms"] == pytest.approx(2500.0)


def test_group_flags_participants_with_qc_warnings(tmp_path):
    base = {"Session": None, "LRResidual": {"T1": 0.01}, "GuideSSIM": {"T1w": 0.9},
            "RegistrationMI": {"T1w": -1.0}, "BrainVolume_ml": 1400.0,
            "Seconds": {"inference": 10.0},
            "TissueMedians": {t: {"T1": 1.3, "T2": 0.1, "PD": 0.8} for t in ("GM", "WM")},
            "UncertaintyRelativeMedian": {"PD": 0.01, "T1": 0.012, "T2": 0.015}}  # fmt: skip
    warned = ["the T1w synthesised from the super-resolved maps agrees poorly (SSIM 0.62)"]
    for i, warnings in enumerate([[], [], warned]):
        path = tmp_path / f"sub-{i:02d}" / "log" / f"sub-{i:02d}_qc.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({**base, "Subject": f"{i:02d}", "Warnings": warnings}))
    rows = collect(tmp_path)
    assert [r["warnings"] for r in rows] == [0, 0, 1]
    assert [r["outliers"] for r in rows] == ["n/a", "n/a", "warnings"]
    assert rows[0]["uncertainty_rel_T1"] == pytest.approx(0.012)


def test_registration_sampling_is_a_fraction():
    from swigapp.registration import (
        DEFAULT_SAMPLING,
        SAMPLING_0_1_0,
        RegistrationSettings,
        register_guide,
    )

    assert (DEFAULT_SAMPLING, SAMPLING_0_1_0) == (0.1, 0.2)
    assert RegistrationSettings().sampling == DEFAULT_SAMPLING
    image, affine = np.ones((8, 8, 8), np.float32), np.eye(4)
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="must be a fraction in"):
            register_guide(image, affine, image, affine, RegistrationSettings(sampling=bad))


def test_registration_last_level_follows_the_lr_resolution():
    """The last pyramid level runs at the LR maps' resolution where it is at least twice the
    HR grid's on every axis (the detail the synthesised target holds), else at full."""
    from swigapp.registration import final_shrink, register_guide

    assert final_shrink((2.0, 2.0, 2.0), (1.0, 1.0, 1.0)) == 2
    assert final_shrink((3.0, 3.0, 3.0), (1.0, 1.0, 1.0)) == 2
    assert final_shrink((1.0, 1.0, 4.0), (1.0, 1.0, 1.0)) == 1  # in-plane detail at 1 mm
    assert final_shrink((1.5, 1.5, 1.5), (1.0, 1.0, 1.0)) == 1
    assert final_shrink((2.0, 2.0, 5.0), (1.0, 1.0, 1.0)) == 2  # a 2D stack, 2 mm in-plane
    image, affine = np.ones((8, 8, 8), np.float32), np.eye(4)
    with pytest.raises(ValueError, match="shrink factor 0"):
        register_guide(image, affine, image, affine, shrink=0)


def test_a_single_slice_is_registered_in_its_plane():
    """A guide of one thick slice (the in-vivo MESE and IR slices): ITK's pyramid cannot
    smooth along an axis of fewer than 4 voxels, so the guide is registered in the slice's
    plane. The guide holds more than the brain-masked target (a bright structure off to one
    side, as eyes and scalp are): ANTs' default centre-of-mass start moved a real slice's
    guide by 18 mm; starting from the scanner coordinates, a known in-plane shift of 3 mm is
    undone to within half a voxel."""
    from swigapp.registration import register_guide

    yy, xx = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    blob = (((yy - 30) / 18.0) ** 2 + ((xx - 34) / 14.0) ** 2 < 1).astype(np.float32)
    blob += 0.5 * (((yy - 24) / 5.0) ** 2 + ((xx - 28) / 4.0) ** 2 < 1)
    fixed = ndimage.gaussian_filter(blob, 1.0)[..., None]
    head = blob + 3.0 * ((yy > 50) & (xx > 20))  # a bright band off to one side
    moving = ndimage.gaussian_filter(head, 1.0)[..., None]
    affine = np.diag([1.0, 1.0, 7.5, 1.0])
    moved_affine = affine.copy()
    moved_affine[0, 3] = 3.0  # the same image, 3 mm along x in scanner space
    result = register_guide(fixed, affine, np.roll(moving, -3, axis=0), moved_affine, shrink=1)
    assert result.image.shape == fixed.shape
    brain = fixed[..., 0] > 0.1
    err = np.abs(result.image - moving)[..., 0][brain].mean()
    assert np.abs(np.roll(moving, -3, axis=0) - moving)[..., 0][brain].mean() > 4 * err
    com = ndimage.center_of_mass(np.where(brain, result.image[..., 0], 0))
    assert np.allclose(com, ndimage.center_of_mass(np.where(brain, moving[..., 0], 0)), atol=0.5)
    assert result.coverage.shape == fixed.shape and result.coverage.max() == pytest.approx(1.0)


def test_timed_steps_record_their_seconds():
    """One timing helper for the participant steps: the wall time goes into ``seconds``
    (the QC's ``Seconds``); a value the step set itself is kept."""
    import time

    from swigapp.timing import timed

    @timed
    def step(wait: float) -> dict:
        time.sleep(wait)
        return {"value": 1}

    @timed
    def own() -> dict:
        return {"seconds": 123.0}

    @timed
    def record(wait: float) -> dict:  # a typed result's record: seconds 0 until timed
        time.sleep(wait)
        return {"value": 2, "seconds": 0.0}

    out = step(0.05)
    assert out["value"] == 1 and 0.04 < out["seconds"] < 5.0
    assert own()["seconds"] == 123.0
    assert 0.04 < record(0.05)["seconds"] < 5.0
    assert step.__name__ == "step"  # Nipype interfaces and tracebacks see the step's name
