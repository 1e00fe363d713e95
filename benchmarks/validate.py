"""Model selection: score candidate SWIG models on validation phantoms, side by side.

    python -m benchmarks.validate swig_default swig_stage4 runs/swig_stage6/model.pt

Validation subjects are made like the held-out ones (:func:`benchmarks.quality.
held_out_config`: 5 lesions, stronger bias, jittered protocols, guides misaligned then
registered with ANTs) but from another seed (3000 by default; the held-out seed is
refused), so a model can be chosen without looking at the benchmark. Each subject is
registered once and every model runs on the same inputs (T1w + T2w guides). Prints the
mean per setting and model, and the lesion T1 error per subject; writes every row as CSV
with ``--csv``.

Settings are the quality benchmark's (in distribution) or the shift benchmark's axes
(:data:`benchmarks.shift.AXES`), drawn here from the validation seed: its shift seed is
refused like the held-out one.

    python -m benchmarks.validate swig_default runs/x/model.pt --settings "combined 2 mm iso"
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.quality import (
    GUIDES,
    HELD_OUT_SEED,
    SETTINGS,
    VALIDATION_SEED,
    EvalSubject,
    anatomies,
    eval_subjects,
)
from benchmarks.shift import AXES, SHIFT_SEED
from swigapp.models.features import MAP_ORDER
from swigapp.models.inference import predict_volume
from swigapp.models.shipped import load_shipped, shipped_name
from swigapp.models.train import load_model
from swigapp.operators.interp import upsample_interp

#: (row key, column title, decimals) of the printed table
COLUMNS = (
    ("GM_T1_MAE_ms", "GM T1 ms", 1),
    ("WM_T1_MAE_ms", "WM T1 ms", 1),
    ("lesion_T1_MAE_ms", "lesion T1 ms", 1),
    ("lesion_T1_bias_ms", "lesion T1 bias ms", 1),
    ("GM_T2_MAE_ms", "GM T2 ms", 1),
    ("lesion_T2_MAE_ms", "lesion T2 ms", 1),
    ("PD_SSIM", "PD SSIM", 4),
    ("PD_HFEN", "PD HFEN", 3),
    ("T1_HFEN", "T1 HFEN", 3),
    ("T2_HFEN", "T2 HFEN", 3),
    ("T1_SSIM", "T1 SSIM", 4),
    ("T2_SSIM", "T2 SSIM", 4),
    ("FLAIR_SSIM", "FLAIR SSIM", 3),
)


def cubic_spline(lr: np.ndarray, hr_shape: tuple[int, ...]) -> np.ndarray:
    """The LR maps (3, x, y, z) by cubic spline onto the HR grid, negatives clipped, float32."""
    up = np.stack([upsample_interp(v, hr_shape, order=3) for v in lr])
    return np.clip(up, 0.0, None).astype(np.float32)


def load_candidate(model: str) -> torch.nn.Module:
    """A shipped model by name (hash checked), else a model.pt."""
    name = shipped_name(model)
    return load_shipped(name) if name else load_model(model)


def lesion_bias_ms(volume: np.ndarray, subject: EvalSubject) -> float:
    """Mean signed T1 error in the lesions, ms (negative: pulled toward white matter)."""
    lesion = subject.tissues["lesion"]
    if not lesion.any():
        return float("nan")
    t1 = volume[MAP_ORDER.index("T1")]
    return 1000.0 * float(np.mean(t1[lesion] - subject.truth["T1"][lesion]))


def table(rows: list[dict], models: list[str]) -> str:
    """Markdown: the mean of every column per (setting, model), then lesion T1 per subject."""
    lines = []
    for setting in dict.fromkeys(r["setting"] for r in rows):
        here = [r for r in rows if r["setting"] == setting]
        subjects = list(dict.fromkeys(r["subject"] for r in here))
        lines += [f"### LR {setting} (mean of {len(subjects)} validation subjects)", ""]
        head = [c[1] for c in COLUMNS] + [f"lesion T1 sub-{s}" for s in subjects]
        lines += ["| model | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
        for model in models:
            mine = [r for r in here if r["model"] == model]
            cells = [f"{np.nanmean([r[k] for r in mine]):.{d}f}" for k, _, d in COLUMNS]
            cells += [f"{r['lesion_T1_MAE_ms']:.1f}" for r in mine]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    """Score the models and print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+", help="shipped model names or model.pt files")
    p.add_argument("--subjects", type=int, default=6)
    p.add_argument("--phantom-seed", type=int, default=VALIDATION_SEED)
    p.add_argument("--size", choices=("tiny", "slab", "full"), default="slab")
    p.add_argument(
        "--settings",
        nargs="+",
        default=list(SETTINGS),
        choices=list(SETTINGS | AXES),
        metavar="SETTING",
        # argparse formats help with %: the axis names hold percent signs
        help=f"quality settings ({', '.join(SETTINGS)}) or shift axes ({', '.join(AXES)})".replace(
            "%", "%%"
        ),
    )
    p.add_argument(
        "--anatomy",
        choices=("template", "validation"),
        default="template",
        help="template: deformed ICBM 2009; validation: the validation individuals of the "
        "anatomy split (swigapp.phantom.individuals)",
    )
    p.add_argument("--seed", type=int, default=0, help="registration seed")
    p.add_argument("--csv", type=Path, help="write every (setting, subject, model) row here")
    args = p.parse_args()
    if args.phantom_seed in (HELD_OUT_SEED, SHIFT_SEED):
        p.error(f"seed {args.phantom_seed} is a reported benchmark's: choose models on another")
    runs = {"cubic spline": lambda t: cubic_spline(t.lr.numpy(), t.hr_shape)}  # baseline
    for m in args.models:
        network = load_candidate(m)
        runs[m] = lambda t, net=network: predict_volume(net, t)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for setting in args.settings:
            subjects = eval_subjects(
                (SETTINGS | AXES)[setting],
                args.subjects,
                args.size,
                args.phantom_seed,
                args.seed,
                Path(tmp) / setting,
                anatomy=anatomies(args.anatomy, args.subjects),
            )
            for subject in subjects:
                inputs = subject.prepared.tensors.with_guides(GUIDES)
                for model, run in runs.items():
                    volume = run(inputs)
                    row = {"setting": setting, "subject": subject.name, "model": model}
                    row["lesion_T1_bias_ms"] = lesion_bias_ms(volume, subject)
                    rows.append(row | subject.score(volume))
                    print(
                        f"{setting} sub-{subject.name} {model}: GM T1 "
                        f"{rows[-1]['GM_T1_MAE_ms']:.1f} ms, lesion T1 "
                        f"{rows[-1]['lesion_T1_MAE_ms']:.1f} ms",
                        flush=True,
                    )
    if args.csv:
        with args.csv.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    print(
        f"\nphantom seed {args.phantom_seed} (validation), {args.size}, {args.anatomy} anatomy, "
        "T1w + T2w guides\n\n" + table(rows, list(runs))
    )


if __name__ == "__main__":
    main()
