"""Per-subject adaptation on validation phantoms: how far the anchored fine-tuning moves
SWIG, in distribution and under a distribution shift.

    python -m benchmarks.adaptation [--subjects 2] [--steps 30] [--runs 1e-4:0:0 ...]

Validation subjects (seed 3000: never the held-out 5000 nor the shift benchmark's 7000)
at 2 mm iso in distribution and under the shift benchmark's combined shift at 2 mm iso.
Each row: SWIG without adaptation, and adapted for ``--steps`` steps with each learning
rate, proximal weight and warm-up steps LR:ANCHOR:WARMUP (the arguments of
``swigapp.models.inference.adapt``; 1e-4:0:0 is the unanchored adaptation of 0.2.0).
Writes benchmarks/results/adaptation.{md,csv}.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.quality import SETTINGS, eval_subjects, measured
from benchmarks.shift import AXES
from swigapp.models.inference import adapt, predict_volume
from swigapp.models.shipped import load_shipped

VALIDATION_SEED = 3000
CASES = {"in distribution 2 mm iso": SETTINGS["2mm-iso"], "combined shift 2 mm iso": AXES[
    "combined 2 mm iso"]}  # fmt: skip
KEYS = ("PD_SSIM", "T1_SSIM", "T2_SSIM", "T1_HFEN", "GM_T1_MAE_ms", "GM_T2_MAE_ms", "PD_NRMSE")


def variants(model, subject, steps: int, settings: list[str]) -> dict:
    """SWIG without adaptation and adapted with each "LR:ANCHOR:WARMUP", as callables."""
    runs = {"no adaptation": lambda: predict_volume(model, subject)}

    def adapted(rate: float, anchor: float, warmup: int) -> np.ndarray:
        tuned, _ = adapt(model, subject, steps, learning_rate=rate, anchor=anchor, warmup=warmup)
        return predict_volume(tuned, subject)

    for setting in settings:
        rate, anchor, warmup = (float(v) for v in setting.split(":"))
        name = f"adapt {steps}, lr {rate:g}, anchor {anchor:g}, warm-up {warmup:g}"
        runs[name] = lambda r=rate, a=anchor, w=int(warmup): adapted(r, a, w)
    return runs


def main() -> None:
    """Run the sweep and write the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--subjects", type=int, default=2)
    p.add_argument("--size", choices=("tiny", "slab", "full"), default="slab")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument(
        "--runs", nargs="+", default=["1e-4:0:0", "1e-4:5:0", "1e-4:5:10", "1e-4:20:10"],
        metavar="LR:ANCHOR:WARMUP",
    )  # fmt: skip
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    model = load_shipped("swig_default")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case, fields in CASES.items():
            subjects = eval_subjects(
                fields, args.subjects, args.size, VALIDATION_SEED, 0, Path(tmp) / case[:8]
            )
            for subject in subjects:
                both = subject.prepared.tensors.with_guides(("T1w", "T2w"))
                for name, run in variants(model, both, args.steps, args.runs).items():
                    volume, seconds, _ = measured(run)
                    row = {"case": case, "subject": subject.name, "run": name, "seconds": seconds}
                    scores = subject.score(volume)
                    row |= {k: scores[k] for k in KEYS}
                    rows.append(row)
                    print(" ".join(f"{v:.4g}" if isinstance(v, float) else str(v)
                                   for v in row.values()), flush=True)  # fmt: skip
    lines = [
        f"Command: `python -m benchmarks.adaptation --subjects {args.subjects} --size "
        f"{args.size} --steps {args.steps} --runs {' '.join(args.runs)}`"
        f"; validation phantoms (seed {VALIDATION_SEED}), means over subjects.",
        "",
        "| case | run | " + " | ".join(KEYS) + " | s |",
        "|---|---|" + "---|" * (len(KEYS) + 1),
    ]
    for case in CASES:
        for name in dict.fromkeys(r["run"] for r in rows):
            sub = [r for r in rows if r["case"] == case and r["run"] == name]
            if sub:
                cells = [f"{np.mean([r[k] for r in sub]):.4g}" for k in (*KEYS, "seconds")]
                lines.append(f"| {case} | {name} | " + " | ".join(cells) + " |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "adaptation.md").write_text("\n".join(lines) + "\n")
    with (out / "adaptation.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
