"""Subsets of the maps: the app on held-out phantoms given all of PD/T1/T2, T1 only (an
MP2RAGE site), T2 and PD only (a multi-echo spin-echo site), T2 only, or T1 and PD (an
inversion-recovery or variable-flip-angle site), scored on the maps acquired.

    python -m benchmarks.subsets [--anatomy template|heldout] [--subjects 2] [--size slab]

Each subject is written once per subset (same seed: the same person, protocols, noise and
guide motion; only the LR maps given differ) and run through ``swigapp ... participant``
as a user would run it, with the registration, estimates, second pass and regional guard of
the app; cubic spline of the acquired LR maps is the baseline. Writes
``benchmarks/results/subsets_<anatomy>_<setting>.md``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np

from benchmarks.quality import HELD_OUT_SEED, SETTINGS, anatomies, held_out_config, load_truth
from swigapp import metrics
from swigapp.operators.interp import upsample_interp
from swigapp.phantom.bids import MAP_SUFFIX, write_dataset

RESULTS = Path(__file__).parent / "results"
SUBSETS = {"PD,T1,T2": ("PD", "T1", "T2"), "T1": ("T1",), "PD,T2": ("PD", "T2"), "T2": ("T2",),
           "PD,T1": ("PD", "T1")}  # fmt: skip


def run_app(
    bids: Path, out: Path, work: Path, model: str | None = None, extra: tuple[str, ...] = ()
) -> str:
    """``swigapp bids out participant`` (with ``--model`` and ``extra`` options; exit status
    checked); returns its output (stdout, then stderr)."""
    cmd = [sys.executable, "-m", "swigapp.cli.run", str(bids), str(out), "participant",
           "-w", str(work), "--skip-bids-validation"]  # fmt: skip
    cmd += ["--model", model] if model else []
    run = subprocess.run([*cmd, *extra], capture_output=True, text=True, check=False)
    if run.returncode:
        raise RuntimeError(f"swigapp failed on {bids}: {run.stderr[-2000:]}")
    return run.stdout + run.stderr


def scores(out: Path, bids: Path, sub: str, acquired: tuple[str, ...]) -> dict[str, float]:
    """SSIM and GM MAE (ms) of the acquired SR maps and of their cubic spline, and the
    app's brain mask volume over the true brain's."""
    truth, tissues, mask = load_truth(bids, sub)
    anat = out / f"sub-{sub}" / "anat"
    raw = bids / f"sub-{sub}" / "anat"
    app_mask = np.asarray(nib.load(anat / f"sub-{sub}_res-hi_desc-brain_mask.nii.gz").dataobj)
    row: dict[str, float] = {"mask / true brain": float((app_mask > 0).sum() / mask.sum())}
    for m in acquired:
        sr = np.asarray(
            nib.load(anat / f"sub-{sub}_res-hi_desc-swig_{MAP_SUFFIX[m]}.nii.gz").dataobj
        )
        lr = np.asarray(nib.load(raw / f"sub-{sub}_acq-lowres_{MAP_SUFFIX[m]}.nii.gz").dataobj)
        cubic = upsample_interp(lr.astype(np.float32), mask.shape, order=3)
        for name, maps in (("SR", sr), ("cubic", cubic)):
            row[f"{name} {m} SSIM"] = metrics.ssim(maps, truth[m], metrics.DATA_RANGE[m], mask=mask)
            if m != "PD":
                row[f"{name} GM {m} MAE ms"] = metrics.tissue_mae_ms(maps, truth[m], tissues)["GM"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anatomy", choices=("template", "heldout", "validation"),
                        default="template")  # fmt: skip
    parser.add_argument("--subjects", type=int, default=2)
    parser.add_argument("--size", default="slab", choices=("tiny", "slab", "full"))
    parser.add_argument("--setting", default="2mm-iso", choices=tuple(SETTINGS))
    parser.add_argument("--phantom-seed", type=int, default=HELD_OUT_SEED)
    parser.add_argument("--model", help="the app's --model (default: its default weights)")
    parser.add_argument("--subsets", nargs="+", choices=tuple(SUBSETS), default=list(SUBSETS))
    args = parser.parse_args()
    config = held_out_config(
        args.size, SETTINGS[args.setting], anatomies(args.anatomy, args.subjects)
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, subset in ((k, SUBSETS[k]) for k in args.subsets):
            bids = write_dataset(Path(tmp) / name / "bids", args.subjects, seed=args.phantom_seed,
                                 config=replace(config, maps=subset), progress=False)  # fmt: skip
            out = Path(tmp) / name / "out"
            run_app(bids, out, Path(tmp) / name / "work", args.model)
            for sub in sorted(p.name[4:] for p in bids.glob("sub-*")):
                row = {"subset": name, "subject": sub, **scores(out, bids, sub, subset)}
                rows.append(row)
                print(row, flush=True)
    kind = "held-out" if args.phantom_seed == HELD_OUT_SEED else "not the held-out seed"
    lines = [
        f"# Subsets of the maps: {args.anatomy} anatomy, {args.setting}",
        "",
        f"Command: `python -m benchmarks.subsets --anatomy {args.anatomy} --subjects "
        f"{args.subjects} --size {args.size} --setting {args.setting}"
        + (f" --model {args.model}" if args.model else "")
        + f" --subsets {' '.join(args.subsets)}`; machine: "
        f"{platform.machine()}, 2 cores (this project's CI kind). Phantoms of seed "
        f"{args.phantom_seed} ({kind}); the app as users run it (`swigapp ... participant`, "
        "default options). Medians over subjects [min, max]; the maps not acquired are not scored "
        "(they are estimates and not written).",
        "",
        "| maps given | map | SR SSIM | cubic SSIM | SR GM MAE ms | cubic GM MAE ms |",
        "|---|---|---|---|---|---|",
    ]

    def cell(values: list[float], digits: int) -> str:
        return (f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}, "
                f"{max(values):.{digits}f}]")  # fmt: skip

    for name in args.subsets:
        subset = SUBSETS[name]
        sel = [r for r in rows if r["subset"] == name]
        for m in subset:
            mae = ("-", "-")
            if m != "PD":
                mae = tuple(
                    cell([r[f"{k} GM {m} MAE ms"] for r in sel], 1) for k in ("SR", "cubic")
                )
            lines.append(
                f"| {name} | {m} | {cell([r[f'SR {m} SSIM'] for r in sel], 4)} | "
                f"{cell([r[f'cubic {m} SSIM'] for r in sel], 4)} | {mae[0]} | {mae[1]} |"
            )
    keys = list(dict.fromkeys(k for r in rows for k in r if k not in ("subset", "subject")))
    lines += ["", "Per subject:", "", "| maps given | subject | " + " | ".join(keys) + " |"]
    lines.append("|---|---|" + "---|" * len(keys))
    for r in rows:
        values = [f"{r[k]:.4g}" if k in r else "-" for k in keys]
        lines.append(f"| {r['subset']} | {r['subject']} | " + " | ".join(values) + " |")
    RESULTS.mkdir(exist_ok=True)
    if args.model:
        tag = Path(args.model).parent.name if Path(args.model).exists() else args.model
    else:
        from swigapp.models.shipped import model_card

        tag = f"v{model_card('swig_default')['version']}"
    seed = "" if args.phantom_seed == HELD_OUT_SEED else f"_seed{args.phantom_seed}"
    only = "" if args.subsets == list(SUBSETS) else "_" + "_".join(args.subsets).replace(",", "")
    path = RESULTS / f"subsets_{args.anatomy}_{args.setting}_{tag}{seed}{only}.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
