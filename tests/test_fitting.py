"""Fits of raw qMRI series against simulation: noiseless within 1 %, and with noise unbiased
and as precise as the Cramér-Rao lower bound allows."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from swigapp.fitting.irt1 import fit_irt1
from swigapp.fitting.mese import epg_train, fit_mese
from swigapp.fitting.mp2rage import MP2RAGEProtocol, fit_mp2rage, mp2rage_signals, uni
from swigapp.fitting.vfa import fit_vfa
from swigapp.physics.simulate import READ, SPOIL, bloch_steady_state, epg_tse, pulse, relax

ESP, ECHOES = 0.01, 32
TE = ESP * np.arange(1, ECHOES + 1)
TI = np.array([0.05, 0.15, 0.3, 0.6, 1.0, 1.5, 2.5])
FLIPS = np.array([3.0, 10.0, 20.0])


def crlb_sd(model: Callable[[np.ndarray], np.ndarray], p: list[float], sigma: float) -> np.ndarray:
    """Cramér-Rao lower bound on the SD of each parameter for Gaussian noise ``sigma``."""
    p0 = np.asarray(p, float)
    f0 = model(p0)
    jac = []
    for i in range(p0.size):
        q = p0.copy()
        step = 1e-6 * max(abs(p0[i]), 1e-3)
        q[i] += step
        jac.append((model(q) - f0) / step)
    j = np.array(jac).T
    return np.sqrt(np.diag(np.linalg.inv(j.T @ j / sigma**2)))


def assert_efficient(estimates: np.ndarray, truth: float, bound: float) -> None:
    """Mean within 0.25 CRLB SD of the truth (2000+ draws: the mean's own SE is ~0.02 SD)
    and SD within 15 % of the bound."""
    assert np.isfinite(estimates).all()
    assert abs(estimates.mean() - truth) < 0.25 * bound
    assert 0.85 * bound < estimates.std() < 1.15 * bound


# MESE ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "t1,t2,b1", [(1.0, 0.08, 1.0), (0.8, 0.06, 0.8), (1.4, 0.1, 0.9), (1.8, 0.12, 0.7)]
)
def test_mese_epg_fit_recovers_t2_from_an_independent_epg_simulation(t1, t2, b1):
    # the reference EPG (steady state over TR, the tissue's own T1) is independent code
    train = 0.7 * epg_tse(t1, t2, tr=10.0, esp=ESP, etl=ECHOES, refocus=math.pi * b1)
    fit = fit_mese(train[None], TE)
    assert fit.maps["T2"][0] == pytest.approx(t2, rel=0.01)
    assert fit.maps["B1"][0] == pytest.approx(b1, abs=0.02)
    assert fit.maps["M0"][0] == pytest.approx(0.7, rel=0.02)
    assert fit.residual[0] < 1e-3


def test_mese_b1_above_one_reads_as_its_mirror_below_one():
    # 1.2 x 180 degrees refocuses as 0.8 x 180: the same echoes, the same T2
    train = epg_train(np.array([0.09]), np.array([1.2]), ESP, ECHOES)
    fit = fit_mese(train, TE)
    assert fit.maps["T2"][0] == pytest.approx(0.09, rel=0.005)
    assert fit.maps["B1"][0] == pytest.approx(0.8, abs=0.01)


def test_mese_exponential_model_is_biased_by_stimulated_echoes_the_epg_model_is_not():
    train = epg_tse(1.0, 0.07, tr=10.0, esp=ESP, etl=ECHOES, refocus=math.pi * 0.75)
    exp_t2 = fit_mese(train[None], TE, model="exp").maps["T2"][0]
    epg_t2 = fit_mese(train[None], TE, model="epg").maps["T2"][0]
    assert exp_t2 > 0.07 * 1.02  # stimulated echoes lengthen the apparent decay
    assert epg_t2 == pytest.approx(0.07, rel=0.005)


def test_mese_with_noise_is_unbiased_at_the_cramer_rao_bound():
    rng = np.random.default_rng(1)

    def model(p: np.ndarray) -> np.ndarray:
        return p[0] * epg_train(np.array([p[1]]), np.array([p[2]]), ESP, ECHOES)[0]

    sigma = 0.01
    bound = crlb_sd(model, [1.0, 0.08, 0.9], sigma)[1]
    series = model(np.array([1.0, 0.08, 0.9]))[None] + sigma * rng.standard_normal((2500, ECHOES))
    assert_efficient(fit_mese(series, TE).maps["T2"], 0.08, bound)


def test_mese_marks_empty_and_broken_voxels_nan_and_refuses_bad_echo_times():
    train = epg_train(np.array([0.08]), np.array([1.0]), ESP, ECHOES)[0]
    series = np.stack([train, np.zeros(ECHOES), np.where(np.arange(ECHOES) == 3, np.nan, train)])
    fit = fit_mese(series, TE)
    assert np.isfinite(fit.maps["T2"][0])
    assert np.isnan(fit.maps["T2"][1:]).all() and np.isnan(fit.maps["M0"][1:]).all()
    assert fit.failed == 2
    with pytest.raises(ValueError, match="evenly spaced"):
        fit_mese(series, TE**1.1)
    with pytest.raises(ValueError, match="at least 3 echoes"):
        fit_mese(series[:, :2], TE[:2])
    with pytest.raises(ValueError, match="measurements expected"):
        fit_mese(series, TE[:-1])


# IRT1 ---------------------------------------------------------------------------------------


def ir_signal(m0: float, t1: float, eta: float, tr: float = 6.0) -> np.ndarray:
    """Signed IR with a saturating readout: M0 (1 - (1 + eta) e^-TI/T1 + eta e^-TR/T1)."""
    return m0 * (1 - (1 + eta) * np.exp(-TI / t1) + eta * np.exp(-tr / t1))


@pytest.mark.parametrize("t1,eta", [(0.3, 1.0), (0.85, 0.95), (1.4, 0.9), (4.0, 1.0)])
def test_irt1_fit_restores_polarity_and_recovers_t1_m0_and_efficiency(t1, eta):
    fit = fit_irt1(np.abs(ir_signal(0.8, t1, eta))[None], TI, repetition_time=6.0)
    assert fit.maps["T1"][0] == pytest.approx(t1, rel=0.01)
    assert fit.maps["M0"][0] == pytest.approx(0.8, rel=0.01)
    assert fit.maps["InversionEfficiency"][0] == pytest.approx(eta, abs=0.01)


def test_irt1_matches_the_bloch_simulation_of_an_inversion_recovery():
    from swigapp.physics.simulate import inversion_recovery_events

    t1, t2 = 1.1, 0.09
    series = [bloch_steady_state(inversion_recovery_events(6.0, ti, 0.01), t1, t2)[0] for ti in TI]
    fit = fit_irt1(np.array(series)[None], TI, repetition_time=6.0)
    assert fit.maps["T1"][0] == pytest.approx(t1, rel=0.01)
    # the spin-echo readout leaves M0 exp(-TE/T2)
    assert fit.maps["M0"][0] == pytest.approx(math.exp(-0.01 / t2), rel=0.01)


def test_irt1_with_noise_is_unbiased_at_the_cramer_rao_bound():
    rng = np.random.default_rng(2)

    def model(p: np.ndarray) -> np.ndarray:
        return ir_signal(p[0], p[1], p[2])

    sigma = 0.01
    bound = crlb_sd(model, [1.0, 1.2, 0.95], sigma)[1]
    signed = ir_signal(1.0, 1.2, 0.95)[None] + sigma * rng.standard_normal((2500, TI.size))
    assert_efficient(fit_irt1(np.abs(signed), TI, 6.0).maps["T1"], 1.2, bound)


def test_irt1_without_tr_assumes_full_recovery_and_says_so():
    fit = fit_irt1(np.abs(ir_signal(1.0, 1.0, 1.0, tr=50.0))[None], TI)
    assert fit.maps["T1"][0] == pytest.approx(1.0, rel=0.01)
    assert any("RepetitionTime" in n for n in fit.notes)
    with pytest.raises(ValueError, match="repeat"):
        fit_irt1(np.ones((1, 3)), [0.1, 0.1, 0.5])


# VFA ----------------------------------------------------------------------------------------


def vfa_signal(m0: float, t1: float, b1: float = 1.0, tr: float = 0.015) -> np.ndarray:
    a = np.deg2rad(FLIPS) * b1
    e1 = math.exp(-tr / t1)
    return m0 * np.sin(a) * (1 - e1) / (1 - np.cos(a) * e1)


def test_vfa_fit_recovers_t1_with_its_b1_map_and_is_biased_without_it():
    from swigapp.physics.simulate import spoiled_gre_events

    t1, b1 = 1.3, 0.85
    series = np.array(
        [bloch_steady_state(spoiled_gre_events(0.015, 0.0, math.radians(f * b1)), t1, 0.08, 3000)[0]
         for f in FLIPS]
    )  # fmt: skip
    fit = fit_vfa(series[None], FLIPS, 0.015, b1=np.array([b1]))
    assert fit.maps["T1"][0] == pytest.approx(t1, rel=0.01)
    assert fit.maps["M0"][0] == pytest.approx(1.0, rel=0.01)
    uncorrected = fit_vfa(series[None], FLIPS, 0.015)
    assert abs(uncorrected.maps["T1"][0] / t1 - 1) > 0.2  # T1 scales ~ 1/B1^2
    assert any("not corrected for B1" in n for n in uncorrected.notes)


def test_vfa_with_noise_is_unbiased_at_the_cramer_rao_bound():
    rng = np.random.default_rng(3)

    def model(p: np.ndarray) -> np.ndarray:
        return vfa_signal(p[0], p[1])

    sigma = 0.01 * vfa_signal(1.0, 1.2).max()
    bound = crlb_sd(model, [1.0, 1.2], sigma)[1]
    series = vfa_signal(1.0, 1.2)[None] + sigma * rng.standard_normal((3000, FLIPS.size))
    assert_efficient(fit_vfa(series, FLIPS, 0.015).maps["T1"], 1.2, bound)


# MP2RAGE ------------------------------------------------------------------------------------

PROTOCOL = MP2RAGEProtocol(tr=5.0, ti=(0.7, 2.5), flips=(4.0, 5.0), tau=0.0071, n=160)


def test_mp2rage_signals_match_a_bloch_simulation_of_the_sequence():
    perfect = MP2RAGEProtocol(**{**PROTOCOL.__dict__, "efficiency": 1.0})
    ta, tb, tc = perfect.delays()
    events = [SPOIL, pulse(math.pi), SPOIL, relax(ta)]
    for train, flip in enumerate(perfect.flips):
        for i in range(perfect.n):
            events += [pulse(math.radians(flip))]
            events += [READ] if i == perfect.n // 2 else []
            events += [SPOIL, relax(perfect.tau)]
        events += [relax(tb)] if train == 0 else [relax(tc)]
    for t1 in (0.8, 1.4, 4.0):
        reference = bloch_steady_state(events, t1, 0.1, repetitions=20)
        g1, g2 = mp2rage_signals(np.array([t1]), perfect)
        assert abs(g1[0]) == pytest.approx(reference[0], rel=1e-6)
        assert abs(g2[0]) == pytest.approx(reference[1], rel=1e-6)


def test_mp2rage_t1_from_uni_integer_unit1_and_inversions():
    t1 = np.linspace(0.6, 3.0, 200)
    g1, g2 = mp2rage_signals(t1, PROTOCOL)
    value = uni(g1, g2)
    for fit in (
        fit_mp2rage(PROTOCOL, unit1=value),
        fit_mp2rage(PROTOCOL, unit1=np.round((value + 0.5) * 4095)),
        fit_mp2rage(PROTOCOL, inv1=0.6 * g1, inv2=0.6 * g2),
        fit_mp2rage(PROTOCOL, inv1=0.6 * g1 * np.exp(0.3j), inv2=0.6 * g2 * np.exp(0.3j)),
    ):
        assert np.allclose(fit.maps["T1"], t1, rtol=0.01)
    assert np.allclose(fit.maps["M0"], 0.6, rtol=1e-6)
    with pytest.raises(ValueError, match="UNIT1 image or both inversions"):
        fit_mp2rage(PROTOCOL, inv1=g1)
    with pytest.raises(ValueError, match="impossible MP2RAGE timing"):
        MP2RAGEProtocol(tr=2.0, ti=(0.7, 2.5), flips=(4.0, 5.0), tau=0.0071, n=160).delays()


# Clipped magnitudes -------------------------------------------------------------------------


def test_saturated_flags_a_recurring_whole_number_ceiling_only():
    from swigapp.fitting import saturated

    rng = np.random.default_rng(0)
    data = np.round(rng.uniform(0, 5000, (2000, 8)))
    assert not saturated(data).any()  # a one-off maximum is data
    clipped = np.minimum(data, 4095)
    flags = saturated(clipped)
    assert flags.sum() == (data >= 4095).sum() > 100
    assert not saturated(np.minimum(data + 0.25, 4095.25)).any()  # not a whole number
    assert not saturated(np.full((4, 3), np.nan)).any()


def test_fit_by_pattern_fits_each_pattern_on_its_samples_and_leaves_short_ones_nan():
    from swigapp.fitting import fit_by_pattern

    t2 = np.array([0.05, 0.08, 0.12, 0.2])
    trains = np.stack([epg_train(np.array([t]), np.array([0.9]), ESP, ECHOES)[0] for t in t2])
    usable = np.ones_like(trains, bool)
    usable[1, :5] = False  # the first 5 echoes clipped
    usable[2, :30] = False  # only 2 echoes left
    fit = fit_by_pattern(lambda rows, use: fit_mese(trains[rows], TE, use=use), trains, usable, 3)
    assert fit.maps["T2"][[0, 1, 3]] == pytest.approx(t2[[0, 1, 3]], rel=0.01)
    assert np.isnan(fit.maps["T2"][2]) and np.isnan(fit.residual[2])
