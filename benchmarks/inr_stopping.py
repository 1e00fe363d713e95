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
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from benchmarks.quality import SETTINGS, eval_subjects
from swigapp import kspace, metrics
from swigapp.models.features import MAP_ORDER
from swigapp.models.inference import predict_volume
from swigapp.models.inr import INITS, INRConfig, fit_inr, still_improving
from swigapp.models.shipped import load_shipped

RESULTS = Path(__file__).parent / "results"
VALIDATION_SEED = 3000
#: rule -> (measure column, higher is better)
RULES = {"mi": ("mi", True)}


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


def curves(subject, config: INRConfig) -> list[dict]:
    """One fit, its MI and true errors per check (step 0: the start, the LR input)."""
    tensors = subject.prepared.tensors.with_guides(("T1w", "T2w"))
    voxel = kspace.voxel_sizes(subject.prepared.hr_affine)
    truth: list[dict] = []

    def monitor(volume: np.ndarray) -> float:
        truth.append(true_errors(subject, volume))
        return truth[-1]["GM_T1_MAE_ms"]

    base = None
    if config.init == "swig":
        base = predict_volume(load_shipped("swig_default"), tensors)
    fit = fit_inr(tensors, voxel, config, monitor=monitor, base=base)
    return [
        {"step": step, "mi": mi, **row} for (step, mi), row in zip(fit.mi_curve, truth, strict=True)
    ]


def report(runs: dict[tuple[str, str], list[dict]], config: INRConfig) -> list[str]:
    """Markdown lines: per run and rule, the stop, the kept step and its true error."""
    lines = [
        "| setting | subject | rule | stops at | keeps | GM T1 MAE: start / kept / best "
        "(step) | 1-SSIM T1: kept / best | 1-SSIM T2: kept / best | Spearman(MI, GM T1 MAE) "
        "| Spearman(MI, 1-SSIM T2) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (setting, sub), rows in runs.items():
        checks = rows
        steps = [r["step"] for r in checks]
        gm = [r["GM_T1_MAE_ms"] for r in checks]
        best = int(np.argmin(gm))
        t1 = [r["T1_1mSSIM"] for r in checks]
        t2 = [r["T2_1mSSIM"] for r in checks]
        for rule, (column, larger) in RULES.items():
            values = [r[column] for r in checks]
            stop, kept = simulate_rule(steps, values, larger, config)
            lines.append(
                f"| {setting} | {sub} | {rule} | {checks[stop]['step']} | "
                f"{checks[kept]['step']} | {rows[0]['GM_T1_MAE_ms']:.1f} / {gm[kept]:.1f} / "
                f"{gm[best]:.1f} ({checks[best]['step']}) | {t1[kept]:.4f} / {min(t1):.4f} | "
                f"{t2[kept]:.4f} / {min(t2):.4f} | {spearmanr(values, gm).statistic:+.2f} | "
                f"{spearmanr(values, t2).statistic:+.2f} |"
            )
    return lines


def plot(runs: dict[tuple[str, str], list[dict]], config: INRConfig, path: Path) -> None:
    """One column per run: MI, held-out guide error and true errors against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, len(runs), figsize=(4 * len(runs), 8), squeeze=False)
    for col, ((setting, sub), rows) in enumerate(runs.items()):
        steps = [r["step"] for r in rows]
        panels = [
            ("mi", "MI maps-guides (nats)"),
            ("T2_1mSSIM", "true 1 - T2 SSIM"),
            ("GM_T1_MAE_ms", "true GM T1 MAE (ms)"),
        ]
        for row_i, (key, label) in enumerate(panels):
            ax = axes[row_i][col]
            ax.plot(steps, [r[key] for r in rows], "k.-")
            ax.set_ylabel(label)
            if row_i == 0:
                ax.set_title(f"{setting} sub-{sub}")
            if row_i == 2:
                ax.axhline(rows[0][key], color="grey", ls=":", label="start (base)")
                ax.set_xlabel("step")
            for rule, colour in (("mi", "tab:blue"),):
                column, larger = RULES[rule]
                _, kept = simulate_rule(steps, [r[column] for r in rows], larger, config)
                ax.axvline(steps[kept], color=colour, ls="--", label=f"{rule} keeps")
        axes[2][col].legend(fontsize=7)
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
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()
    torch.set_num_threads(2)
    # the default fit, never stopping early: min_steps = max_steps
    config = replace(INRConfig(), stop="steps", max_steps=args.steps, init=args.init)
    rules = replace(config, min_steps=INRConfig().min_steps)  # the rules as the app applies them
    runs: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for setting in args.settings:
            for subject in eval_subjects(
                SETTINGS[setting], args.subjects, args.size, VALIDATION_SEED, 0, Path(tmp) / setting
            ):
                runs[(setting, subject.name)] = curves(subject, config)
                print(f"{setting} sub-{subject.name} done", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "inr_stopping" + ("_swig" if args.init == "swig" else "")
    with open(out / f"{stem}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["setting", "subject", *runs[next(iter(runs))][0]])
        for (setting, sub), rows in runs.items():
            for r in rows:
                writer.writerow([setting, sub, *r.values()])
    plot(runs, rules, out / f"{stem}.png")
    text = [
        "# INR stopping rules against the true error",
        "",
        f"`python -m benchmarks.inr_stopping --subjects {args.subjects} --settings "
        f"{' '.join(args.settings)} --steps {args.steps} --init {args.init}` on "
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
