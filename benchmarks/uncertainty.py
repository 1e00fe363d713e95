"""Calibrate the uncertainty maps on validation individuals, report them on held-out ones.

    python -m benchmarks.uncertainty swig_default [--subjects 2] [--size full] [--write-card]

Fit (:func:`swigapp.uncertainty.fit`): the validation individuals of the anatomy split,
phantom seed 3000, in the quality benchmark's three settings, registered by the app's own
step; per map the scale and relative floor of the stated SD. Report: the held-out
individuals (seed 5000) in the same settings, never used for the fit: per map and
setting, the coverage of |error| <= 2 SD (nominal 95 %) over brain voxels, raw spread and
calibrated, and Spearman's rho of the SD against |error|. ``--write-card`` stores the fit
in the shipped model's card (``uncertainty_calibration``), where the app reads it. Writes
benchmarks/results/uncertainty.md and uncertainty_calibration.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from scipy import stats

from benchmarks.quality import (
    GUIDES,
    HELD_OUT_SEED,
    SETTINGS,
    VALIDATION_SEED,
    anatomies,
    eval_subjects,
)
from benchmarks.validate import load_candidate
from swigapp.models.features import MAP_ORDER
from swigapp.models.inference import predict_ensemble
from swigapp.models.shipped import shipped_name, weights_dir
from swigapp.uncertainty import TARGET, K, calibrated, coverage, fit

#: Voxels per subject kept for the fit and the rank correlation (a fixed random sample).
SAMPLE = 200_000


def collect(network, part: str, seed: int, args, work: Path) -> list[dict]:
    """Per (setting, subject): the error, spread and value (3, N) in a sample of brain
    voxels, and the setting's name."""
    out = []
    rng = np.random.default_rng(0)
    for setting in args.settings:
        subjects = eval_subjects(
            SETTINGS[setting], args.subjects, args.size, seed, 0, work / f"{part}-{setting}",
            anatomy=anatomies(part, args.subjects),
        )  # fmt: skip
        for subject in subjects:
            maps, spread = predict_ensemble(network, subject.prepared.tensors.with_guides(GUIDES))
            truth = np.stack([subject.truth[m] for m in MAP_ORDER])
            idx = np.flatnonzero(subject.mask & (spread[1] > 0))
            idx = rng.choice(idx, size=min(SAMPLE, idx.size), replace=False)
            row = {"setting": setting, "subject": subject.name}
            for key, volume in (("error", maps - truth), ("spread", spread), ("value", maps)):
                row[key] = volume.reshape(3, -1)[:, idx]
            out.append(row)
            print(f"{part} {setting} sub-{subject.name}: {idx.size} voxels", flush=True)
    return out


def _cell(values: np.ndarray, decimals: int) -> str:
    """Median (min-max) of per-subject values."""
    v, d = values, decimals
    return f"{np.median(v):.{d}f} ({v.min():.{d}f}-{v.max():.{d}f})"


def report(rows: list[dict], calibration: dict) -> list[str]:
    """Markdown: coverage of |error| <= K SD (raw spread, calibrated) and Spearman's rho,
    per setting and map, subjects pooled (min-max over subjects in brackets)."""
    lines = [
        f"| setting | map | coverage raw spread | coverage calibrated (nominal {TARGET:.0%}) "
        "| Spearman rho | median |error| | median calibrated SD |",
        "|---|---|---|---|---|---|---|",
    ]
    for setting in dict.fromkeys(r["setting"] for r in rows):
        mine = [r for r in rows if r["setting"] == setting]
        for i, m in enumerate(MAP_ORDER):
            per = []
            for r in mine:
                sigma = calibrated(r["spread"][:, None], r["value"][:, None], calibration)[:, 0]
                err = r["error"][i]
                per.append(
                    (
                        coverage(err, r["spread"][i]),
                        coverage(err, sigma[i]),
                        stats.spearmanr(sigma[i], np.abs(err)).statistic,
                        float(np.median(np.abs(err))),
                        float(np.median(sigma[i])),
                    )
                )
            a = np.array(per)
            unit, f = ("", 1.0) if m == "PD" else (" ms", 1000.0)
            cells = [
                _cell(a[:, 0] * 100, 1) + " %",
                _cell(a[:, 1] * 100, 1) + " %",
                _cell(a[:, 2], 3),
                _cell(a[:, 3] * f, 1 if f > 1 else 3) + unit,
                _cell(a[:, 4] * f, 1 if f > 1 else 3) + unit,
            ]
            lines.append(f"| {setting} | {m} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    """Command line: fit on validation individuals, report on held-out ones."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="a shipped model's name or a model.pt")
    p.add_argument("--subjects", type=int, default=2)
    p.add_argument("--size", choices=("tiny", "slab", "full"), default="full")
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--write-card", action="store_true", help="store the fit in the model card")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = p.parse_args()
    network = load_candidate(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        val = collect(network, "validation", VALIDATION_SEED, args, Path(tmp))
        calibration = fit([r["error"] for r in val], [r["spread"] for r in val],
                          [r["value"] for r in val])  # fmt: skip
        print(json.dumps(calibration, indent=1), flush=True)
        held = collect(network, "heldout", HELD_OUT_SEED, args, Path(tmp))
    card = {m: {k: c[k] for k in ("scale", "floor")} for m, c in calibration.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"model": args.model, "fit": calibration, "k": K, "target": TARGET}
    (args.out / "uncertainty_calibration.json").write_text(json.dumps(record, indent=2) + "\n")
    text = [
        "# Uncertainty maps: calibration on validation individuals, coverage on held-out ones",
        "",
        f"Command: `python -m benchmarks.uncertainty {args.model} --subjects {args.subjects} "
        f"--size {args.size} --settings {' '.join(args.settings)}`. Fit: validation individuals "
        f"{', '.join(anatomies('validation', args.subjects) or ())} (seed {VALIDATION_SEED}); "
        f"report: held-out individuals {', '.join(anatomies('heldout', args.subjects) or ())} "
        f"(seed {HELD_OUT_SEED}), never used for the fit. SD = scale x ensemble spread + "
        "floor x |map|.",
        "",
        "| map | scale | floor | validation coverage |",
        "|---|---|---|---|",
        *(
            f"| {m} | {c['scale']:.3f} | {c['floor']:.3f} | {100 * c['coverage']:.1f} % |"
            for m, c in calibration.items()
        ),
        "",
        "Held out (median over subjects, range in brackets):",
        "",
        *report(held, card),
        "",
    ]
    (args.out / "uncertainty.md").write_text("\n".join(text))
    print("\n".join(text))
    name = shipped_name(args.model)
    if args.write_card and name:
        path = weights_dir() / f"{name}.json"
        data = json.loads(path.read_text())
        data["uncertainty_calibration"] = card | {
            "fitted_on": f"the validation individuals of the anatomy split (seed "
            f"{VALIDATION_SEED}; {', '.join(args.settings)}; {args.size} size)"
        }
        path.write_text(json.dumps(data, indent=2) + "\n")
        print(f"wrote the calibration into {path}")


if __name__ == "__main__":
    main()
