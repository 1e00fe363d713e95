"""Does the INR's stopping measure carry information? Curves against the true error.

    python -m benchmarks.inr_stopping [--subjects 2] [--settings 2mm-iso 1x1x4mm] [--steps 600]

On validation phantoms (seed 3000: the seed the INR's settings were chosen on, not the
held-out 5000 of ``benchmarks.quality``), the INR is fitted for ``--steps`` steps without
stopping early; every ``check_every`` steps it records the stopping measure (the mean MI
between maps and guides, McGinnis et al.'s criterion) and the true error against the
phantom truth (GM T1 MAE, 1 - SSIM). It reports where the rule stops, which step it keeps,
the true error there against the best step's and the LR input's, and the Spearman
correlation between the MI and the true error along the fit. Writes
``benchmarks/results/inr_stopping.md``, ``.csv`` and ``.png`` (``inr_stopping_swig.*`` with
``--init swig``).
"""

from __future__ import annotations

import argparse
import csv
import platform
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from benchmarks.quality import SETTINGS, VALIDATION_SEED, eval_subjects
from swigapp import metrics
from swigapp.models.features import MAP_ORDER
from swigapp.models.inference import predict_volume
from swigapp.models.inr import (
    INITS,
    INRConfig,
    crop_batch,
    fit_inr,
    guides_seen,
    still_improving,
)
from swigapp.models.losses import total_loss
from swigapp.models.shipped import load_shipped
from swigapp.operators import grid

RESULTS = Path(__file__).parent / "results"
#: Fixed crops on which the physics loss of the curves is measured.
LOSS_CROPS = 32


def simulate_rule(
    steps: list[int], values: list[float], larger: bool, config: INRConfig
) -> tuple[int, int]:
    """(stop index, kept index) of a rule on a recorded curve (checks at ``steps``, the
    start included), as :func:`fit_inr` applies it: stop at the first check after
    ``min_steps`` that no longer improves, keep the best check up to there; the last check
    when it never stops."""
    stop = len(values) - 1
    for i, step in enumerate(steps):
        if step >= config.min_steps and not still_improving(
            values[: i + 1], config.patience, config.tol, larger
        ):
            stop = i
            break
    seen = values[: stop + 1]
    kept = int(np.argmax(seen) if larger else np.argmin(seen))
    return stop, kept


def true_errors(subject, volume: np.ndarray) -> dict:
    """The true errors the curves follow (a subset of ``benchmarks.quality.score``)."""
    maps = dict(zip(MAP_ORDER, volume, strict=True))
    out = {}
    for m in ("T1", "T2"):
        mae = metrics.tissue_mae_ms(maps[m], subject.truth[m], {"GM": subject.tissues["GM"]})
        out[f"GM_{m}_MAE_ms"] = mae["GM"]
    for m in MAP_ORDER:
        ssim = metrics.ssim(maps[m], subject.truth[m], metrics.DATA_RANGE[m], mask=subject.mask)
        out[f"{m}_1mSSIM"] = 1 - ssim
    return out


class PhysicsLoss:
    """The INR's unsupervised loss (guide and LR terms, no anchor or smoothness) of whole
    volumes on :data:`LOSS_CROPS` fixed crops of one subject: can the loss tell the truth
    from the base?"""

    def __init__(self, tensors, config: INRConfig) -> None:
        rng = np.random.default_rng([config.seed, 2])
        seen = guides_seen(tensors)
        self.crops, self.batch = crop_batch(tensors, rng, config.crop, LOSS_CROPS, seen)
        self.weights = config.weights

    @torch.no_grad()
    def __call__(self, volume: np.ndarray | torch.Tensor) -> float:
        """Loss of maps (3, X, Y, Z; PD, T1 s, T2 s)."""
        vol = torch.as_tensor(volume, dtype=torch.float32)
        maps = torch.stack([vol[(slice(None), *c["box"])] for c in self.crops])
        return float(total_loss(self.weights, maps, self.batch)[0])


def curves(subject, config: INRConfig, anchors: Sequence[float]) -> dict[float, list[dict]]:
    """One fit per anchor, its MI, physics loss and true errors per check (step 0: the
    start, the base); the truth's physics loss in every row (``truth_loss``). The base (SWIG
    with ``init="swig"``) and the loss's crops are set up once for all anchors."""
    tensors = subject.prepared.tensors.with_guides(("T1w", "T2w"))
    voxel = grid.voxel_sizes(subject.prepared.hr_affine)
    base = None
    if config.init == "swig":
        base = predict_volume(load_shipped("swig_default"), tensors)
    physics = PhysicsLoss(tensors, config)
    truth_loss = physics(np.stack([subject.truth[m] for m in MAP_ORDER]))
    runs = {}
    for anchor in anchors:
        truth: list[dict] = []

        def monitor(volume: np.ndarray, truth: list[dict] = truth) -> float:
            truth.append(true_errors(subject, volume) | {"loss": physics(volume)})
            return truth[-1]["GM_T1_MAE_ms"]

        fit = fit_inr(tensors, voxel, replace(config, anchor=anchor), monitor=monitor, base=base)
        runs[anchor] = [
            {"step": step, "mi": mi, **row, "truth_loss": truth_loss}
            for (step, mi), row in zip(fit.mi_curve, truth, strict=True)
        ]
    return runs


Runs = dict[tuple[str, str, float], list[dict]]


def report(runs: Runs, config: INRConfig) -> list[str]:
    """Markdown lines: per run and rule (the MI's, or all steps), the stop, the kept step and
    its true errors against the start's (the base) and the best check's; the physics loss of
    the truth, the start and the kept state."""
    lines = [
        "| setting | subject | anchor | rule | stops at | keeps | GM T1 MAE: start / kept / "
        "best (step) | 1-SSIM T1: start / kept | 1-SSIM T2: start / kept | 1-SSIM PD: start / "
        "kept | physics loss: truth / start / kept | Spearman(MI, GM T1 MAE) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (setting, sub, anchor), rows in runs.items():
        steps = [r["step"] for r in rows]
        gm = [r["GM_T1_MAE_ms"] for r in rows]
        best = int(np.argmin(gm))
        mi = [r["mi"] for r in rows]
        for rule in ("mi", "steps"):
            stop, kept = (
                simulate_rule(steps, mi, True, config) if rule == "mi" else (len(rows) - 1,) * 2
            )
            start, k = rows[0], rows[kept]
            lines.append(
                f"| {setting} | {sub} | {anchor:g} | {rule} | {steps[stop]} | {steps[kept]} | "
                f"{gm[0]:.1f} / {gm[kept]:.1f} / {gm[best]:.1f} ({steps[best]}) | "
                f"{start['T1_1mSSIM']:.4f} / {k['T1_1mSSIM']:.4f} | "
                f"{start['T2_1mSSIM']:.4f} / {k['T2_1mSSIM']:.4f} | "
                f"{start['PD_1mSSIM']:.4f} / {k['PD_1mSSIM']:.4f} | "
                f"{start['truth_loss']:.4f} / {start['loss']:.4f} / {k['loss']:.4f} | "
                f"{spearmanr(mi, gm).statistic:+.2f} |"
            )
    return lines


def plot(runs: Runs, config: INRConfig, path: Path) -> None:
    """One column per (setting, subject): MI, physics loss (the truth's dotted) and true
    errors against the step, one line per anchor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(dict.fromkeys((setting, sub) for setting, sub, _ in runs))
    panels = [
        ("mi", "MI maps-guides (nats)"),
        ("loss", "physics loss (fixed crops)"),
        ("T2_1mSSIM", "true 1 - T2 SSIM"),
        ("GM_T1_MAE_ms", "true GM T1 MAE (ms)"),
    ]
    fig, axes = plt.subplots(len(panels), len(cases), figsize=(4 * len(cases), 10), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for col, case in enumerate(cases):
        anchors = [a for (st, sb, a) in runs if (st, sb) == case]
        for n, anchor in enumerate(anchors):
            rows = runs[(*case, anchor)]
            steps = [r["step"] for r in rows]
            colour = colours[n % len(colours)]
            _, kept = simulate_rule(steps, [r["mi"] for r in rows], True, config)
            for row_i, (key, label) in enumerate(panels):
                ax = axes[row_i][col]
                ax.plot(
                    steps, [r[key] for r in rows], ".-", color=colour, label=f"anchor {anchor:g}"
                )
                ax.plot(steps[kept], rows[kept][key], "o", mfc="none", ms=9, color=colour)
                ax.set_ylabel(label)
                if key == "loss" and n == 0:
                    ax.axhline(rows[0]["truth_loss"], color="k", ls=":", label="truth")
        axes[0][col].set_title(f"{case[0]} sub-{case[1]}")
        axes[-1][col].axhline(
            runs[(*case, anchors[0])][0]["GM_T1_MAE_ms"], color="grey", ls=":", label="start"
        )
        axes[-1][col].set_xlabel("step (circle: the MI rule's kept step)")
    axes[1][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    """Fit, record, write the table, CSV and plot."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--subjects", type=int, default=2)
    p.add_argument("--settings", nargs="+", default=["2mm-iso", "1x1x4mm"], choices=list(SETTINGS))
    p.add_argument("--steps", type=int, default=INRConfig().max_steps)
    p.add_argument("--size", choices=("tiny", "slab", "full"), default="slab")
    p.add_argument("--init", choices=INITS, default="lr", help="the INR's base (swig: SWIG)")
    p.add_argument(
        "--anchors", type=float, nargs="+", help="proximal weights to fit (default: the default's)"
    )
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()
    torch.set_num_threads(2)
    # the default fit, never stopping early: min_steps = max_steps
    config = INRConfig(stop="steps", max_steps=args.steps, init=args.init)
    rules = replace(config, min_steps=INRConfig().min_steps)  # the rules as the app applies them
    anchors = args.anchors or [config.resolved().anchor]
    runs: Runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for setting in args.settings:
            for subject in eval_subjects(
                SETTINGS[setting], args.subjects, args.size, VALIDATION_SEED, 0, Path(tmp) / setting
            ):
                for anchor, rows in curves(subject, config, anchors).items():
                    runs[(setting, subject.name, anchor)] = rows
                print(f"{setting} sub-{subject.name} done", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "inr_stopping" + ("_swig" if args.init == "swig" else "")
    with open(out / f"{stem}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["setting", "subject", "anchor", *runs[next(iter(runs))][0]])
        for key, rows in runs.items():
            for r in rows:
                writer.writerow([*key, *r.values()])
    plot(runs, rules, out / f"{stem}.png")
    text = [
        "# INR stopping rules against the true error",
        "",
        f"`python -m benchmarks.inr_stopping --subjects {args.subjects} --settings "
        f"{' '.join(args.settings)} --steps {args.steps} --init {args.init} --anchors "
        f"{' '.join(f'{a:g}' for a in anchors)}` on "
        f"{platform.machine()}, "
        f"{torch.get_num_threads()} threads; validation phantoms (seed {VALIDATION_SEED}, "
        f"{args.size}). Checks every {config.check_every} steps; a rule stops after "
        f"{rules.min_steps} steps once {rules.patience} checks bring no improvement and keeps "
        "its best check, the start (step 0, the base) included.",
        "",
        *report(runs, rules),
        "",
        f"![curves]({stem}.png)",
        "",
    ]
    (out / f"{stem}.md").write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
