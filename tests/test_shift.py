"""Distribution shifts of the phantom (swigapp.phantom.shift): each axis moves what it says
and nothing else, and a phantom without a shift is the phantom of earlier versions."""

from dataclasses import replace

import numpy as np
import pytest

from swigapp.operators import grid, kspace
from swigapp.phantom import shift as shifts
from swigapp.phantom.anatomy import load_anatomy
from swigapp.phantom.subject import PhantomConfig, make_subject
from swigapp.phantom.tissue import TISSUE_RANGES, sample_tissue_values
from swigapp.physics.protocol import DEFAULT_PROTOCOLS

TINY = PhantomConfig(size="tiny", guides=("T1w", "T2w"))


def arrays(subject) -> dict:
    out = {f"truth_{k}": v for k, v in subject.truth.as_dict().items()}
    out |= {f"lr_{k}": v for k, v in subject.lr_maps.items()}
    return out | {f"guide_{k}": v for k, v in subject.guides.items()}


def test_default_shift_leaves_the_phantom_unchanged():
    plain = make_subject(0, seed=7, config=TINY)
    empty = make_subject(0, seed=7, config=replace(TINY, shift=shifts.Shift()))
    for key, value in arrays(plain).items():
        np.testing.assert_array_equal(value, arrays(empty)[key], err_msg=key)
    assert plain.protocols == empty.protocols
    assert "shift" not in plain.config.record()
    assert empty.config.record()["shift"] == {}


def test_t1_presets_and_scaling_move_values_beyond_the_training_ranges():
    rng = np.random.default_rng(0)
    values = sample_tissue_values(rng)
    seven = shifts.tissue_values(values, shifts.Shift(t1_preset="7T"), rng)
    low = shifts.tissue_values(values, shifts.Shift(t1_preset="1.5T"), rng)
    for tissue in ("WM", "GM", "CSF", "lesion"):
        lo, hi = shifts.T1_PRESETS["7T"][tissue]
        assert lo <= seven[tissue]["T1"] <= hi
        assert seven[tissue]["T1"] > TISSUE_RANGES[tissue]["T1"][1] - 1e-9
        assert low[tissue]["T1"] < TISSUE_RANGES[tissue]["T1"][0] + 0.25
        assert seven[tissue]["T2"] == values[tissue]["T2"]  # presets move T1 only
    scaled = shifts.tissue_values(values, shifts.Shift(tissue_scale=0.25), rng)
    for tissue in ("WM", "GM", "CSF", "lesion"):
        for name in ("T1", "T2"):
            ratio = scaled[tissue][name] / values[tissue][name]
            assert ratio == pytest.approx(1.25) or ratio == pytest.approx(0.75)
        assert scaled[tissue]["PD"] == values[tissue]["PD"]


def test_atrophy_widens_csf_and_keeps_fractions_summing_to_the_mask():
    anatomy = load_anatomy("tiny")
    thin = shifts.atrophy(anatomy, 4.0)
    assert thin.csf.sum() > 1.3 * anatomy.csf.sum()
    assert (thin.gm + thin.wm).sum() < (anatomy.gm + anatomy.wm).sum()
    np.testing.assert_allclose(thin.gm + thin.wm + thin.csf, anatomy.mask, atol=1e-5)
    assert (thin.gm <= anatomy.gm + 1e-6).all() and (thin.wm <= anatomy.wm + 1e-6).all()


@pytest.mark.parametrize("volume_ml", [0.0, 5.0, 20.0])
def test_lesion_load_reaches_its_volume_at_every_site(volume_ml):
    anatomy = load_anatomy("tiny")
    rng = np.random.default_rng(3)
    lesion = shifts.lesion_load(anatomy, rng, volume_ml, shifts.LESION_SITES)
    voxel_ml = float(np.prod(anatomy.voxel_size)) / 1000
    load = float((lesion * anatomy.wm).sum()) * voxel_ml
    if volume_ml == 0:
        assert load == 0.0
        return
    assert volume_ml <= load <= volume_ml + 1.2  # the last lesion overshoots, at most ~1 ml
    assert lesion.max() <= 1.0 and (lesion[anatomy.wm == 0] == 0).all()


def test_lesion_sites_are_where_they_say():
    anatomy = load_anatomy("tiny")
    vox = anatomy.voxel_size
    from scipy import ndimage

    to_csf = ndimage.distance_transform_edt(anatomy.csf < 0.8, sampling=vox)
    to_gm = ndimage.distance_transform_edt(anatomy.gm <= 0.5, sampling=vox)
    peri = shifts.lesion_candidates(anatomy, "periventricular")
    juxta = shifts.lesion_candidates(anatomy, "juxtacortical")
    deep = shifts.lesion_candidates(anatomy, "deep")
    assert len(peri) and len(juxta) and len(deep)
    assert to_csf[tuple(peri.T)].max() <= 3.0
    assert to_gm[tuple(juxta.T)].max() <= 2.0
    assert np.median(to_gm[tuple(deep.T)]) > np.median(to_gm[tuple(juxta.T)])


def test_protocol_draws_and_sidecar_mismatch():
    rng = np.random.default_rng(1)
    shift = shifts.Shift(
        mprage_ti_s=(0.8, 1.2), mprage_flip_deg=(6.0, 10.0), tse_te_s=(0.08, 0.12),
        sidecar_ti_error=0.1,
    )  # fmt: skip
    for _ in range(10):
        side, real = shifts.guide_protocols(DEFAULT_PROTOCOLS["T1w"], "T1w", shift, rng)
        assert 0.8 <= side.ti <= 1.2 and 6.0 <= side.flip_deg <= 10.0
        assert real.ti / side.ti == pytest.approx(0.9) or real.ti / side.ti == pytest.approx(1.1)
        assert real.flip_deg == side.flip_deg
        side, real = shifts.guide_protocols(DEFAULT_PROTOCOLS["T2w"], "T2w", shift, rng)
        assert 0.08 <= side.te <= 0.12 and real == side


def test_coarser_guide_removes_detail_beyond_its_resolution():
    rng = np.random.default_rng(2)
    guide = rng.random((40, 40, 20)).astype(np.float32) + 1.0
    assert shifts.coarser_guide(guide, (1.0, 1.0, 1.0), 0.8) is guide
    blurred = shifts.coarser_guide(guide, (1.0, 1.0, 1.0), 1.3)
    small = grid.lr_shape(guide.shape, (1.3, 1.3, 1.3))
    beyond = kspace.beyond_band(blurred.astype(np.float64), small)
    assert np.abs(beyond).max() < 1e-4 * np.abs(blurred).max()
    assert blurred.mean() == pytest.approx(guide.mean(), rel=1e-4)


def test_shifted_subject_records_its_shift_and_moves_its_data():
    shift = shifts.Shift(
        t1_preset="7T", lr_snr=(20.0, 20.0), b1_error=0.15, inversion_efficiency=0.9,
        guide_resolution_mm=(1.3, 1.3), atrophy_mm=2.0, lesion_volume_ml=(3.0, 3.0),
        lesion_sites=("periventricular",),
    )  # fmt: skip
    plain = make_subject(0, seed=7, config=TINY)
    moved = make_subject(0, seed=7, config=replace(TINY, shift=shift))
    record = moved.config.record()["shift"]
    assert record["t1_preset"] == "7T" and record["b1_error"] == 0.15
    gm = moved.truth.tissue_masks()["GM"]
    assert 1.7 < float(np.median(moved.truth.t1[gm])) < 2.3  # 7T-like GM T1 (s)

    # LR SNR 20: the LR T1's relative deviation from the truth's band grows
    def lr_error(subject) -> float:
        truth = kspace.downsample(subject.truth.t1.astype(np.float64), subject.lr_maps["T1"].shape)
        inside = truth > 0.5
        return float(np.std(subject.lr_maps["T1"][inside] / truth[inside]))

    assert lr_error(moved) > 2.0 * lr_error(plain)
    assert moved.truth.lesion_mask.sum() > 0


def test_random_shifts_cover_their_ranges_half_the_time():
    rng = np.random.default_rng(3)
    draws = [shifts.random_shift(rng) for _ in range(400)]
    for name, span in shifts.RANDOMISATION.items():
        on = [getattr(d, name) for d in draws if name in d.describe()]
        # RANDOM_ON = 0.5; the preset, when on, is 3T (no change) half the time
        expected = 0.25 if name == "t1_preset" else 0.5
        assert abs(len(on) / len(draws) - expected) < 0.1, name
        if name == "t1_preset":
            assert {"1.5T", "7T"} <= set(on)
        elif name in ("tissue_scale", "sidecar_ti_error", "b1_error", "atrophy_mm",
                      "inversion_efficiency", "bias_strength"):  # fmt: skip
            assert span[0] <= min(on) and max(on) <= span[1], name
        else:
            assert set(on) == {span}, name
    for d in draws:
        lesions = d.lesion_volume_ml is not None
        assert d.lesion_sites == (shifts.LESION_SITES if lesions else ("deep",))
    again = shifts.random_shift(np.random.default_rng(3))
    assert again == draws[0]


def test_randomised_training_subjects_differ_and_are_reproducible():
    from swigapp.models.data import RANDOM_DEFORMATION_MM, randomised

    configs = [randomised(TINY, 1000, i) for i in range(6)]
    assert randomised(TINY, 1000, 2) == configs[2]
    assert len({c.shift for c in configs}) == 6
    assert all(RANDOM_DEFORMATION_MM[0] <= c.deformation_mm <= RANDOM_DEFORMATION_MM[1]
               for c in configs)  # fmt: skip
    shifted = [randomised(TINY, 1000, i).shift for i in range(60)]
    seven = next(i for i, d in enumerate(shifted) if d.t1_preset == "7T" and not d.tissue_scale)
    subject = make_subject(seven, seed=1000, config=randomised(TINY, 1000, seven))
    plain = make_subject(seven, seed=1000, config=TINY)
    gm, plain_gm = (s.truth.tissue_masks()["GM"] for s in (subject, plain))
    assert 1.85 <= subject.truth.t1[gm].mean() <= 2.15  # the 7T preset's GM T1 (s)
    assert plain.truth.t1[plain_gm].mean() < 1.6
    assert subject.config.record()["shift"]["t1_preset"] == "7T"
