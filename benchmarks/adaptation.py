"""Per-subject adaptation on validation phantoms: how far the anchored fine-tuning moves
SWIG, in distribution and under a distribution shift.

    python -m benchmarks.adaptation [--subjects 2] [--steps 30] [--runs 1e-4:0:0 ...] [--auto]

Validation subjects (seed 3000: never the held-out 5000 nor the shift benchmark's 7000)
at 2 mm iso in distribution and under the shift benchmark's combined shift at 2 mm iso.
Each row: SWIG without adaptation, and adapted for ``--steps`` steps with each learning
rate, proximal weight and warm-up steps LR:ANCHOR:WARMUP (the arguments of
``swigapp.models.inference.adapt``; 1e-4:0:0 is the unanchored adaptation of 0.2.0).
``--auto`` adds the run of ``--adapt-steps auto`` (:func:`swigapp.autoadapt.decide`, with
its decision per subject) and a case where the checks fail: the in-distribution subjects
with another validation subject's registered guides (scaled to the same median in the
brain), as a guide from the wrong session would be.
Writes benchmarks/results/adaptation.{md,csv}.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.fallback import foreign_guides
from benchmarks.quality import GUIDES, SETTINGS, VALIDATION_SEED, eval_subjects, measured
from benchmarks.shift import AXES
from swigapp.autoadapt import check, decide
from swigapp.consistency import Evidence
from swigapp.models.features import MAP_ORDER, prepare_subject
from swigapp.models.inference import AdaptConfig, adapt, predict_volume
from swigapp.models.shipped import load_shipped

CASES = {"in distribution 2 mm iso": SETTINGS["2mm-iso"], "combined shift 2 mm iso": AXES[
    "combined 2 mm iso"]}  # fmt: skip
WRONG = "another subject's guides 2 mm iso"
KEYS = ("PD_SSIM", "T1_SSIM", "T2_SSIM", "T1_HFEN", "GM_T1_MAE_ms", "GM_T2_MAE_ms", "PD_NRMSE")


def variants(model, subject, steps: int, settings: list[str]) -> dict:
    """SWIG without adaptation and adapted with each "LR:ANCHOR:WARMUP", as callables."""
    runs = {"no adaptation": lambda: predict_volume(model, subject)}

    def adapted(rate: float, anchor: float, warmup: int) -> np.ndarray:
        config = AdaptConfig(learning_rate=rate, anchor=anchor, warmup=warmup)
        tuned, _ = adapt(model, subject, steps, config)
        return predict_volume(tuned, subject)

    for setting in settings:
        rate, anchor, warmup = (float(v) for v in setting.split(":"))
        name = f"adapt {steps}, lr {rate:g}, anchor {anchor:g}, warm-up {warmup:g}"
        runs[name] = lambda r=rate, a=anchor, w=int(warmup): adapted(r, a, w)
    return runs


def auto_run(model, tensors, prepared, guides, protocols, decisions: list, label: str):
    """``--adapt-steps auto`` on one subject as a callable; its decision goes to
    ``decisions``."""
    up, lr = tensors.lr_up.numpy(), tensors.lr.numpy()
    mask = tensors.mask.numpy().astype(bool)

    def run(steps: int) -> tuple[np.ndarray, dict]:
        if not steps:
            return predict_volume(model, tensors), {}
        tuned, losses = adapt(model, tensors, steps)
        return predict_volume(tuned, tensors), {"adapt_losses": losses}

    acq = prepared.acquisition
    evidence = Evidence(lr, acq, guides, protocols, mask, acq.lr_affine, prepared.hr_affine)
    residual_input = evidence.residual(up)

    def checks(maps: np.ndarray) -> dict:
        return check(maps, residual_input, evidence)

    def go() -> np.ndarray:
        maps, _, decision = decide(run, checks)
        decisions.append(f"- {label}: {decision['reason']}")
        return maps

    return go


def case_rows(case: str, subject, other, model, args, decisions: list) -> list[dict]:
    """Every run of one subject (with ``other``'s guides when given)."""
    prepared = subject.prepared
    tensors = prepared.tensors.with_guides(GUIDES)
    mask = tensors.mask.numpy().astype(bool)
    guides = {g: prepared.registered[g] for g in GUIDES}
    protocols = {g: subject.protocols[g] for g in GUIDES}
    if other is not None:
        guides = foreign_guides(prepared, other.prepared, mask, prepared.hr_affine, None)
        lr_maps = dict(zip(MAP_ORDER, tensors.lr.numpy(), strict=True))
        tensors = prepare_subject(
            lr_maps, guides, protocols, mask, lr_up=tensors.lr_up.numpy(),
            acquisition=prepared.acquisition,
        )  # fmt: skip
    runs = variants(model, tensors, args.steps, args.runs)
    if args.auto:
        label = f"{case}, sub-{subject.name}"
        runs["auto"] = auto_run(model, tensors, prepared, guides, protocols, decisions, label)
    rows = []
    for name, run in runs.items():
        volume, seconds, _ = measured(run)
        row = {"case": case, "subject": subject.name, "run": name, "seconds": seconds}
        scores = subject.score(volume)
        row |= {k: scores[k] for k in KEYS}
        rows.append(row)
        print(" ".join(f"{v:.4g}" if isinstance(v, float) else str(v)
                       for v in row.values()), flush=True)  # fmt: skip
    return rows


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
    p.add_argument("--auto", action="store_true", help="add auto's run and the wrong-guide case")
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    model = load_shipped("swig_default")
    rows: list[dict] = []
    decisions: list[str] = []
    cases = list(CASES) + [WRONG] * args.auto
    with tempfile.TemporaryDirectory() as tmp:
        for case, fields in CASES.items():
            subjects = list(eval_subjects(
                fields, args.subjects, args.size, VALIDATION_SEED, 0, Path(tmp) / case[:8]
            ))  # fmt: skip
            for k, subject in enumerate(subjects):
                pairs = [(case, None)]
                if args.auto and case == "in distribution 2 mm iso" and len(subjects) > 1:
                    pairs.append((WRONG, subjects[(k + 1) % len(subjects)]))
                for name, other in pairs:
                    rows += case_rows(name, subject, other, model, args, decisions)
    lines = [
        f"Command: `python -m benchmarks.adaptation --subjects {args.subjects} --size "
        f"{args.size} --steps {args.steps} --runs {' '.join(args.runs)}"
        f"{' --auto' if args.auto else ''}`"
        f"; validation phantoms (seed {VALIDATION_SEED}), means over subjects.",
        "",
        "| case | run | " + " | ".join(KEYS) + " | s |",
        "|---|---|" + "---|" * (len(KEYS) + 1),
    ]
    for case in cases:
        for name in dict.fromkeys(r["run"] for r in rows):
            sub = [r for r in rows if r["case"] == case and r["run"] == name]
            if sub:
                cells = [f"{np.mean([r[k] for r in sub]):.4g}" for k in (*KEYS, "seconds")]
                lines.append(f"| {case} | {name} | " + " | ".join(cells) + " |")
    if decisions:
        lines += ["", "Decisions of `--adapt-steps auto`:", "", *decisions]
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
