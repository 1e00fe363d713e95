"""Phantom anatomy, ground-truth maps and simulated acquisitions."""

import numpy as np
import pytest

from swigapp.operators import kspace
from swigapp.phantom.acquire import RigidMotion, simulate_guide, simulate_lr_maps
from swigapp.phantom.anatomy import Anatomy, deform, load_anatomy, smooth_field
from swigapp.phantom.subject import PhantomConfig, jitter_protocol, make_subject
from swigapp.phantom.tissue import TISSUE_RANGES, make_truth
from swigapp.physics import DEFAULT_PROTOCOLS


def test_tiny_anatomy_grid_and_fractions():
    anat = load_anatomy("tiny")
    assert anat.shape == (76, 92, 40)
    assert anat.voxel_size == (2.0, 2.0, 2.0)
    total = anat.gm + anat.wm + anat.csf
    assert total.max() <= 1.0 + 1e-5 and anat.csf.min() >= 0
    # a real brain: GM and WM both plentiful, CSF present (ventricles), brain inside the box
    assert (anat.gm > 0.5).sum() > 20000 and (anat.wm > 0.5).sum() > 15000
    assert (anat.csf > 0.5).sum() > 1000
    assert anat.mask[0].max() == 0 and anat.mask[-1].max() == 0
    # the slab is centred on MNI z = +10 mm
    centre_z = (anat.affine @ [0, 0, (anat.shape[2] - 1) / 2, 1])[2]
    assert abs(centre_z - 10.0) <= 2.0


def test_deformation_is_smooth_bounded_and_seeded():
    anat = load_anatomy("tiny")
    a = deform(anat, np.random.default_rng(1), amplitude_mm=3.0)
    b = deform(anat, np.random.default_rng(1), amplitude_mm=3.0)
    c = deform(anat, np.random.default_rng(2), amplitude_mm=3.0)
    np.testing.assert_array_equal(a.gm, b.gm)
    assert np.abs(a.gm - c.gm).mean() > 1e-3
    # a 3 mm warp changes local tissue but keeps the brain volume within 5 %
    assert abs(a.mask.sum() / anat.mask.sum() - 1) < 0.05
    assert deform(anat, np.random.default_rng(1), amplitude_mm=0.0) is anat


def test_smooth_field_statistics():
    field = smooth_field((40, 30, 20), np.random.default_rng(0))
    assert field.shape == (40, 30, 20)
    assert abs(field.mean()) < 1e-5 and field.std() == pytest.approx(1.0, rel=1e-4)
    # smooth: neighbouring voxels are strongly correlated
    assert np.corrcoef(field[:-1].ravel(), field[1:].ravel())[0, 1] > 0.95


def _toy_anatomy():
    shape = (8, 8, 8)
    wm = np.zeros(shape, np.float32)
    gm = np.zeros(shape, np.float32)
    csf = np.zeros(shape, np.float32)
    wm[:4] = 1.0
    gm[4:6] = 1.0
    wm[6], gm[6] = 0.5, 0.5  # a 50/50 partial-volume slab
    csf[7] = 1.0
    mask = wm + gm + csf
    return Anatomy(gm=gm, wm=wm, csf=csf, mask=mask, affine=np.eye(4))


def test_truth_pure_tissues_and_partial_volume_rule():
    truth = make_truth(_toy_anatomy(), np.random.default_rng(0), n_lesions=0, heterogeneity=0.0)
    v = truth.values
    np.testing.assert_allclose(truth.t1[0], v["WM"]["T1"], rtol=1e-5)
    np.testing.assert_allclose(truth.t2[4], v["GM"]["T2"], rtol=1e-5)
    np.testing.assert_allclose(truth.pd[7], v["CSF"]["PD"], rtol=1e-5)
    # PD mixes linearly; relaxation rates mix weighted by each tissue's water
    pd_wm, pd_gm = v["WM"]["PD"], v["GM"]["PD"]
    np.testing.assert_allclose(truth.pd[6], 0.5 * (pd_wm + pd_gm), rtol=1e-5)
    r1 = (pd_wm / v["WM"]["T1"] + pd_gm / v["GM"]["T1"]) / (pd_wm + pd_gm)
    np.testing.assert_allclose(truth.t1[6], 1.0 / r1, rtol=1e-5)
    for tissue, ranges in TISSUE_RANGES.items():
        for name, (lo, hi) in ranges.items():
            assert lo <= v[tissue][name] <= hi


def test_truth_on_template_matches_literature(tiny_subject):
    truth = tiny_subject.truth
    pure = truth.tissue_masks(0.95)
    for tissue in ("WM", "GM", "CSF"):
        for name, data in truth.as_dict().items():
            lo, hi = TISSUE_RANGES[tissue][name]
            median = float(np.median(data[pure[tissue]]))
            assert lo * 0.9 <= median <= hi * 1.1, (tissue, name, median)
    assert truth.lesion_mask.sum() > 0
    lesion_t2 = np.median(truth.t2[truth.lesion_mask])
    assert lesion_t2 > np.median(truth.t2[pure["WM"]]) * 1.3
    assert truth.t1[~truth.brain_mask & (truth.pd == 0)].max() == 0.0


def test_rigid_motion_shift_and_roundtrip():
    rng = np.random.default_rng(0)
    img = np.zeros((24, 24, 24), np.float32)
    img[8:16, 6:14, 10:18] = 1.0
    shifted = RigidMotion((0, 0, 0), (4.0, 0, 0)).apply(img, (2.0, 2.0, 2.0), order=1)
    np.testing.assert_allclose(shifted[10:18, 6:14, 10:18], 1.0, atol=1e-6)  # 4 mm = 2 voxels
    smooth = smooth_field((24, 24, 24), rng, nodes=3)
    move = RigidMotion((3.0, -2.0, 1.5), (1.0, 2.0, -1.0))
    back = RigidMotion((0, 0, 0), (0, 0, 0))
    assert back.apply(smooth, (1, 1, 1)) is smooth
    voxel = (1.0, 1.0, 1.2)
    moved = move.apply(smooth, voxel)
    inverse = np.linalg.inv(move.matrix())
    from scipy.spatial.transform import Rotation

    inverse_motion = RigidMotion(
        tuple(Rotation.from_matrix(inverse[:3, :3]).as_euler("xyz", degrees=True)),
        tuple(inverse[:3, 3]),
    )
    inner = (slice(6, 18),) * 3
    peak = np.abs(smooth).max()
    for restored in (inverse_motion.apply(moved, voxel), move.undo(moved, voxel)):
        assert np.abs(restored[inner] - smooth[inner]).max() < 0.05 * peak
    assert np.abs(moved[inner] - smooth[inner]).max() > 0.1 * peak


def test_perturbed_motion_stays_within_the_error_bounds():
    rng = np.random.default_rng(3)
    move = RigidMotion((2.0, -1.0, 0.5), (1.0, -3.0, 2.0))
    assert move.perturbed(rng, 0.0, 0.0) == move
    for _ in range(20):
        est = move.perturbed(rng, 0.3, 0.5)
        d_rot = np.subtract(est.rotation_deg, move.rotation_deg)
        d_mm = np.subtract(est.translation_mm, move.translation_mm)
        assert np.abs(d_rot).max() <= 0.3 and np.abs(d_mm).max() <= 0.5
        assert np.abs(d_rot).max() > 0 and np.abs(d_mm).max() > 0


def test_lr_maps_are_kspace_truncation(tiny_subject):
    maps = tiny_subject.truth.as_dict()
    small = (38, 46, 20)
    lr = simulate_lr_maps(maps, small, np.random.default_rng(0), noise={})
    expected = np.clip(kspace.downsample(maps["T1"].astype(np.float64), small), 0, None)
    np.testing.assert_allclose(lr["T1"], expected, atol=1e-5)
    noisy = simulate_lr_maps(maps, small, np.random.default_rng(0))
    inside = expected > 0.5
    rel = (noisy["T1"][inside] - expected[inside]) / expected[inside]
    assert rel.std() == pytest.approx(0.02, rel=0.15)


def test_guide_noise_is_rician_at_requested_snr(tiny_subject):
    maps = tiny_subject.truth.as_dict()
    protocol = DEFAULT_PROTOCOLS["T2w"]
    img = simulate_guide(
        maps, protocol, np.random.default_rng(0), (2, 2, 2), bias_strength=0.0, snr=20.0, scale=1.0
    )
    clean = protocol.signal_np(maps["PD"], maps["T1"], maps["T2"])
    sigma = clean[maps["PD"] > 0.5].mean() / 20.0
    background = img[maps["PD"] == 0]
    # magnitude of pure complex noise is Rayleigh: mean = sigma sqrt(pi/2)
    assert background.mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.05)
    assert img.min() >= 0


def test_subject_is_deterministic_and_distinct(tiny_subject):
    again = make_subject(0, seed=7, config=PhantomConfig(size="tiny"))
    np.testing.assert_array_equal(again.guides["T1w"], tiny_subject.guides["T1w"])
    np.testing.assert_array_equal(again.lr_maps["T2"], tiny_subject.lr_maps["T2"])
    other = make_subject(1, seed=7, config=PhantomConfig(size="tiny"))
    assert not np.allclose(other.truth.t1, tiny_subject.truth.t1)
    assert tiny_subject.lr_maps["T1"].shape == (38, 46, 20)
    np.testing.assert_allclose(np.diag(tiny_subject.lr_affine)[:3], [4.0, 4.0, 4.0])
    # contrast of the guides: WM brighter than GM on T1w, CSF brightest on T2w
    pure = tiny_subject.truth.tissue_masks(0.95)
    for name, order in (("T1w", ("WM", "GM", "CSF")), ("T2w", ("CSF", "GM", "WM"))):
        clean = tiny_subject.protocols[name].signal_np(*tiny_subject.truth.as_dict().values())
        medians = [np.median(clean[pure[t]]) for t in order]
        assert medians[0] > medians[1] > medians[2]


def test_protocol_jitter_stays_valid():
    rng = np.random.default_rng(0)
    for _ in range(50):
        for proto in DEFAULT_PROTOCOLS.values():
            jittered = jitter_protocol(proto, rng, 0.2)  # validated on construction
            assert jittered.model == proto.model
            assert abs(jittered.tr / proto.tr - 1) <= 0.5
    assert jitter_protocol(DEFAULT_PROTOCOLS["T1w"], rng, 0.0) is DEFAULT_PROTOCOLS["T1w"]


def test_unknown_guide_rejected():
    with pytest.raises(ValueError, match="unknown guide contrast"):
        make_subject(0, config=PhantomConfig(guides=("T1w", "DWI")))


def test_guides_with_a_margin_see_beyond_the_maps_slab():
    """``guide_margin_mm``: the guides' grid holds the maps' slab plus the template's
    neighbouring slices (the truth and LR maps are the slab alone, on their own affine),
    so a guide moved by the configured motion still sees the whole brain of the slab."""
    config = PhantomConfig(size="tiny", guide_margin_mm=10.0, n_lesions=0)
    s = make_subject(0, seed=3, config=config)
    vox = 2.0  # tiny: 2 mm voxels
    assert s.truth.pd.shape[2] == 40 and s.guides["T1w"].shape[2] == 40 + 2 * 5
    assert s.guides["T1w"].shape[:2] == s.truth.pd.shape[:2]
    # the slab sits 5 slices (10 mm) above the guides' first slice, on the same axes
    np.testing.assert_allclose(s.truth_affine[:3, 3] - s.affine[:3, 3], [0, 0, 10.0])
    np.testing.assert_allclose(s.truth_affine[:3, :3], s.affine[:3, :3])
    assert s.lr_maps["T1"].shape == (s.truth.pd.shape[0] // 2, s.truth.pd.shape[1] // 2, 20)
    # every brain voxel of the slab lies inside each guide's field of view, with the room
    # the motion limits need (3 mm and 3 degrees over the half-width of the brain)
    brain_z = np.argwhere(s.truth.brain_mask > 0.5)[:, 2]
    world_z = s.truth_affine[2, 3] + vox * brain_z
    guide_z = (s.affine[2, 3], s.affine[2, 3] + vox * (s.guides["T1w"].shape[2] - 1))
    reach = 3.0 + np.sin(np.radians(3.0)) * 0.5 * vox * max(s.truth.pd.shape[:2])
    assert world_z.min() - guide_z[0] >= reach and guide_z[1] - world_z.max() >= reach
    # the slab's brain content is the template's: the guides' extra slices hold brain too
    assert (s.guides["T1w"][..., :5] > 0).any()
    with pytest.raises(ValueError, match="guide_margin_mm"):
        make_subject(0, seed=3, config=PhantomConfig(size="tiny", guide_margin_mm=8, tilt_deg=5))
