"""Uncertainty calibration (swigapp.uncertainty): a fit that recovers a known understatement
and covers the error at its nominal rate on fresh data."""

import numpy as np
import pytest

from swigapp import uncertainty as unc


def _draw(rng, n, factor, floor):
    """(3, n) spread, values and errors whose SD is factor x spread + floor x |value|."""
    spread = rng.uniform(0.001, 0.05, (3, n))
    value = rng.uniform(0.5, 1.5, (3, n))
    error = rng.standard_normal((3, n)) * (factor * spread + floor * value)
    return error, spread, value


def test_fit_recovers_a_spread_four_times_too_small_and_covers_fresh_voxels():
    rng = np.random.default_rng(0)
    err, spread, value = _draw(rng, 40_000, factor=4.0, floor=0.0)
    fit = unc.fit([err[:, :20_000], err[:, 20_000:]], [spread[:, :20_000], spread[:, 20_000:]],
                  [value[:, :20_000], value[:, 20_000:]])  # fmt: skip
    for name in ("PD", "T1", "T2"):
        c = fit[name]
        assert c["coverage"] == pytest.approx(unc.TARGET, abs=0.005)
        # Gaussian: 95 % within 1.96 SD, so scale 4 x 1.96 / 2 alone would cover; the fit
        # keeps the spread as the main term and is at least as sharp as that
        pure = np.median(4.0 * 1.96 / 2.0 * spread[0])
        assert c["scale"] > 2.5 and c["median_sigma"] <= 1.02 * pure
    fresh_err, fresh_spread, fresh_value = _draw(np.random.default_rng(1), 20_000, 4.0, 0.0)
    sigma = unc.calibrated(fresh_spread, fresh_value, fit)
    raw = unc.coverage(fresh_err[1], fresh_spread[1])
    assert raw < 0.5 and 0.93 < unc.coverage(fresh_err[1], sigma[1]) < 0.97


def test_a_floor_is_chosen_where_the_error_does_not_follow_the_spread():
    rng = np.random.default_rng(2)
    err, spread, value = _draw(rng, 30_000, factor=0.0, floor=0.05)  # 5 % of the value
    fit = unc.fit([err], [spread], [value])
    assert all(fit[m]["floor"] >= 0.03 for m in ("PD", "T1", "T2"))
    assert all(fit[m]["coverage"] >= unc.TARGET - 0.005 for m in ("PD", "T1", "T2"))


def test_calibrated_keeps_zero_outside_the_brain_and_passes_raw_spread_without_a_card():
    spread = np.zeros((3, 4, 4, 4), np.float32)
    spread[:, 1:3, 1:3, 1:3] = 0.01
    maps = np.ones_like(spread)
    card = {m: {"scale": 2.0, "floor": 0.1} for m in ("PD", "T1", "T2")}
    out = unc.calibrated(spread, maps, card)
    assert out.dtype == np.float32 and (out[spread == 0] == 0).all()
    np.testing.assert_allclose(out[spread > 0], 2.0 * 0.01 + 0.1, rtol=1e-6)
    assert unc.calibrated(spread, maps, None) is spread
    assert unc.calibrated(None, maps, card) is None
