"""``--adapt-steps auto``: adapt only where the checks fail, keep only what mends them."""

import numpy as np
import pytest
import torch

from swigapp.autoadapt import check, decide, mended, subject_failures
from swigapp.consistency import GUIDE_SSIM_FLAG, LR_RESIDUAL_FLAG, Evidence
from swigapp.methods import Request, method_options, run_method
from swigapp.models.features import MAP_ORDER, prepare_subject


def _checks(residual: float, ssim: float, residual_input: float = 0.03) -> dict:
    maps = dict.fromkeys(MAP_ORDER, residual_input)
    return {
        "lr_residual": maps | {"T1": residual},
        "lr_residual_input": maps,
        "guide_ssim": {"T1w": 0.9, "T2w": ssim},
    }


def test_failing_and_mended_follow_the_flags():
    good = _checks(0.04, 0.9)
    assert subject_failures(good) == {}
    bad_lr = _checks(2.5 * LR_RESIDUAL_FLAG, 0.9)
    assert set(subject_failures(bad_lr)) == {"lr"} and "T1 0.250" in subject_failures(bad_lr)["lr"]
    bad_guide = _checks(0.04, GUIDE_SSIM_FLAG - 0.1)
    assert (
        set(subject_failures(bad_guide)) == {"guides"}
        and "T2w 0.700" in subject_failures(bad_guide)["guides"]
    )
    assert not mended(good, good)  # nothing failed: nothing to mend
    assert mended(bad_guide, _checks(0.04, 0.85))  # the guide passes now
    assert not mended(bad_guide, _checks(0.04, 0.75))  # better, still flagged: not enough
    assert not mended(bad_guide, _checks(0.25, 0.9))  # the guide mended, the LR check broken
    assert mended(bad_lr, _checks(0.05, 0.9)) and not mended(bad_lr, _checks(0.2, 0.9))


def test_decide_runs_keeps_or_reverts_by_the_checks():
    calls = []
    maps = {0: np.zeros((3, 2, 2, 2)), 5: np.ones((3, 2, 2, 2))}

    def run(steps):
        calls.append(steps)
        return maps[steps], {"adapt_losses": [0.1] * steps}

    out, record, decision = decide(run, lambda m: _checks(0.04, 0.9), steps=5)
    assert calls == [0] and out is maps[0] and decision["steps"] == 0
    assert decision["reason"].startswith("not needed")
    after = {0: _checks(0.04, 0.6), 5: _checks(0.04, 0.85)}  # adaptation mends the guide
    out, record, decision = decide(run, lambda m: after[int(m.flat[0]) * 5], steps=5)
    assert calls[1:] == [0, 5] and out is maps[5] and decision["kept"]
    assert record["adapt_losses"] == [0.1] * 5 and decision["reason"].startswith("kept")
    after = {0: _checks(0.04, 0.6), 5: _checks(0.04, 0.7)}  # better, but still flagged
    out, record, decision = decide(run, lambda m: after[int(m.flat[0]) * 5], steps=5)
    assert out is maps[0] and not decision["kept"] and record["adapt_losses"] == []
    assert decision["reason"].startswith("reverted") and len(decision["losses"]) == 5


@pytest.fixture(scope="module")
def registered_subject():
    """A tiny phantom whose guides are on the maps' grid, as the app's registration leaves
    them (no head motion)."""
    from swigapp.phantom.subject import PhantomConfig, make_subject

    config = PhantomConfig(size="tiny", max_rotation_deg=0.0, max_translation_mm=0.0)
    return make_subject(0, seed=7, config=config)


def _shipped_case(s, corrupt: bool):
    """Runner and checks of the shipped SWIG on a tiny phantom (guides as acquired, or with
    noise in one half of both)."""
    guides = {g: s.guides[g].copy() for g in ("T1w", "T2w")}
    if corrupt:
        rng = np.random.default_rng(0)
        for image in guides.values():
            half = image[image.shape[0] // 2 :]
            half[...] = rng.uniform(0, 2 * np.median(image[image > 0]), half.shape)
    subject = prepare_subject(s.lr_maps, guides, s.protocols, s.truth.brain_mask)
    request = Request(device=torch.device("cpu"))
    lr = np.stack([s.lr_maps[m] for m in MAP_ORDER])
    up = subject.lr_up.numpy()
    protocols = {g: s.protocols[g] for g in guides}

    def run(steps):
        options = method_options("swig").with_adaptation(steps)
        return run_method("swig", subject, Request(device=request.device, options=options))

    evidence = Evidence(
        lr, subject.acquisition, guides, protocols, s.truth.brain_mask, s.lr_affine, s.affine
    )
    residual_input = evidence.residual(up)

    def checks(maps):
        return check(maps, residual_input, evidence)

    return run, checks


def test_shipped_model_in_distribution_is_not_adapted(registered_subject):
    """In distribution the shipped model passes both checks: auto runs no adaptation and
    returns exactly the pre-trained maps."""
    run, checks = _shipped_case(registered_subject, corrupt=False)
    maps, _, decision = decide(run, checks)
    assert decision["steps"] == 0 and not subject_failures(decision["before"])
    assert min(decision["before"]["guide_ssim"].values()) > GUIDE_SSIM_FLAG
    np.testing.assert_array_equal(maps, run(0)[0])


def test_shipped_model_is_not_kept_adapted_to_noise(registered_subject):
    """Guides that are noise in half the volume fail the guide check; adaptation draws a
    little of the noise into the maps (the re-synthesis SSIM rises) but cannot mend the
    check, so the pre-trained maps are kept."""
    run, checks = _shipped_case(registered_subject, corrupt=True)
    plain = run(0)[0]
    maps, record, decision = decide(run, checks, steps=10)
    before, after = decision["before"]["guide_ssim"], decision["after"]["guide_ssim"]
    assert "guides" in subject_failures(decision["before"]) and decision["steps"] == 10
    assert all(after[g] > before[g] for g in before)  # it does follow the noise
    assert not decision["kept"] and "still fail" in decision["reason"]
    np.testing.assert_array_equal(maps, plain)
    assert record["adapt_losses"] == [] and len(decision["losses"]) == 10
