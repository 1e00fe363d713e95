"""Tests for swigapp.metrics: reference values, analytic cases and mask handling."""

import math

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import structural_similarity

from swigapp import metrics
from swigapp.metrics import (
    DATA_RANGE,
    LOG_TRUNCATE,
    hfen,
    hfen_beyond_band,
    mpe,
    mutual_information,
    nrmse,
    psnr,
    ssim,
    tissue_mae_ms,
)

BORDER = 6


def _smooth(shape, seed, sigma=2.0, lo=0.2, hi=1.0):
    """Smooth positive random image rescaled to [lo, hi]."""
    rng = np.random.default_rng(seed)
    img = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    img = (img - img.min()) / (img.max() - img.min())
    return lo + (hi - lo) * img


def _interior(ndim, b=BORDER):
    return (slice(b, -b),) * ndim


# --------------------------------------------------------------------------- SSIM


@pytest.mark.parametrize("shape", [(64, 56), (28, 32, 24)])
def test_ssim_matches_skimage_map_in_interior(shape):
    x = _smooth(shape, seed=1)
    rng = np.random.default_rng(2)
    x_hat = x + ndimage.gaussian_filter(0.2 * rng.standard_normal(shape), 1.0)
    r = 1.3
    mean, smap = ssim(x_hat, x, data_range=r, full=True)
    _, ref_map = structural_similarity(
        x_hat,
        x,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=r,
        full=True,
    )
    assert smap.shape == x.shape
    inner = _interior(x.ndim)
    np.testing.assert_allclose(smap[inner], ref_map[inner], rtol=1e-6, atol=1e-9)
    # not trivially close to 1, so the comparison above is meaningful
    assert 0.1 < mean < 0.95
    # mean over the whole image (no border crop) and over an interior mask
    assert mean == pytest.approx(float(smap.mean()), rel=1e-12)
    mask = np.zeros(shape, dtype=bool)
    mask[inner] = True
    assert ssim(x_hat, x, data_range=r, mask=mask) == pytest.approx(
        float(ref_map[inner].mean()), rel=1e-6
    )


def test_ssim_identical_is_one():
    x = _smooth((20, 22, 18), seed=3)
    assert ssim(x, x, data_range=1.0) == pytest.approx(1.0, abs=1e-12)
    assert ssim(x[..., 0], x[..., 0], data_range=1.0) == pytest.approx(1.0, abs=1e-12)


def test_ssim_decreases_with_noise():
    x = _smooth((40, 40, 16), seed=4)
    noise = np.random.default_rng(5).standard_normal(x.shape)
    values = [ssim(x + sd * noise, x, data_range=1.0) for sd in (0.0, 0.01, 0.03, 0.1, 0.3)]
    assert values[0] == pytest.approx(1.0)
    assert np.all(np.diff(values) < 0)
    assert values[-1] < 0.5


def test_ssim_data_range_required_and_validated():
    x = _smooth((16, 16), seed=6)
    with pytest.raises(TypeError):
        ssim(x, x)  # type: ignore[call-arg]
    for bad in (None, 0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="data_range"):
            ssim(x, x, data_range=bad)


def test_ssim_data_range_changes_value():
    x = _smooth((32, 32), seed=7)
    x_hat = x + 0.05 * np.random.default_rng(8).standard_normal(x.shape)
    # a larger range inflates the stabilising constants: SSIM moves towards 1
    assert ssim(x_hat, x, data_range=1.0) < ssim(x_hat, x, data_range=10.0) < 1.0


# --------------------------------------------------------------------------- validation


def test_shape_mismatch_and_empty_mask_raise():
    a = np.zeros((8, 9, 10))
    b = np.zeros((8, 9, 11))
    for func in (nrmse, mpe, hfen):
        with pytest.raises(ValueError, match=r"\(8, 9, 10\).*\(8, 9, 11\)"):
            func(a, b)
    with pytest.raises(ValueError, match=r"\(8, 9, 10\).*\(8, 9, 11\)"):
        psnr(a, b, data_range=1.0)
    with pytest.raises(ValueError, match=r"\(8, 9, 10\).*\(8, 9, 11\)"):
        ssim(a, b, data_range=1.0)
    with pytest.raises(ValueError, match=r"\(8, 9, 10\).*\(8, 9, 11\)"):
        mutual_information(a, b)
    with pytest.raises(ValueError, match=r"mask.*\(8, 9\).*\(8, 9, 10\)"):
        nrmse(a, a + 1, mask=np.ones((8, 9), dtype=bool))
    empty = np.zeros(a.shape, dtype=bool)
    with pytest.raises(ValueError, match="empty"):
        psnr(a, a, data_range=1.0, mask=empty)
    with pytest.raises(ValueError, match="empty"):
        ssim(a, a, data_range=1.0, mask=empty)
    with pytest.raises(ValueError, match="empty"):
        mutual_information(a, a, mask=empty)


def test_data_range_defaults():
    assert DATA_RANGE == {"PD": 1.2, "T1": 4.5, "T2": 2.0}


# --------------------------------------------------------------------------- HFEN


def test_hfen_identical_is_zero():
    x = _smooth((24, 24, 20), seed=10)
    assert hfen(x, x) == 0.0
    assert hfen(x, x, mode="2d") == 0.0


def test_log_kernel_has_15_taps():
    assert int(LOG_TRUNCATE * 1.5 + 0.5) == 7
    imp1 = np.zeros(41)
    imp1[20] = 1.0
    resp1 = ndimage.gaussian_laplace(imp1, sigma=1.5, truncate=LOG_TRUNCATE)
    assert np.count_nonzero(resp1) == 15
    assert np.flatnonzero(resp1).tolist() == list(range(13, 28))
    imp3 = np.zeros((31, 31, 31))
    imp3[15, 15, 15] = 1.0
    resp3 = ndimage.gaussian_laplace(imp3, sigma=1.5, truncate=LOG_TRUNCATE)
    assert np.count_nonzero(resp3[:, 15, 15]) == 15
    assert np.count_nonzero(resp3[15, :, 15]) == 15
    assert np.count_nonzero(resp3[15, 15, :]) == 15
    # the support is the 15^3 cube around the impulse
    assert np.count_nonzero(resp3) <= 15**3
    assert not resp3[:8].any() and not resp3[23:].any()


def test_hfen_beyond_band_counts_only_the_unsampled_detail():
    from swigapp.operators import kspace

    x = _smooth((24, 24, 20), seed=12, sigma=0.8)
    lr = (12, 12, 10)
    band = kspace.upsample(kspace.downsample(x, lr), x.shape)  # the LR input, noise-free
    detail = x - band
    assert hfen_beyond_band(x, x, lr) == 0.0
    assert hfen_beyond_band(band, x, lr) == pytest.approx(1.0, abs=1e-9)
    assert hfen_beyond_band(band + 0.5 * detail, x, lr) == pytest.approx(0.5, abs=1e-9)
    assert hfen_beyond_band(band - detail, x, lr) == pytest.approx(2.0, abs=1e-9)
    # an error inside the band (here: the band-limited part of noise) does not count ...
    noise = np.random.default_rng(3).normal(0.0, 0.1, x.shape)
    in_band = kspace.upsample(kspace.downsample(noise, lr), x.shape)
    assert hfen_beyond_band(x + in_band, x, lr) < 1e-9
    assert hfen(x + in_band, x) > 0.1  # ... while plain HFEN sees it
    # 1x1x4-like truncation of the slice axis only
    assert hfen_beyond_band(x, x, (24, 24, 5)) == 0.0
    thick = kspace.upsample(kspace.downsample(x, (24, 24, 5)), x.shape)
    assert hfen_beyond_band(thick, x, (24, 24, 5)) == pytest.approx(1.0, abs=1e-9)


def test_hfen_beyond_band_rejects_a_bad_lr_grid():
    x = _smooth((16, 16, 12), seed=13)
    with pytest.raises(ValueError, match="does not match a 3D image"):
        hfen_beyond_band(x, x, (8, 8))
    with pytest.raises(ValueError, match="cannot downsample"):
        hfen_beyond_band(x, x, (8, 8, 16))


def test_hfen_uses_15_tap_kernel():
    """An impulse error reaches voxels 7 away along an axis but not 8 (radius 7)."""
    x = _smooth((33, 33, 33), seed=11)
    x_hat = x.copy()
    c = 16
    x_hat[c, c, c] += 1.0

    def at(*idx):
        m = np.zeros(x.shape, dtype=bool)
        m[idx] = True
        return m

    assert hfen(x_hat, x, mask=at(c + 7, c, c)) > 0.0
    assert hfen(x_hat, x, mask=at(c, c - 7, c)) > 0.0
    assert hfen(x_hat, x, mask=at(c + 8, c, c)) == 0.0
    assert hfen(x_hat, x, mask=at(c, c, c - 8)) == 0.0
    # 2d mode along the last axis: the error stays in its slice
    assert hfen(x_hat, x, mask=at(c, c + 7, c), mode="2d") > 0.0
    assert hfen(x_hat, x, mask=at(c, c, c + 1), mode="2d") == 0.0
    assert hfen(x_hat, x, mask=at(c, c, c + 1), mode="3d") > 0.0
    # 2d mode along axis 0
    assert hfen(x_hat, x, mask=at(c + 1, c, c), mode="2d", axis=0) == 0.0
    assert hfen(x_hat, x, mask=at(c, c, c + 7), mode="2d", axis=0) > 0.0


def test_hfen_doubling_is_exactly_one():
    x = _smooth((20, 24, 18), seed=12)
    assert hfen(2.0 * x, x) == pytest.approx(1.0, abs=1e-12)
    assert hfen(2.0 * x, x, mode="2d") == pytest.approx(1.0, abs=1e-12)
    # not scale invariant: scaling both images leaves it, scaling one does not
    assert hfen(3.0 * x, x) == pytest.approx(2.0, abs=1e-12)


def test_hfen_modes_differ_and_increase_with_blur():
    rng = np.random.default_rng(13)
    x = ndimage.gaussian_filter(rng.standard_normal((32, 32, 24)), 0.8)
    blurs = (0.5, 1.0, 2.0)
    h3 = [hfen(ndimage.gaussian_filter(x, s), x, mode="3d") for s in blurs]
    h2 = [hfen(ndimage.gaussian_filter(x, s), x, mode="2d") for s in blurs]
    assert np.all(np.diff(h3) > 0)
    assert np.all(np.diff(h2) > 0)
    for a, b in zip(h3, h2, strict=True):
        assert abs(a - b) > 1e-3
    # 2d mode depends on the slice axis for an anisotropic blur
    x_hat = ndimage.gaussian_filter(x, (0.0, 0.0, 2.0))
    assert abs(hfen(x_hat, x, mode="2d", axis=-1) - hfen(x_hat, x, mode="2d", axis=0)) > 1e-3


def test_hfen_2d_image_and_bad_args():
    x = _smooth((30, 30), seed=14)
    x_hat = ndimage.gaussian_filter(x, 1.0)
    assert hfen(x_hat, x, mode="2d") == hfen(x_hat, x, mode="3d") > 0.0
    with pytest.raises(ValueError, match="mode"):
        hfen(x_hat, x, mode="4d")  # type: ignore[arg-type]
    x3 = _smooth((10, 10, 10), seed=15)
    with pytest.raises(ValueError, match="axis"):
        hfen(x3, x3, mode="2d", axis=3)


# --------------------------------------------------------------------------- voxelwise


def test_psnr_known_values():
    x = _smooth((20, 20, 10), seed=20, lo=0.0, hi=1.0)
    assert psnr(x + 0.1, x, data_range=1.0) == pytest.approx(20.0, abs=1e-9)
    assert psnr(x - 0.01, x, data_range=1.0) == pytest.approx(40.0, abs=1e-9)
    assert psnr(x + 0.1, x, data_range=DATA_RANGE["T1"]) == pytest.approx(
        20.0 + 20.0 * math.log10(4.5), abs=1e-9
    )
    assert psnr(x, x, data_range=1.0) == math.inf
    with pytest.raises(ValueError, match="data_range"):
        psnr(x, x, data_range=0.0)


def test_nrmse_known_values():
    x = _smooth((20, 20, 10), seed=21)
    assert nrmse(1.1 * x, x) == pytest.approx(0.1, rel=1e-9)
    assert nrmse(x, x) == 0.0
    # constant reference 2, offset 0.5 -> 0.25
    c = np.full((5, 6), 2.0)
    assert nrmse(c + 0.5, c) == pytest.approx(0.25, rel=1e-12)


def test_mpe_known_values():
    x = _smooth((20, 20, 10), seed=22)
    assert mpe(1.1 * x, x) == pytest.approx(10.0, rel=1e-9)
    assert mpe(1.1 * x, x, absolute=True) == pytest.approx(10.0, rel=1e-9)
    assert mpe(0.9 * x, x) == pytest.approx(-10.0, rel=1e-9)
    assert mpe(0.9 * x, x, absolute=True) == pytest.approx(10.0, rel=1e-9)
    # signed errors cancel, absolute ones do not
    x_hat = x.copy()
    x_hat[::2] *= 1.2
    x_hat[1::2] *= 0.8
    assert mpe(x_hat, x) == pytest.approx(0.0, abs=1e-9)
    assert mpe(x_hat, x, absolute=True) == pytest.approx(20.0, rel=1e-9)


def test_mpe_skips_near_zero_reference():
    x = np.array([0.0, 1.0, 2.0, 1e-9])
    x_hat = np.array([5.0, 1.5, 2.0, 3.0])
    # only |x| > eps voxels count: (50% + 0%) / 2
    assert mpe(x_hat, x) == pytest.approx(25.0)
    assert math.isnan(mpe(x_hat, np.zeros(4)))


def test_tissue_mae_ms():
    x = _smooth((12, 12, 12), seed=23, lo=0.5, hi=2.0)
    x_hat = x + 0.05
    x_hat[:, :, 6:] = x[:, :, 6:] - 0.02
    wm = np.zeros(x.shape, dtype=bool)
    wm[:, :, :6] = True
    gm = ~wm
    out = tissue_mae_ms(x_hat, x, {"WM": wm, "GM": gm, "CSF": np.zeros(x.shape, dtype=bool)})
    assert set(out) == {"WM", "GM", "CSF"}
    assert out["WM"] == pytest.approx(50.0, rel=1e-9)
    assert out["GM"] == pytest.approx(20.0, rel=1e-9)
    assert math.isnan(out["CSF"])
    with pytest.raises(ValueError, match="WM"):
        tissue_mae_ms(x_hat, x, {"WM": wm[:6]})


def test_mask_restricts_error():
    x = _smooth((24, 24, 12), seed=24)
    mask = np.zeros(x.shape, dtype=bool)
    mask[4:12, 4:12, :] = True
    x_hat = x.copy()
    x_hat[~mask] += 0.3 * np.random.default_rng(25).standard_normal(int((~mask).sum()))
    assert psnr(x_hat, x, data_range=1.0, mask=mask) == math.inf
    assert nrmse(x_hat, x, mask=mask) == 0.0
    assert mpe(x_hat, x, mask=mask, absolute=True) == 0.0
    assert tissue_mae_ms(x_hat, x, {"in": mask})["in"] == 0.0
    # ... while the same error is seen without the mask
    assert psnr(x_hat, x, data_range=1.0) < 30.0
    assert nrmse(x_hat, x) > 0.1


# --------------------------------------------------------------------------- MI


def _binned_entropy(a, bins):
    counts, _ = np.histogram(a, bins=bins)
    p = counts[counts > 0] / counts.sum()
    return float(-np.sum(p * np.log(p)))


def test_mi_self_equals_entropy():
    a = _smooth((40, 40, 20), seed=30)
    for bins in (16, 64):
        h = _binned_entropy(a, bins)
        assert h > 1.0
        assert mutual_information(a, a, bins=bins) == pytest.approx(h, rel=1e-12)
    assert mutual_information(a, a, normalized=True) == pytest.approx(2.0, rel=1e-12)


def test_mi_independent_is_small():
    rng = np.random.default_rng(31)
    a = rng.random((64, 64, 64))
    b = rng.random((64, 64, 64))
    mi = mutual_information(a, b)
    assert 0.0 <= mi < 0.05
    assert mutual_information(a, b, normalized=True) == pytest.approx(1.0, abs=0.02)


def test_mi_monotonic_remap_approximately_invariant():
    """MI is invariant to a monotonic remap only up to binning.

    Equal-width bins of a**2 are not images of equal-width bins of a, so a bin of a
    straddles ~2 bins of a**2: MI(a, a**2) = H(a) - H(a | a**2) loses about 0.5 nats,
    whatever the bin count (~15% at 64 bins, less in relative terms with more bins).
    """
    a = _smooth((48, 48, 24), seed=32, lo=0.5, hi=2.0)
    mi_aa = mutual_information(a, a)
    mi_sq = mutual_information(a, a**2)
    assert mi_sq < mi_aa
    assert mi_sq == pytest.approx(mi_aa, rel=0.20)
    ratios = []
    for bins in (16, 64, 256):
        lost = mutual_information(a, a, bins=bins) - mutual_information(a, a**2, bins=bins)
        assert 0.0 < lost < math.log(2.0)
        ratios.append(mutual_information(a, a**2, bins=bins) / mutual_information(a, a, bins=bins))
    assert ratios[0] < ratios[1] < ratios[2]
    # a linear remap is exactly invariant
    assert mutual_information(a, 3.0 * a + 1.0) == pytest.approx(mi_aa, rel=1e-12)


def test_mi_constant_and_mask():
    a = _smooth((20, 20, 10), seed=33)
    const = np.full(a.shape, 0.7)
    assert mutual_information(a, const) == 0.0
    assert mutual_information(const, const) == 0.0
    assert mutual_information(a, const, normalized=True) == 1.0
    assert mutual_information(const, const, normalized=True) == 1.0
    # outside the mask b is noise; inside it equals a -> MI over mask = H(a[mask])
    mask = np.zeros(a.shape, dtype=bool)
    mask[:10] = True
    b = np.random.default_rng(34).random(a.shape)
    b[mask] = a[mask]
    assert mutual_information(a, b, mask=mask, bins=32) == pytest.approx(
        _binned_entropy(a[mask], 32), rel=1e-12
    )
    assert mutual_information(a, b, bins=32) < _binned_entropy(a, 32)
    with pytest.raises(ValueError, match="bins"):
        mutual_information(a, a, bins=1)


def test_public_api():
    for name in metrics.__all__:
        assert callable(getattr(metrics, name)) or name in {"DATA_RANGE", "LOG_TRUNCATE"}
    assert LOG_TRUNCATE == (7 - 0.5) / 1.5
