"""Brain-mask volume against the truth on real heads (held-out individuals with skull).

    python -m benchmarks.brainmask [--part heldout] [--setting clinical-2d] [--size full]

Each individual of the anatomy split's part whose labels hold a head (SynthSeg's
extra-cerebral labels, BrainWeb's fat, muscle, skin, skull, marrow and dura; SynthSR has
none and is skipped) becomes a phantom with that head in the quality benchmark's setting
(default: the clinical oblique 2D stack), and goes through the app's own steps:
:func:`swigapp.participant.conform_maps` and :func:`~swigapp.participant.make_mask` (maps
thresholds within the registered template mask). Reports the mask's volume against the
true brain (the truth's brain mask, ml) and the Dice overlap. Writes
benchmarks/results/brainmask.md.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np

from benchmarks.quality import HELD_OUT_SEED, SETTINGS, VALIDATION_SEED, held_out_config
from swigapp.operators import grid
from swigapp.operators.interp import upsample_interp
from swigapp.participant import conform_maps, make_mask
from swigapp.phantom.individuals import SUBJECTS, split_subjects
from swigapp.phantom.subject import make_subject

SUFFIX = {"PD": "PDmap", "T1": "T1map", "T2": "T2map"}


def measure(name: str, index: int, setting: str, size: str, seed: int, work: Path) -> dict:
    """Mask volume, true brain volume (ml) and Dice of one individual's head phantom."""
    config = replace(held_out_config(size, SETTINGS[setting]), anatomy=name, head=True)
    subject = make_subject(index, seed=seed, config=config)
    work.mkdir(parents=True)
    files = {}
    for m, suffix in SUFFIX.items():
        files[m] = str(work / f"{suffix}.nii.gz")
        nib.save(nib.Nifti1Image(subject.lr_maps[m], subject.lr_affine), files[m])
    guide = work / "T1w.nii.gz"
    nib.save(nib.Nifti1Image(subject.guides["T1w"], subject.affine), guide)
    sidecar = {"T1": {"MRAcquisitionType": "2D"}} if subject.config.acquisition == "2d" else None
    conformed = conform_maps(files, SUFFIX, str(guide), work, map_metadata=sidecar)
    mask_file = make_mask(conformed["lr_file"], conformed["lr_up_file"], work,
                          lr_valid_file=conformed["lr_valid_file"])["mask_file"]  # fmt: skip
    mask_img = nib.load(mask_file)
    mask = np.asarray(mask_img.dataobj) > 0
    truth = subject.truth.brain_mask
    if truth.shape != mask.shape:  # the HR grid of the LR field of view: resample the truth
        truth = upsample_interp(truth.astype(np.float32), mask.shape, order=1) > 0.5
    voxel_ml = float(np.prod(grid.voxel_sizes(mask_img.affine))) / 1000.0
    return {
        "name": name,
        "mask_ml": float(mask.sum()) * voxel_ml,
        "truth_ml": float(truth.sum()) * voxel_ml,
        "dice": 2.0 * float((mask & truth).sum()) / float(mask.sum() + truth.sum()),
    }


def main() -> None:
    """Command line: measure every head of the chosen part and write the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("validation", "heldout"), default="heldout")
    p.add_argument("--setting", choices=list(SETTINGS), default="clinical-2d")
    p.add_argument("--size", choices=("slab", "full"), default="full")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/brainmask.md"))
    args = p.parse_args()
    seed = HELD_OUT_SEED if args.part == "heldout" else VALIDATION_SEED
    names = [n for n in split_subjects(args.part) if not n.startswith("synthsr")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, name in enumerate(names):
            row = measure(name, index, args.setting, args.size, seed, Path(tmp) / name)
            rows.append(row)
            print(
                f"{name}: mask {row['mask_ml']:.0f} ml, true brain {row['truth_ml']:.0f} ml "
                f"({row['mask_ml'] / row['truth_ml']:.3f}x), Dice {row['dice']:.3f}",
                flush=True,
            )
    lines = [
        f"# Brain mask on real heads ({args.part} individuals)",
        "",
        f"Command: `python -m benchmarks.brainmask --part {args.part} --setting {args.setting} "
        f"--size {args.size}` (phantom seed {seed}; sources: "
        f"{', '.join(sorted({SUBJECTS[r['name']][0].name for r in rows}))}).",
        "",
        "| individual | mask (ml) | true brain (ml) | ratio | Dice |",
        "|---|---|---|---|---|",
        *(
            f"| {r['name']} | {r['mask_ml']:.0f} | {r['truth_ml']:.0f} | "
            f"{r['mask_ml'] / r['truth_ml']:.3f} | {r['dice']:.3f} |"
            for r in rows
        ),
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
