"""A new site's recipe: self-supervised fine-tuning of the shipped model on a shifted cohort.

    python -m benchmarks.cohort [--cohort 8] [--steps 300] [--recipes 1e-4:0 1e-4:5]

A cohort of ``--cohort`` phantom subjects under the shift benchmark's combined shift at
2 mm iso (:data:`benchmarks.shift.AXES`, on the held-out configuration) is written as a
BIDS dataset (seed :data:`COHORT_SEED`); its truth is never read. For every recipe
LR:ANCHOR (learning rate, proximal weight ``--w-anchor``) the documented command

    swigapp-train OUT --bids COHORT --init swig_default --steps N --learning-rate LR --w-anchor A

fine-tunes ``swig_default`` on it (guide and LR consistency only: no HR truth). The
recipe is chosen on validation subjects of the same shift (seed :data:`VALIDATION_SEED`)
by the mean over subjects of the relative change of GM T1 and GM T2 MAE against
``swig_default``; every row is then scored on held-out subjects of the same shift (seed
:data:`HELD_OUT_SEED`). Seeds are apart from training (1000), validation (3000), the
held-out phantoms (5000) and the shift benchmark (7000).

Writes benchmarks/results/cohort/cohort.{md,csv}.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from benchmarks.quality import LR_ROW, eval_subjects, held_out_config, measured, method_table
from benchmarks.shift import AXES, CUBIC, SWIG
from swigapp.models.inr import INRConfig
from swigapp.models.shipped import load_shipped
from swigapp.models.train import load_model
from swigapp.operators import grid
from swigapp.phantom.bids import write_dataset

SETTING = "combined 2 mm iso"
COHORT_SEED = 8000
VALIDATION_SEED = 8300
HELD_OUT_SEED = 8500
KEYS = (
    "PD_SSIM", "T1_SSIM", "T2_SSIM", "T1_HFEN", "T2_HFEN", "GM_T1_MAE_ms", "GM_T2_MAE_ms",
    "WM_T1_MAE_ms", "PD_NRMSE", "lesion_T1_MAE_ms",
)  # fmt: skip


def fine_tune(cohort: Path, out: Path, recipe: str, steps: int, threads: int) -> tuple[Path, float]:
    """Run the documented fine-tuning command for one LR:ANCHOR recipe; (model.pt, seconds)."""
    rate, anchor = recipe.split(":")
    command = [
        sys.executable, "-m", "swigapp.cli.train", str(out), "--bids", str(cohort),
        "--init", "swig_default", "--steps", str(steps), "--learning-rate", rate,
        "--w-anchor", anchor, "--batch-size", "8", "--threads", str(threads), "-q",
    ]  # fmt: skip
    print("$", " ".join(command[2:]), flush=True)
    t0 = time.perf_counter()
    subprocess.run(command, check=True)
    return out / "model.pt", time.perf_counter() - t0


def score_models(models: dict, n: int, size: str, seed: int, work: Path, split: str) -> list[dict]:
    """LR input, cubic spline and each model's SWIG T1w+T2w row on ``n`` subjects."""
    rows = []
    inr_defaults = INRConfig()  # not run: method_table builds its INR rows lazily
    args = SimpleNamespace(adapt_steps=0, seed=0, inr_max_steps=inr_defaults.max_steps,
                           inr_stop=inr_defaults.stop, methods=[SWIG])  # fmt: skip
    for subject in eval_subjects(AXES[SETTING], n, size, seed, 0, work):
        voxel = grid.voxel_sizes(subject.prepared.hr_affine)
        for k, (name, model) in enumerate(models.items()):
            table = method_table(subject.prepared.tensors, {"swig": model}, args, voxel,
                                 subject.prepared)  # fmt: skip
            lr_row = LR_ROW["kspace"]
            keep = {SWIG: name} | ({lr_row: lr_row, CUBIC: CUBIC} if k == 0 else {})
            for method, label in keep.items():
                volume, seconds, _ = measured(table[method])
                row = {"split": split, "subject": subject.name, "model": label,
                       "seconds": seconds} | subject.score(volume)  # fmt: skip
                rows.append(row)
                print(
                    f"{split} sub-{subject.name} {label:28s} GM T1 {row['GM_T1_MAE_ms']:.1f} "
                    f"T2 {row['GM_T2_MAE_ms']:.2f} ms T1 SSIM {row['T1_SSIM']:.4f}",
                    flush=True,
                )
    return rows


def summary(rows: list[dict], split: str) -> dict[str, dict[str, tuple[float, float]]]:
    """(mean, sd over subjects) of every key per model of one split."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for model in dict.fromkeys(r["model"] for r in rows if r["split"] == split):
        sub = [r for r in rows if r["split"] == split and r["model"] == model]
        out[model] = {
            k: (float(np.mean([r[k] for r in sub])), float(np.std([r[k] for r in sub])))
            for k in KEYS
            if all(k in r for r in sub)
        }
    return out


def choose(rows: list[dict], recipes: list[str]) -> str:
    """The recipe with the lowest mean relative change of GM T1 and GM T2 MAE against
    swig_default on the validation subjects (per subject, then averaged)."""

    def change(name: str) -> float:
        base = {r["subject"]: r for r in rows if r["split"] == "validation"
                and r["model"] == "swig_default"}  # fmt: skip
        tuned = [r for r in rows if r["split"] == "validation" and r["model"] == name]
        return float(np.mean([
            (r[k] - base[r["subject"]][k]) / base[r["subject"]][k]
            for r in tuned for k in ("GM_T1_MAE_ms", "GM_T2_MAE_ms")
        ]))  # fmt: skip

    return min(recipes, key=lambda name: change(f"fine-tuned {name}"))


def report(rows: list[dict], chosen: str, meta: dict) -> str:
    """Markdown: validation and held-out tables (mean +- sd over subjects)."""
    lines = [
        "# Cohort fine-tuning on a shifted cohort (`python -m benchmarks.cohort`)",
        "",
        f"Shift: the shift benchmark's **{SETTING}** (held-out configuration). Cohort: "
        f"{meta['cohort']} subjects, seed {COHORT_SEED}, no truth used. Fine-tuning: "
        f"{meta['steps']} steps, batch 8, {meta['threads']} threads, guide and LR consistency "
        f"(weights 1 and 5) plus `--w-anchor`. Recipes are LR:ANCHOR. Chosen on validation "
        f"(seed {VALIDATION_SEED}, {meta['validation']} subjects) by the mean relative change "
        f"of GM T1 and GM T2 MAE: **{chosen}**. Held out: seed {HELD_OUT_SEED}, "
        f"{meta['held_out']} subjects. Mean +- sd over subjects.",
        "",
        "Fine-tuning wall time: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in meta["train_seconds"].items())
        + f" (includes preparing the cohort: registration of {meta['cohort']} subjects).",
    ]
    for split in ("validation", "held-out"):
        table = summary(rows, split)
        keys = [k for k in KEYS if all(k in v for v in table.values())]
        lines += ["", f"## {split}", "", "| model | " + " | ".join(keys) + " |",
                  "|---" * (len(keys) + 1) + "|"]  # fmt: skip
        for model, values in table.items():
            cells = [f"{values[k][0]:.4g} +- {values[k][1]:.2g}" for k in keys]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Write the cohort, fine-tune with every recipe, choose on validation, score."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cohort", type=int, default=8, help="subjects to fine-tune on")
    p.add_argument("--validation", type=int, default=2)
    p.add_argument("--held-out", type=int, default=3)
    p.add_argument("--size", choices=("tiny", "slab", "full"), default="slab")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--recipes", nargs="+", default=["1e-4:0", "1e-4:5"], metavar="LR:ANCHOR")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/cohort")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="swig-cohort-") as tmp:
        work = Path(tmp)
        config = held_out_config(args.size, AXES[SETTING])
        cohort = write_dataset(
            work / "cohort", args.cohort, seed=COHORT_SEED, config=config, progress=False
        )
        models = {"swig_default": load_shipped("swig_default")}
        seconds = {}
        for recipe in args.recipes:
            path, seconds[recipe] = fine_tune(cohort, work / f"run-{recipe}", recipe,
                                              args.steps, args.threads)  # fmt: skip
            models[f"fine-tuned {recipe}"] = load_model(path)
        rows = score_models(models, args.validation, args.size, VALIDATION_SEED,
                            work / "validation", "validation")  # fmt: skip
        chosen = choose(rows, args.recipes)
        rows += score_models(models, args.held_out, args.size, HELD_OUT_SEED,
                             work / "held-out", "held-out")  # fmt: skip
    with (out / "cohort.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=sorted({k for r in rows for k in r}))
        writer.writeheader()
        writer.writerows(rows)
    meta = {"cohort": args.cohort, "validation": args.validation, "held_out": args.held_out,
            "steps": args.steps, "threads": args.threads, "train_seconds": seconds}  # fmt: skip
    (out / "cohort.md").write_text(report(rows, chosen, meta))
    print((out / "cohort.md").read_text())


if __name__ == "__main__":
    main()
