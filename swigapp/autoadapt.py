"""``--adapt-steps auto``: adapt SWIG to a participant only where its maps fail the
data-consistency checks, and keep the adapted maps only if they pass them.

The pre-trained prediction is checked first, whole brain (:func:`check`): the LR residual
and the re-synthesised guides' SSIM, against the flags of :mod:`swigapp.consistency`.
Where both pass, the model is within its depth and the maps are kept as they are: on the
validation phantoms, in distribution and under the shift benchmark's combined shift, 30
anchored steps moved GM T1 error by 0 to +0.7 % and GM T2 error by +1 % to +9 % and
helped nowhere (benchmarks/results/adaptation_auto). Where a check fails, the network is adapted for
:data:`AUTO_STEPS` anchored steps and the adapted maps are kept only if they pass both
checks (:func:`mended`); otherwise the pre-trained maps stay. The decision and both checks
go into the provenance and the QC JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from swigapp.consistency import Evidence, region_failures, ssim_flagged
from swigapp.metrics import guide_ssim

#: Adaptation steps that ``auto`` runs when a check fails (those of benchmarks.adaptation).
AUTO_STEPS = 30


def check(
    sr: np.ndarray, residual_input: Mapping[str, float], evidence: Evidence
) -> dict[str, Any]:
    """Whole-brain checks of maps ``sr`` (3, X, Y, Z; PD, T1 s, T2 s), in the form of a
    region of :func:`swigapp.consistency.regional_checks`: the LR residual of ``sr`` per
    map beside the zero-filled input's (``residual_input``, the residual of the upsampled
    LR maps, computed once by the caller), and each guide's re-synthesis SSIM in the brain
    mask."""
    synth = evidence.synthesise(sr)
    return {
        "lr_residual": evidence.residual(sr),
        "lr_residual_input": dict(residual_input),
        "guide_ssim": {
            g: guide_ssim(synth[g], image, evidence.mask) for g, image in evidence.guides.items()
        },
    }


def subject_failures(checks: Mapping[str, Any]) -> dict[str, str]:
    """The checks that fail, with the reason: "lr" (an LR residual flagged) and "guides"
    (any guide's SSIM flagged; stricter than a region's "every guide")."""
    out = dict(region_failures(checks))
    flagged = ssim_flagged(checks["guide_ssim"])
    if flagged and "guides" not in out:
        figures = ", ".join(f"{g} {checks['guide_ssim'][g]:.3f}" for g in flagged)
        out["guides"] = f"a guide is poorly explained by the maps (re-synthesis SSIM {figures})"
    return out


def mended(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether adaptation mended the pre-trained maps: they (``before``) failed a check and
    the adapted maps (``after``) pass both. An improvement short of the flags is not enough:
    adaptation optimises these very quantities, and on guides that are noise it raises
    their re-synthesis SSIM a little by drawing the noise into the maps."""
    return bool(subject_failures(before)) and not subject_failures(after)


def decide(
    run: Callable[[int], tuple[np.ndarray, dict[str, Any]]],
    checks: Callable[[np.ndarray], dict[str, Any]],
    steps: int = AUTO_STEPS,
) -> tuple[np.ndarray, dict[str, Any], dict[str, Any]]:
    """Run the method without adaptation (``run(0)``: maps and record), check the maps,
    and where a check fails run it again after ``steps`` steps of adaptation (``run(steps)``),
    keeping whichever :func:`mended` says. Returns the maps, the method's record and the
    decision: mode, steps run, whether the adapted maps were kept, the reason and the
    checks before (and after) adaptation."""
    maps, record = run(0)
    before = checks(maps)
    failed = subject_failures(before)
    decision: dict[str, Any] = {"mode": "auto", "steps": 0, "kept": False, "before": before}
    if not failed:
        decision["reason"] = "not needed: the pre-trained maps pass both data-consistency checks"
        return maps, record, decision
    adapted, adapted_record = run(steps)
    after = checks(adapted)
    decision |= {"steps": steps, "after": after, "failed": failed}
    if mended(before, after):
        decision |= {"kept": True, "reason": f"kept: after {steps} steps the maps pass the "
                     f"checks they failed ({'; '.join(failed.values())})"}  # fmt: skip
        return adapted, adapted_record, decision
    decision["losses"] = adapted_record.get("adapt_losses", [])
    decision["reason"] = (
        f"reverted: after {steps} steps of adaptation the maps still fail "
        f"({'; '.join(subject_failures(after).values())}); the pre-trained maps are kept"
    )
    return maps, record, decision
