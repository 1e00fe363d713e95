"""Which interpolation of the LR maps is the best fallback, per acquisition (validation).

    python -m benchmarks.interpolation [--subjects 3] [--size slab] [--anatomy validation]

Where the app does not trust its super-resolved maps (a region that fails its checks, or
where no guide saw), it falls back to an interpolation of the LR maps. This scores the
candidates on validation phantoms (seed 3000, made like the held-out ones; no method or
model is involved, so no registration either) in the quality benchmark's three settings:
zero-filled k-space (the 3D acquisition's exact inverse on its band), trilinear, cubic
spline, and for the 2D stack its least-squares inverse. Scores, brain-masked against the
truth: SSIM and HFEN per map, GM T1/T2 MAE (ms), and ringing: the mean overshoot of each
map beyond the range of the LR samples around the voxel (3x3x3 LR neighbourhood; % of the
map's data range), which needs no truth. ``--anatomy validation`` uses the validation
individuals of the anatomy split (:mod:`swigapp.phantom.individuals`) instead of the
template. Writes ``--out``; benchmarks/results/interpolation_template.md and
interpolation_individuals.md hold the runs quoted in :mod:`swigapp.consistency`.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from benchmarks.quality import HELD_OUT_SEED, SETTINGS, VALIDATION_SEED, held_out_config
from swigapp import metrics
from swigapp.models.features import MAP_ORDER
from swigapp.operators.interp import upsample_interp
from swigapp.phantom.subject import make_subject


def overshoot(maps: np.ndarray, lr: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Mean overshoot (% of each map's data range) of HR maps beyond the min/max of the LR
    samples in the 3x3x3 LR neighbourhood of each brain voxel: Gibbs ringing, no truth."""
    out = {}
    for i, name in enumerate(MAP_ORDER):
        hi = upsample_interp(ndimage.maximum_filter(lr[i], size=3), mask.shape, order=0)
        lo = upsample_interp(ndimage.minimum_filter(lr[i], size=3), mask.shape, order=0)
        excess = np.maximum(maps[i] - hi, 0) + np.maximum(lo - maps[i], 0)
        out[name] = 100.0 * float(excess[mask].mean()) / metrics.DATA_RANGE[name]
    return out


def candidates(subject) -> dict[str, np.ndarray]:
    """Every interpolation of the subject's LR maps onto its truth grid, (3, X, Y, Z)."""
    lr = np.stack([subject.lr_maps[m] for m in MAP_ORDER]).astype(np.float64)
    hr_shape = subject.truth.pd.shape
    acquisition = subject.acquisition
    out = {
        "trilinear": np.stack([upsample_interp(v, hr_shape, 1) for v in lr]),
        "cubic spline": np.stack([upsample_interp(v, hr_shape, 3) for v in lr]),
    }
    out[acquisition.upsampling_name] = np.asarray(acquisition.upsample(lr), np.float32)
    return out


def score_subject(subject) -> list[dict]:
    """One row per interpolation of one subject."""
    truth = subject.truth.as_dict()
    mask = subject.truth.brain_mask
    tissues = {k: v for k, v in subject.truth.tissue_masks().items() if k in ("GM", "WM")}
    lr = np.stack([subject.lr_maps[m] for m in MAP_ORDER])
    rows = []
    for name, maps in candidates(subject).items():
        maps = np.clip(maps, 0, None)
        row: dict = {"method": name}
        for i, m in enumerate(MAP_ORDER):
            row[f"{m}_SSIM"] = metrics.ssim(maps[i], truth[m], metrics.DATA_RANGE[m], mask=mask)
            row[f"{m}_HFEN"] = metrics.hfen(maps[i], truth[m], mask=mask)
        for m in ("T1", "T2"):
            i = MAP_ORDER.index(m)
            row[f"GM_{m}_MAE_ms"] = metrics.tissue_mae_ms(maps[i], truth[m], tissues)["GM"]
        for m, value in overshoot(maps, lr, mask).items():
            row[f"{m}_ring"] = value
        rows.append(row)
    return rows


COLUMNS = (
    ("T1_SSIM", 4), ("T2_SSIM", 4), ("PD_SSIM", 4), ("T1_HFEN", 3), ("T2_HFEN", 3),
    ("PD_HFEN", 3), ("GM_T1_MAE_ms", 1), ("GM_T2_MAE_ms", 1), ("T1_ring", 3), ("T2_ring", 3),
    ("PD_ring", 3),
)  # fmt: skip


def table(setting: str, rows: list[dict]) -> list[str]:
    """Markdown table: per method, the median over subjects (min-max in brackets)."""
    lines = [
        f"### {setting}",
        "",
        "| interpolation | " + " | ".join(c for c, _ in COLUMNS) + " |",
        "|---" * (len(COLUMNS) + 1) + "|",
    ]
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        cells = []
        for col, dec in COLUMNS:
            v = np.array([r[col] for r in mine])
            cells.append(f"{np.median(v):.{dec}f} ({v.min():.{dec}f}-{v.max():.{dec}f})")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def main() -> None:
    """Command line: score the interpolations and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--size", default="slab", choices=("tiny", "slab", "full"))
    parser.add_argument("--phantom-seed", type=int, default=VALIDATION_SEED)
    parser.add_argument(
        "--anatomy",
        choices=("template", "validation"),
        default="template",
        help="template: deformed ICBM 2009; validation: the split's validation individuals",
    )
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/interpolation.md"))
    args = parser.parse_args()
    if args.phantom_seed == HELD_OUT_SEED:
        parser.error(f"seed {HELD_OUT_SEED} is the held-out seed: choose on validation data")
    names: list[str | None] = [None] * args.subjects
    if args.anatomy == "validation":
        from swigapp.phantom.individuals import split_subjects

        names = split_subjects("validation")[: args.subjects]
    lines = [
        "# Fallback interpolation on validation phantoms",
        "",
        f"Command: `python -m benchmarks.interpolation --subjects {args.subjects} --size "
        f"{args.size} --anatomy {args.anatomy}` (phantom seed {args.phantom_seed}; median over "
        "subjects, range in brackets; ring: mean overshoot beyond the LR neighbourhood's "
        "range, % of the data range).",
        "",
    ]
    for setting in args.settings:
        rows = []
        for index, name in enumerate(names):
            t0 = time.perf_counter()
            config = held_out_config(args.size, SETTINGS[setting])
            if name is not None:
                config = replace(config, anatomy=name)
            subject = make_subject(index, seed=args.phantom_seed, config=config)
            rows += score_subject(subject)
            print(f"{setting} {name or index}: {time.perf_counter() - t0:.0f} s", flush=True)
        lines += table(f"{setting} ({args.anatomy})", rows)
        print("\n".join(table(setting, rows)), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
