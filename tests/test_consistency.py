"""Regional data-consistency checks and fallback (swigapp.consistency): regions named in
world coordinates, checks that find a corrupted region and only it, warnings that name it."""

import re

import numpy as np
import pytest
from scipy import ndimage

from swigapp import consistency as cons
from swigapp.operators import kspace
from swigapp.operators.acquisition import KSpace3D
from swigapp.physics.protocol import DEFAULT_PROTOCOLS
from swigapp.reports.boilerplate import regional_warnings
from swigapp.results import Conformed, SuperResolution

SHAPE = (32, 32, 32)


def smooth_maps(rng: np.random.Generator) -> np.ndarray:
    """PD (a.u.), T1 and T2 (s)-like positive maps, smooth enough to be nearly in band."""
    base = ndimage.gaussian_filter(rng.standard_normal((3, *SHAPE)), (0, 3, 3, 3))
    base /= np.abs(base).max()
    return (np.array([0.8, 1.2, 0.09])[:, None, None, None] * (1 + 0.3 * base)).astype(np.float32)


def test_octants_follow_world_axes_whatever_the_voxel_order():
    ras = np.diag([1.0, 1.0, 1.0, 1.0])
    labels = cons.octant_labels(SHAPE, ras, np.array([15.5, 15.5, 15.5]))
    assert cons.octant_name(int(labels[31, 31, 31])) == "right anterior superior"
    assert cons.octant_name(int(labels[0, 0, 0])) == "left posterior inferior"
    las = np.diag([-1.0, 1.0, 1.0, 1.0])  # voxel x grows to the left
    labels = cons.octant_labels(SHAPE, las, np.array([-15.5, 15.5, 15.5]))
    assert cons.octant_name(int(labels[31, 31, 0])) == "left anterior inferior"
    assert len({cons.octant_name(k) for k in range(8)}) == 8


def two_x_subject(rng: np.random.Generator):
    """Smooth truth maps, their LR maps on a 2x grid (k-space truncated), the zero-filled
    upsampling, HR and LR affines (same field of view) and an all-brain mask."""
    truth = smooth_maps(rng)
    lr = np.asarray(kspace.downsample(truth.astype(np.float64), (16, 16, 16)), np.float32)
    up = np.asarray(kspace.upsample(lr.astype(np.float64), SHAPE), np.float32)
    hr_affine, lr_affine = np.eye(4), np.diag([2.0, 2.0, 2.0, 1.0])
    lr_affine[:3, 3] = 0.5  # LR voxel centres of a 2x grid over the same field of view
    return truth, lr, up, hr_affine, lr_affine, np.ones(SHAPE, bool)


def evidence(lr, guides, hr_affine, lr_affine, mask) -> cons.Evidence:
    """The checks' evidence of a 2x k-space subject (T1w guides: spin-echo T1w protocol)."""
    acq = KSpace3D(mask.shape, lr.shape[1:])
    protocols = dict.fromkeys(guides, DEFAULT_PROTOCOLS["T1w"])
    return cons.Evidence(lr, acq, guides, protocols, mask, lr_affine, hr_affine)


def test_checks_find_the_corrupted_region_and_it_alone_falls_back():
    rng = np.random.default_rng(0)
    truth, lr, up, hr_affine, lr_affine, mask = two_x_subject(rng)
    guide = {"T1w": truth[1].copy()}
    sr = truth.copy()
    corner = (slice(20, 32),) * 3  # right anterior superior
    sr[:, 20:32, 20:32, 20:32] *= 1.5  # maps that contradict the LR data there
    checks = cons.regional_checks(sr, up, evidence(lr, guide, hr_affine, lr_affine, mask), guide)
    assert len(checks) == 8
    assert sum(c["fraction_of_brain"] for c in checks.values()) == pytest.approx(1.0)
    failed = {
        name: cons.region_failures(c) for name, c in checks.items() if cons.region_failures(c)
    }
    assert list(failed) == ["right anterior superior"]
    assert set(failed["right anterior superior"]) == {"lr"}  # the guide is still explained
    assert not any(cons.falls_back(c) for c in checks.values())
    noise = guide["T1w"].copy()
    noise[corner] = rng.uniform(0.5, 2.0, noise[corner].shape)  # nothing like the maps
    noisy = evidence(lr, {"T1w": noise}, hr_affine, lr_affine, mask)
    checks = cons.regional_checks(sr, up, noisy, guide)
    fell = [name for name, c in checks.items() if cons.falls_back(c)]
    assert fell == ["right anterior superior"]
    assert checks[fell[0]]["guide_ssim"]["T1w"] < cons.GUIDE_SSIM_FLAG
    others = [c["guide_ssim"]["T1w"] for n, c in checks.items() if n != fell[0]]
    assert min(others) > 0.9
    weight = cons.fallback_weight(fell, SHAPE, hr_affine, mask)
    assert weight[28, 28, 28] < 0.01 and weight[4, 4, 4] > 0.99
    assert weight.min() >= 0 and weight.max() <= 1


def test_a_region_whose_detail_the_guides_do_not_support_falls_back_to_cubic_spline():
    """Relative rule: SR maps that explain the guide worse than the interpolated LR maps do
    fall back, although they match the LR data and the guide's SSIM is above the fixed flag;
    where they explain it better they are kept."""
    rng = np.random.default_rng(1)
    truth, lr, up, hr_affine, lr_affine, mask = two_x_subject(rng)
    interp = cons.fallback_maps(lr, KSpace3D(SHAPE, lr.shape[1:]))
    assert interp.shape == truth.shape and interp.dtype == np.float32 and interp.min() >= 0
    # cubic spline: exact on the LR samples, not the zero-filled k-space upsampling
    np.testing.assert_allclose(interp[1, ::2, ::2, ::2], lr[1], rtol=1e-4)
    assert np.abs(interp - up).max() > 1e-3
    guide = {"T1w": truth[1].copy()}
    sr = truth.copy()
    corner = (slice(20, 32),) * 3  # right anterior superior
    wrong = sr[1][corner]
    # invented detail: a high-frequency pattern that k-space truncation removes, so the
    # maps still match the LR data, but the guide (the truth's contrast) shows none of it
    checker = (np.indices(wrong.shape).sum(0) % 2) * 2.0 - 1.0
    sr[1][corner] = wrong * (1.0 + 0.01 * checker)
    synth_interp = {"T1w": interp[1]}
    seen = evidence(lr, guide, hr_affine, lr_affine, mask)
    checks = cons.regional_checks(sr, up, seen, {"T1w": sr[1]}, synth_interp)
    region = checks["right anterior superior"]
    assert region["guide_ssim"]["T1w"] < region["guide_ssim_interp"]["T1w"]
    assert set(cons.region_failures(region)) == {"interp"}  # LR residual and fixed flag pass
    fell = [name for name, c in checks.items() if cons.falls_back(c)]
    assert fell == ["right anterior superior"]
    # the truth explains the guide better than the interpolation everywhere: kept
    checks = cons.regional_checks(truth, up, seen, {"T1w": truth[1]}, synth_interp)
    assert not any(cons.falls_back(c) for c in checks.values())
    # whole-brain checks (no interpolation scores) keep the two fixed reasons only
    assert "interp" not in cons.region_failures(
        {k: v for k, v in region.items() if k != "guide_ssim_interp"}
    )


def test_lr_residual_of_consistent_maps_is_zero_and_grows_with_departure():
    rng = np.random.default_rng(1)
    truth = smooth_maps(rng).astype(np.float64)
    lr = np.asarray(kspace.downsample(truth, (16, 16, 16)))
    up = np.asarray(kspace.upsample(lr, SHAPE))
    acq = KSpace3D(SHAPE, lr.shape[1:])
    assert max(cons.lr_residual(up, lr, acq).values()) < 1e-5
    assert min(cons.lr_residual(1.1 * up, lr, acq).values()) == pytest.approx(0.1, rel=1e-3)


def region(lr: float, lr_input: float, ssim: dict) -> dict:
    return {
        "fraction_of_brain": 0.125,
        "lr_residual": {"PD": 0.02, "T1": lr, "T2": 0.03},
        "lr_residual_input": {"PD": 0.01, "T1": lr_input, "T2": 0.02},
        "guide_ssim": ssim,
    }


def test_warnings_name_the_region_and_the_reason():
    superres = SuperResolution(
        method="swig",
        regions={
            "left anterior superior": region(0.25, 0.03, {"T1w": 0.6, "T2w": 0.7}),
            "right posterior inferior": region(0.25, 0.03, {"T1w": 0.9, "T2w": 0.9}),
            "left posterior inferior": region(0.04, 0.03, {"T1w": 0.95, "T2w": 0.7}),
            "right anterior inferior": region(0.04, 0.03, {"T1w": 0.95, "T2w": 0.9}),
        },
        regional_fallback=[
            {"region": "left anterior superior", "fraction_of_brain": 0.125, "reasons": []}
        ],
    )
    warned = regional_warnings(superres)
    assert len(warned) == 2
    assert warned[0].startswith("in the left anterior superior region (12 % of the brain)")
    assert "fell back" in warned[0] and "T1 0.250" in warned[0] and "T1w 0.600" in warned[0]
    assert "right posterior inferior" in warned[1] and "one fixed check of two failed" in warned[1]
    # one guide's low SSIM alone is common in distribution: in the QC JSON, not warned about
    assert not any("left posterior inferior" in w or "right anterior inferior" in w for w in warned)
    superres.regional_fallback = []  # --no-fallback: the failing region is kept, and said
    assert "kept (fallback off:" in regional_warnings(superres)[0]


def test_app_falls_back_where_the_guides_are_noise_and_says_where(tmp_path, caplog):
    import json

    import nibabel as nib

    from swigapp.cli import phantom as phantom_cli
    from swigapp.cli import run as cli

    bids, out, work = tmp_path / "ds", tmp_path / "out", tmp_path / "work"
    assert phantom_cli.main([str(bids), "-q", "--size", "tiny", "--seed", "5"]) == 0
    rng = np.random.default_rng(0)
    for g in ("T1w", "T2w"):  # noise in the upper half of every voxel axis of both guides
        path = bids / "sub-01" / "anat" / f"sub-01_{g}.nii.gz"
        img = nib.load(path)
        data = np.asarray(img.dataobj, np.float32)
        corner = tuple(slice(n // 2, None) for n in data.shape)
        data[corner] = rng.uniform(0, 2 * np.median(data[data > 0]), data[corner].shape)
        nib.Nifti1Image(data, img.affine, img.header).to_filename(path)
    assert np.allclose(np.diag(img.affine)[:3], 2.0)  # RAS: that corner is right anterior superior
    args = [str(bids), str(out), "participant", "--skip-bids-validation", "-w", str(work)]
    args += ["--omp-nthreads", "1"]
    assert cli.main(args) == 0
    qc = json.loads((out / "sub-01/log/sub-01_qc.json").read_text())
    regional = [f["region"] for f in qc["RegionalFallback"] if not f["region"].startswith("local")]
    assert regional == ["right anterior superior"]
    region = qc["RegionalChecks"]["right anterior superior"]
    assert max(region["guide_ssim"].values()) < cons.GUIDE_SSIM_FLAG
    others = [r for name, r in qc["RegionalChecks"].items() if name != "right anterior superior"]
    assert all(not cons.region_failures(r) for r in others)
    assert any("right anterior superior region" in w and "fell back" in w for w in qc["Warnings"])
    assert "right anterior superior region" in caplog.text
    assert "fell back to the interpolated" in (out / "sub-01/log/sub-01_methods.md").read_text()
    summary = (out / "sub-01.html").read_text().split("<h2>Low-resolution input")[0]
    assert "<p class='flag'>In the right anterior superior region" in summary
    # deep in the region the maps are the interpolated LR maps: nothing from the noise
    sr = np.asarray(nib.load(out / "sub-01/anat/sub-01_res-hi_desc-swig_T1map.nii.gz").dataobj)
    lrs = list(work.rglob("conform_maps/lr_maps.nii.gz"))  # the app's LR maps (s)
    lr = np.moveaxis(np.asarray(nib.load(lrs[0]).dataobj), -1, 0)
    up = cons.fallback_maps(lr, KSpace3D(sr.shape, lr.shape[1:]))[1]  # T1 (s), cubic spline
    deep = tuple(slice(n // 2 + 5, None) for n in sr.shape)  # 2.5 edge widths in
    brain = nib.load(out / "sub-01/anat/sub-01_res-hi_desc-brain_mask.nii.gz").dataobj
    inside = np.asarray(brain)[deep] > 0
    assert inside.sum() > 100
    fell = np.median(np.abs(sr[deep] - up[deep])[inside])
    assert fell < 1e-4  # s
    # kept, and said so; adaptation left to auto, which records its decision
    assert cli.main([*args, "--no-fallback", "--adapt-steps", "auto"]) == 0
    qc = json.loads((out / "sub-01/log/sub-01_qc.json").read_text())
    assert qc["Adaptation"]["mode"] == "auto" and qc["Adaptation"]["reason"]
    assert qc["Adaptation"]["steps"] in (0, 30) and "guide_ssim" in qc["Adaptation"]["before"]
    side = json.loads((out / "sub-01/anat/sub-01_res-hi_desc-swig_T1map.json").read_text())
    assert side["AdaptSteps"] == "auto" and side["AdaptDecision"] == qc["Adaptation"]["reason"]
    methods = (out / "sub-01/log/sub-01_methods.md").read_text()
    assert "Adaptation to this participant was decided automatically" in methods
    assert qc["RegionalFallback"] == []
    assert any("kept (fallback off:" in w for w in qc["Warnings"])
    kept = np.asarray(nib.load(out / "sub-01/anat/sub-01_res-hi_desc-swig_T1map.nii.gz").dataobj)
    assert np.median(np.abs(kept[deep] - up[deep])[inside]) > 0.005  # noise-guided


def test_the_super_resolution_result_round_trips_through_its_record():
    """The step's typed result travels between Nipype nodes as a dict: every field comes
    back, and a key the type does not know is refused rather than dropped."""
    import json

    result = SuperResolution(
        method="swig",
        sr_file="sr_maps.nii.gz",
        model={"name": "swig_default", "version": 7},
        slice_axes=[0, 2],
        lr_residual={"PD": 0.01, "T1": 0.02, "T2": float("nan")},
        seconds=3.5,
    )
    record = json.loads(json.dumps(result.to_record()))
    back = SuperResolution.from_record(record)
    assert back.slice_axes == [0, 2] and back.model == {"name": "swig_default", "version": 7}
    assert back.seconds == 3.5 and np.isnan(back.lr_residual["T2"])
    with pytest.raises(ValueError, match="unknown field"):
        SuperResolution.from_record(record | {"lr_residul": {}})
    conformed = Conformed(
        "lr_maps.nii.gz", "lr_up_maps.nii.gz", acquired=["T1"], estimated={"PD": "tissue prior"}
    )
    back = Conformed.from_record(json.loads(json.dumps(conformed.to_record())))
    assert back == conformed and back.pd_scale == {} and back.acquisition is None
    from swigapp.results import GuideRegistration, Masked, Synthesised

    steps = [
        Masked("brain_mask.nii.gz", "maps and template", seconds=1.5),
        GuideRegistration(
            "T1w",
            "T1w_registered.nii.gz",
            "T1w_coverage.nii.gz",
            "T1w_target.nii.gz",
            ["T1w_xfm0GenericAffine.mat"],
            metric=-0.61,
            coverage=0.97,
            shrink=2,
        ),
        Synthesised(
            {"T1w": "synthguide_T1w.nii.gz"}, {"FLAIR": "synth_FLAIR.nii.gz"}, {"T1w": 0.93}
        ),
    ]
    for step in steps:
        record = json.loads(json.dumps(step.to_record()))
        assert type(step).from_record(record) == step
        with pytest.raises(ValueError, match="unknown field"):
            type(step).from_record(record | {"extra": 1})


def test_the_guard_never_writes_zero_inside_the_brain_mask():
    """The maps are 0 beyond the LR maps' support (the head), but not inside the app's own
    brain mask: where the mask reaches an HR voxel whose nearest LR voxel is 0 (a
    skull-stripped map's edge), the maps stay. 263 of the demo's 176221 mask voxels had
    T1 = 0 s before."""
    import torch

    from swigapp.methods import Request
    from swigapp.participant import Prediction, guard_prediction
    from swigapp.synthesis import synthesize

    hr, small = (16, 16, 16), (8, 8, 8)
    lr = np.zeros((3, *small), np.float32)
    lr[:, 2:6, 2:6, 2:6] = np.array([0.8, 1.0, 0.08], np.float32)[:, None, None, None]
    sr = (
        np.ones((3, *hr), np.float32) * np.array([0.75, 1.1, 0.09], np.float32)[:, None, None, None]
    )
    mask = np.zeros(hr, bool)
    mask[3:13, 3:13, 3:13] = True  # one HR voxel beyond the LR support on each side
    acq = KSpace3D(hr, small)
    protocol = DEFAULT_PROTOCOLS["T1w"]
    guide = synthesize(dict(zip(("PD", "T1", "T2"), sr, strict=True)), protocol)
    lr_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    evidence = cons.Evidence(lr, acq, {"T1w": guide}, {"T1w": protocol}, mask, lr_affine,
                             np.eye(4))  # fmt: skip
    up = acq.upsample(lr)
    prediction = Prediction("swig", sr, None, {}, {}, None, evidence, up, {})
    kept = guard_prediction(prediction, Request(device=torch.device("cpu")), (), fallback=False)
    assert (kept.maps[:, mask] > 0).all()
    np.testing.assert_array_equal(kept.maps[:, mask], sr[:, mask])
    beyond = np.ones(hr, bool)  # HR voxel 2i is LR voxel i: the planes of HR voxel 0 are
    beyond[1:, 1:, 1:] = False  # beyond the LR support, its one-voxel ring and the mask
    assert (kept.maps[:, beyond] == 0).all()


def test_the_head_mask_is_the_input_handlings_head_region_and_one_lr_voxel_around_it():
    """Beyond a brain, fitted LR maps hold noise whose negative half the input handling
    sets to 0. The head mask is the LR head region (the input handling's own rule) grown by
    one LR voxel: the brain's edge keeps the network's output, and a noisy background
    far from the brain is 0 everywhere, not speckled by the noise's positive half."""
    import torch

    from swigapp.methods import Request
    from swigapp.participant import HEAD_MARGIN_LR_VOXELS, Prediction, guard_prediction

    rng = np.random.default_rng(0)
    hr, small = (32, 32, 32), (16, 16, 16)
    lr = np.zeros((3, *small), np.float32)
    noise = np.clip(rng.normal(0.0, 0.02, small), 0.0, None)  # negatives clipped to 0
    lr[0] = noise
    lr[1], lr[2] = noise * 40, noise * 2
    lr[:, 5:11, 5:11, 5:11] = np.array([0.8, 1.0, 0.08], np.float32)[:, None, None, None]
    sr = np.broadcast_to(np.array([0.75, 1.1, 0.09], np.float32)[:, None, None, None],
                         (3, *hr)).copy()  # fmt: skip
    mask = np.zeros(hr, bool)
    mask[11:21, 11:21, 11:21] = True
    acq = KSpace3D(hr, small)
    evidence = cons.Evidence(lr, acq, {}, {}, mask, np.diag([2.0, 2.0, 2.0, 1.0]), np.eye(4))
    prediction = Prediction("swig", sr, None, {}, {}, None, evidence, acq.upsample(lr), {})
    kept = guard_prediction(prediction, Request(device=torch.device("cpu")), (), fallback=False)
    assert HEAD_MARGIN_LR_VOXELS == 1
    inner = np.zeros(hr, bool)  # HR voxel 2i is LR voxel i: HR 8 and 22 along the first
    inner[[8, 22], 12:20, 12:20] = True  # axis are the ring's LR voxels 4 and 11
    np.testing.assert_array_equal(kept.maps[:, inner], sr[:, inner])
    far = np.ones(hr, bool)
    far[6:26, 6:26, 6:26] = False  # two LR voxels and more from the brain
    assert (noise > 0).mean() > 0.4  # the background's positive half, where speckle was
    assert (kept.maps[:, far] == 0).all()


def test_values_the_lr_maps_contradict_fall_back_locally_and_only_there():
    # the NIST phantom's short-T2 spheres: the network drew T2 up to 4x the acquired value
    rng = np.random.default_rng(1)
    truth, lr, up, hr_affine, lr_affine, mask = two_x_subject(rng)
    ev = evidence(lr, {"T1w": truth[1].copy()}, hr_affine, lr_affine, mask)
    ev = evidence(lr, ev.synthesise(truth), hr_affine, lr_affine, mask)  # a true T1w guide
    kept, fell = cons.local_fallback(truth.copy(), ev)
    assert fell == [] and np.array_equal(kept, truth)  # consistent maps are left alone
    distance = np.sqrt(((np.indices(SHAPE) - 16.0) ** 2).sum(axis=0))
    ball = distance <= 4.5  # a 9 mm sphere on a 1 mm grid, 2 mm LR voxels
    sr = truth.copy()
    sr[2][ball] *= 2.0
    out, fell = cons.local_fallback(sr, ev)
    assert [f["region"] for f in fell] == ["local T2"]
    assert 0 < fell[0]["fraction_of_brain"] < 0.05  # the ball is 1.2 % of the volume
    assert np.array_equal(out[:2], sr[:2])  # PD and T1 untouched
    assert np.abs(out[2][ball] / truth[2][ball] - 1).mean() < 0.05  # back to the LR data
    assert np.allclose(out[2][distance > 14], sr[2][distance > 14], rtol=1e-3)
    guarded, _, fallen = cons.guard(sr, up, ev)
    assert [f["region"] for f in fallen] == ["local T2"]  # no octant falls back
    assert np.abs(guarded[2][ball] / truth[2][ball] - 1).mean() < 0.05
    result = SuperResolution(method="swig", regions={}, regional_fallback=fell)
    (warning,) = regional_warnings(result)
    assert warning.startswith("local T2: in ") and "departs from the acquired LR T2" in warning
    assert re.search(r"around 1[5-7], 1[5-7], 1[5-7] mm", warning)  # the ball's centre


def test_the_local_check_covers_the_head_beyond_the_brain_but_not_its_zeroed_edge():
    """Beyond the brain mask, in the interior of the head the app writes (a phantom's
    spheres that are not brain-like), values the LR maps contradict fall back too; the
    head's edge, where the maps are set to 0 against the LR maps' ringing rim, does not."""
    import torch

    from swigapp.methods import Request
    from swigapp.participant import Prediction, guard_prediction

    hr, small = (48, 48, 48), (24, 24, 24)
    distance = np.sqrt(((np.indices(hr) - 23.5) ** 2).sum(axis=0))
    truth = np.where(distance <= 20, np.array([0.8, 1.2, 0.09], np.float32)[:, None, None, None],
                     np.float32(0.0)).astype(np.float32)  # fmt: skip
    lr = np.asarray(kspace.downsample(truth.astype(np.float64), small), np.float32)
    lr = np.clip(lr, 0.0, None)  # the ringing rim, clipped at 0 as fitted maps are
    acq = KSpace3D(hr, small)
    mask = distance <= 10  # the brain: the head's centre
    lr_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    lr_affine[:3, 3] = 0.5
    protocol = DEFAULT_PROTOCOLS["T1w"]
    from swigapp.synthesis import synthesize

    guide = synthesize(dict(zip(("PD", "T1", "T2"), truth, strict=True)), protocol)
    ev = cons.Evidence(lr, acq, {"T1w": guide}, {"T1w": protocol}, mask, lr_affine, np.eye(4))
    request = Request(device=torch.device("cpu"))

    def guarded(sr):
        prediction = Prediction("swig", sr, None, {}, {}, None, ev, acq.upsample(lr), {})
        return guard_prediction(prediction, request, ())

    plain = guarded(truth.copy())
    assert [f["region"] for f in plain.regional_fallback] == []  # the sharp edge against the rim
    sphere = np.sqrt(((np.indices(hr) - np.array([23.5, 23.5, 37.0])[:, None, None, None]) ** 2
                      ).sum(axis=0)) <= 2.5  # fmt: skip
    assert not (sphere & mask).any() and (distance[sphere] < 16).all()
    sr = truth.copy()
    sr[2][sphere] *= 3.0  # T2 drawn 3x the acquired value, beyond the brain
    out = guarded(sr)
    (local,) = [f for f in out.regional_fallback if f["region"] == "local T2"]
    assert "beyond the brain mask" in local["reasons"][0]
    assert np.abs(out.maps[2][sphere] / truth[2][sphere] - 1).mean() < 0.3  # towards the LR
    assert np.abs(sr[2][sphere] / truth[2][sphere] - 1).mean() == pytest.approx(2.0)
    centre = mask & (distance < 6)  # the brain's centre keeps the network's maps
    np.testing.assert_allclose(out.maps[:, centre], sr[:, centre], rtol=2e-3)
    _, fell = cons.local_fallback(np.where(ev.mask | (distance <= 22), sr, 0), ev)
    assert fell == []  # the brain alone (no head given) is not where the sphere is
