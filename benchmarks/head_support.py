"""How far the guard's head mask reaches beyond the LR maps' support, chosen on the
validation individuals.

    python -m benchmarks.head_support [--subjects 3] [--margins 0 1 2]

The guard (:func:`swigapp.participant.guard_prediction`) writes 0 outside the head mask.
Compared: the rule before (the LR voxels whose PD is above 0, with the brain mask) and the
LR head region (:func:`swigapp.inputs.qmri.head_region`) grown by each margin
(:func:`swigapp.participant.head_mask`). At a skull-stripped brain's edge the truth reaches
HR voxels whose nearest LR voxel is outside the region, so a small margin cuts brain; a
larger one keeps more of the network's output beyond the brain. Per mask: the scores of
SWIG's guarded maps inside the true brain, the share of the true brain written as 0, the
mask's volume beyond the true brain and its connected pieces (many: specks of output in
the background). One prediction per subject; whole brains of the validation individuals
(phantom seed 3000), T1w and T2w guides. Writes benchmarks/results/head_support.md and .csv.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage

from benchmarks.quality import SETTINGS, VALIDATION_SEED, anatomies, eval_subjects, guard_swig
from swigapp.consistency import Evidence
from swigapp.models.inference import predict_ensemble
from swigapp.models.shipped import load_shipped
from swigapp.models.train import load_model
from swigapp.operators import grid
from swigapp.operators.interp import upsample_interp
from swigapp.participant import head_mask

COLUMNS = ("T1_SSIM", "T2_SSIM", "PD_SSIM", "T1_HFEN", "T2_HFEN", "GM_T1_MAE_ms", "GM_T2_MAE_ms")


def today_head(evidence: Evidence, shape: tuple[int, ...]) -> np.ndarray:
    """The guard's head mask before this benchmark: LR voxels whose PD is above 0, each HR
    voxel taking its nearest LR voxel, with the brain mask."""
    support = upsample_interp((evidence.lr[0] > 0).astype(np.float32), shape, order=0)
    return (support > 0.5) | evidence.mask


def head_masks(evidence: Evidence, shape: tuple[int, ...], margins: list[int]) -> dict:
    """The head masks compared: today's rule, then the head region grown by each margin."""
    masks = {"PD > 0 (before)": today_head(evidence, shape)}
    for margin in margins:
        masks[f"head region + {margin} LR voxels"] = head_mask(evidence, shape, margin)
    return masks


def score_margins(subject, network, margins: list[int], model_path: str | None) -> list[dict]:
    """One subject's rows, one per head mask, from one prediction."""
    tensors = subject.prepared.tensors
    raw, _ = predict_ensemble(network, tensors.with_guides(("T1w", "T2w")))
    lr = tensors.lr.numpy()
    evidence = Evidence(lr, subject.prepared.acquisition, {}, {},
                        tensors.mask.numpy().astype(bool), np.eye(4), np.eye(4))  # fmt: skip
    truth_brain, shape = subject.mask, raw.shape[1:]
    voxel_ml = float(np.prod(grid.voxel_sizes(subject.prepared.hr_affine))) / 1000.0
    rows = []
    for name, head in head_masks(evidence, shape, margins).items():
        beyond = head & ~truth_brain
        maps = guard_swig(raw, subject.prepared, subject.protocols, model_path, head)
        row = {"subject": subject.name, "head_mask": name}
        row["brain_cut_pct"] = 100.0 * float((truth_brain & ~head).sum() / truth_brain.sum())
        row["beyond_ml"] = float(beyond.sum()) * voxel_ml
        row["pieces"] = int(ndimage.label(head)[1])
        row |= {k: v for k, v in subject.score(maps).items() if k in COLUMNS}
        rows.append(row)
        print(
            f"  {name}: brain cut {row['brain_cut_pct']:.2f} %, beyond the brain "
            f"{row['beyond_ml']:.1f} ml, {row['pieces']} pieces, T1 SSIM "
            f"{row['T1_SSIM']:.4f} HFEN {row['T1_HFEN']:.3f} PD SSIM {row['PD_SSIM']:.4f} "
            f"GM T1 {row['GM_T1_MAE_ms']:.1f} ms",
            flush=True,
        )
    return rows


def main() -> None:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subjects", type=int, default=3)
    p.add_argument("--size", choices=("tiny", "slab", "full"), default="full")
    p.add_argument("--margins", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--settings", nargs="+", default=["2mm-iso", "1x1x4mm"], choices=SETTINGS)
    p.add_argument("--swig-model", help="a model.pt instead of the shipped SWIG weights")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = p.parse_args()
    network = load_model(args.swig_model) if args.swig_model else load_shipped("swig_default")
    names = anatomies("validation", args.subjects)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for setting in args.settings:
            for subject in eval_subjects(SETTINGS[setting], args.subjects, args.size,
                                         VALIDATION_SEED, 0, Path(tmp) / setting,
                                         anatomy=names):  # fmt: skip
                print(f"{setting} sub-{subject.name}", flush=True)
                for row in score_margins(subject, network, args.margins, args.swig_model):
                    rows.append({"setting": setting, **row})
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "head_support.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    keys = ("brain_cut_pct", "beyond_ml", "pieces", *COLUMNS)
    text = [
        "# Head mask margin (validation individuals)",
        "",
        f"Command: `python -m benchmarks.head_support --subjects {args.subjects} --size "
        f"{args.size} --margins {' '.join(map(str, args.margins))}`; individuals "
        f"{', '.join(names or ())}, phantom seed {VALIDATION_SEED}; SWIG "
        f"{args.swig_model or 'swig_default'} through the app's guard. Median over subjects "
        "(range). brain_cut_pct: share of the true brain written as 0; beyond_ml: the head "
        "mask's volume beyond the true brain (the network's output is written there); "
        "pieces: its connected components (many: isolated specks of output in the background).",
        "",
        "| LR | head mask | " + " | ".join(keys) + " |",
        "|---|---|" + "---|" * len(keys),
    ]
    for setting in args.settings:
        for name in dict.fromkeys(r["head_mask"] for r in rows):
            sub = [r for r in rows if r["setting"] == setting and r["head_mask"] == name]
            cells = []
            for k in keys:
                v = np.array([r[k] for r in sub], float)
                cells.append(f"{np.median(v):.4g} ({v.min():.4g}-{v.max():.4g})")
            text.append(f"| {setting} | {name} | " + " | ".join(cells) + " |")
    (args.out / "head_support.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
