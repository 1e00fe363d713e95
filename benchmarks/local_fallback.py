"""Local fallback: how far do the app's maps depart locally from the acquired LR maps on
validation phantoms, and what does falling back where they depart cost or gain?

    python -m benchmarks.local_fallback [--anatomy template validation] [--subjects 2]
        [--size slab] [--settings 2mm-iso 1x1x4mm clinical-2d] [--limits 0.1 0.15 0.2 0.3]

Validation phantoms only (seed 3000; template and validation individuals): the limit of
:data:`swigapp.consistency.LOCAL_DEPARTURE` is chosen here, never on the held-out
subjects or the real acquisitions. For each subject, the maps after the app's regional
guard (:func:`swigapp.consistency.guard` without its local step) give
:func:`swigapp.consistency.local_departure` per map; the table gives its percentiles over
the brain's LR voxels and, per candidate limit, the share of the brain that would fall
back and the GM MAE (truth) before and after. Writes
benchmarks/results/local_fallback.{md,csv}. ``--phantom-seed 5000 --anatomy template
heldout`` reports the same on held-out phantoms (``local_fallback_seed5000.*``), after the
choice.
"""

from __future__ import annotations

import argparse
import csv
import platform
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.quality import GUIDES, SETTINGS, VALIDATION_SEED, anatomies, eval_subjects
from benchmarks.validate import load_candidate
from swigapp import consistency as cons
from swigapp.models.features import MAP_ORDER
from swigapp.models.inference import predict_ensemble

RESULTS = Path(__file__).parent / "results"


def predicted(subject, network) -> tuple[np.ndarray, np.ndarray, cons.Evidence]:
    """The network's maps (3, X, Y, Z) on a benchmark subject with its T1w and T2w guides,
    the zero-filled input and the evidence the app's guard checks them against."""
    prepared = subject.prepared
    tensors = prepared.tensors.with_guides(GUIDES)
    up, lr = tensors.lr_up.numpy(), tensors.lr.numpy()
    mask = tensors.mask.numpy().astype(bool)
    acq = prepared.acquisition
    sr, _ = predict_ensemble(network, tensors)
    protocols = {g: subject.protocols[g] for g in GUIDES}
    registered = {g: prepared.registered[g] for g in GUIDES}
    evidence = cons.Evidence(lr, acq, registered, protocols, mask, acq.lr_affine,
                             prepared.hr_affine)  # fmt: skip
    return sr, up, evidence


def subject_rows(
    setting: str, anatomy: str, subject, network, limits, head: bool = False
) -> list[dict]:
    """One row per (map, limit): the departure's percentiles, fallen share, GM MAE; with
    ``head``, the check covers the interior of the head the app writes too (as the app does,
    :func:`swigapp.consistency.checked_lr`), and the share of the head beyond the brain that
    falls back."""
    sr, up, evidence = predicted(subject, network)
    written = None
    if head:
        from swigapp.participant import head_mask

        written = head_mask(evidence, evidence.mask.shape)
        sr = np.where(written, sr, np.float32(0.0))  # as the app writes them
    after, _, _ = cons.guard(sr, up, evidence, local=False)
    departure = cons.local_departure(after, evidence)
    lr_brain = cons.lr_footprint(evidence)
    departure[:, ~cons.checked_lr(evidence, written, lr_brain)] = 0.0  # what the app checks
    beyond = None if written is None else written & ~subject.mask
    gm = subject.tissues["GM"] & subject.mask
    interp = evidence.interpolated
    rows = []
    for i, m in enumerate(MAP_ORDER):
        values = departure[i][lr_brain]
        truth = subject.truth[m][gm]
        base = {"setting": setting, "anatomy": anatomy, "subject": subject.name, "map": m}
        base |= {f"p{q}": float(np.percentile(values, q)) for q in (50, 99, 99.9)}
        base["max"] = float(values.max())
        base["gm_mae"] = float(np.mean(np.abs(after[i][gm] - truth)))
        for limit in limits:
            w = cons.local_weights(departure[i : i + 1], evidence, written, lr_brain, [limit])[0]
            blended = w * after[i] + (1 - w) * interp[i]
            row = base | {
                "limit": limit,
                "fallen_share": float((w[subject.mask] < 0.5).mean()),
                "gm_mae_after": float(np.mean(np.abs(blended[gm] - truth))),
            }
            if beyond is not None:
                row["beyond_share"] = float((w[beyond] < 0.5).mean()) if beyond.any() else 0.0
            rows.append(row)
    return rows


def speed(repeats: int = 3) -> None:
    """Seconds of :func:`swigapp.consistency.local_fallback` on a 1 mm brain's grid
    (160x192x160, 2 mm 3D k-space LR maps), with consistent maps and with one map falling
    back in a 1 ml cube; medians of ``repeats``."""
    import time

    from scipy import ndimage

    from swigapp.operators.acquisition import KSpace3D

    hr, lr = (160, 192, 160), (80, 96, 80)
    noise = np.random.default_rng(0).standard_normal((3, *hr))
    base = np.array([0.8, 1.2, 0.09])[:, None, None, None]
    maps = (base * (1 + 0.1 * ndimage.gaussian_filter(noise, (0, 4, 4, 4)))).astype(np.float32)
    acq = KSpace3D(hr, lr)
    y = np.asarray(acq.forward(maps.astype(np.float64)), np.float32)
    lr_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    lr_affine[:3, 3] = 0.5
    mask = np.zeros(hr, bool)
    mask[20:140, 20:172, 20:140] = True
    evidence = cons.Evidence(y, acq, {}, {}, mask, lr_affine, np.eye(4))
    bad = maps.copy()
    bad[2, 70:80, 90:100, 70:80] *= 2
    for label, m in (("consistent maps", maps), ("T2 falls back in 1 ml", bad)):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            cons.local_fallback(m, evidence)
            times.append(time.perf_counter() - start)
        print(f"{label}: median {np.median(times):.2f} s of {repeats} ({platform.machine()})")


def phantom_arguments(parser: argparse.ArgumentParser, choice: str) -> None:
    """The options :func:`phantom_subjects` reads, and the model's; ``choice`` says what
    the default seed (validation, 3000) decides."""
    parser.add_argument("--anatomy", nargs="+", default=["template", "validation"])
    parser.add_argument("--subjects", type=int, default=2)
    parser.add_argument("--size", choices=("tiny", "slab", "full"), default="slab")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--model", default="swig_default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--phantom-seed", type=int, default=VALIDATION_SEED,
                        help="5000: report on the held-out phantoms (with --anatomy template "
                        f"heldout); {choice}")  # fmt: skip


def phantom_subjects(args: argparse.Namespace, work: Path) -> Iterator[tuple[str, str, Any]]:
    """(setting, anatomy, subject) for each phantom a benchmark's ``args`` ask for
    (``--anatomy``, ``--settings``, ``--subjects``, ``--size``, ``--phantom-seed``,
    ``--seed``), written under ``work`` and registered, one at a time."""
    for anatomy in args.anatomy:
        for setting in args.settings:
            for subject in eval_subjects(
                SETTINGS[setting], args.subjects, args.size, args.phantom_seed, args.seed,
                work / anatomy / setting, anatomy=anatomies(anatomy, args.subjects),
            ):  # fmt: skip
                yield setting, anatomy, subject


def write_csv(path: Path, rows: list[dict]) -> None:
    """``rows`` (dicts with the same keys) as a CSV file, in ``path``'s folder made if need be."""
    path.parent.mkdir(exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    """Score the validation phantoms and write the report."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    phantom_arguments(p, "the limits are chosen at the default, 3000")
    p.add_argument("--limits", nargs="+", type=float, default=[0.1, 0.15, 0.2, 0.3])
    p.add_argument("--head", action="store_true",
                   help="check the head's interior too, as the app does")  # fmt: skip
    p.add_argument("--speed", action="store_true",
                   help="only time the local fallback on a 1 mm brain's grid")  # fmt: skip
    args = p.parse_args()
    if args.speed:
        speed()
        return
    tag = "" if args.phantom_seed == VALIDATION_SEED else f"_seed{args.phantom_seed}"
    tag += "_head" if args.head else ""
    network = load_candidate(args.model)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for setting, anatomy, subject in phantom_subjects(args, Path(tmp)):
            rows += subject_rows(setting, anatomy, subject, network, args.limits, args.head)
            print(rows[-1], flush=True)
    write_csv(RESULTS / f"local_fallback{tag}.csv", rows)
    lines = [
        f"# Local fallback on {'held-out' if 'seed' in tag else 'validation'} phantoms"
        + (" (brain and the head's interior checked)" if args.head else ""),
        "",
        f"Command: `python -m benchmarks.local_fallback --anatomy {' '.join(args.anatomy)} "
        f"--subjects {args.subjects} --size {args.size} --settings {' '.join(args.settings)}"
        + (f" --phantom-seed {args.phantom_seed}" if "seed" in tag else "")
        + (" --head" if args.head else "")
        + "`; "
        f"model {args.model}; machine: {platform.machine()}, 2 cores (this project's CI "
        f"kind). Phantoms of seed {args.phantom_seed}. Departure: |G(D(maps) - LR)| / G(|LR|) per "
        "LR voxel of the brain, after the regional guard. Per limit, with the fallback "
        "applied over the brain as the app does: the share of the brain that falls back "
        "(weight < 0.5) and the GM MAE (T1, T2 in ms; PD x 1000) before -> after, means over "
        "subjects.",
        "",
        "| setting | anatomy | map | departure p50 / p99 / p99.9 / max (max over subjects) "
        "| "
        + " | ".join(
            f"limit {x:g}: fallen % ; GM MAE"
            + (" ; beyond-brain fallen % (max)" if args.head else "")
            for x in args.limits
        )
        + " |",
        "|---|---|---|---|" + "---|" * len(args.limits),
    ]
    for setting in args.settings:
        for anatomy in args.anatomy:
            for m in MAP_ORDER:
                sel = [r for r in rows if (r["setting"], r["anatomy"], r["map"]) ==
                       (setting, anatomy, m)]  # fmt: skip
                if not sel:
                    continue
                pct = " / ".join(f"{max(r[k] for r in sel):.3f}"
                                 for k in ("p50", "p99", "p99.9", "max"))  # fmt: skip
                cells = []
                for x in args.limits:
                    at = [r for r in sel if r["limit"] == x]
                    share = 100 * np.mean([r["fallen_share"] for r in at])
                    before = 1000 * np.mean([r["gm_mae"] for r in at])
                    after = 1000 * np.mean([r["gm_mae_after"] for r in at])
                    cell = f"{share:.2f} ; {before:.1f} -> {after:.1f}"
                    if args.head:
                        cell += f" ; beyond {100 * max(r['beyond_share'] for r in at):.2f}"
                    cells.append(cell)
                lines.append(f"| {setting} | {anatomy} | {m} | {pct} | " + " | ".join(cells) + " |")
    (RESULTS / f"local_fallback{tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
