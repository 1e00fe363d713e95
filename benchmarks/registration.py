"""Registration accuracy and time against the phantoms' known head motion, for each
registration setting (:data:`SETTINGS`) in one run.

    python -m benchmarks.registration [--subjects 3] [--size slab] [--seed 6000]
    python -m benchmarks.registration --maps PD,T1,T2 T1 PD,T2 --settings default

Writes phantom subjects (guides moved by a known rigid motion, up to 3 degrees and 3 mm),
runs the app's own steps (conform, brain mask, then ``participant.register`` per guide with
each setting: the last pyramid level on the full HR grid, as swigapp 0.2.0, or at the LR
maps' resolution, the default; one after the other on the same inputs; with ``--maps``, for
each subset of the LR maps given to conform, the others estimated as the app does) and
measures the
mean displacement error over the truth brain mask: voxel coordinate images moved by the
phantom's motion are resampled with the estimated ANTs transform, so at a brain point p
they read the point the registration mapped p to, which should be p itself. Writes
``benchmarks/results/registration.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

from swigapp.phantom.acquire import RigidMotion
from swigapp.phantom.bids import TRUTH_PIPELINE, write_dataset
from swigapp.phantom.subject import PhantomConfig
from swigapp.registration import RegistrationSettings

RESULTS = Path(__file__).parent / "results"
#: Setting name -> fields of ``registration.RegistrationSettings`` (sampling 0.1 in both).
SETTINGS = {
    "sampling 0.1, last level at full resolution (0.2.0)": {"full_resolution": True},
    "sampling 0.1, last level at the LR maps' resolution (default)": {},
}
DEFAULT_SETTING = "sampling 0.1, last level at the LR maps' resolution (default)"


def displacement_error_mm(
    transform_files: list[str],
    motion: RigidMotion,
    guide_path: Path,
    fixed_path: Path,
    brain: np.ndarray,
) -> float:
    """Mean |T_est(p) - T_true(p)| in mm over the brain voxels p of the fixed grid."""
    from swigapp.registration import import_ants, to_ants

    ants = import_ants()
    guide = nib.load(guide_path)
    fixed = nib.load(fixed_path)
    voxel = np.asarray(guide.header.get_zooms()[:3], float)
    grid = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in guide.shape[:3]], indexing="ij")
    fixed_img = to_ants(np.zeros(fixed.shape[:3], np.float32), fixed.affine)
    read = []
    # the phantom's motion resamples with zeros outside the field of view: a ones image
    # moved and warped the same way marks the points whose chain stayed inside it
    for image in [*grid, np.ones(guide.shape[:3], np.float32)]:
        moved = motion.apply(image, voxel, order=1)  # guide voxel -> its source voxel
        warped = ants.apply_transforms(
            fixed_img, to_ants(moved, guide.affine), transformlist=transform_files,
            interpolator="linear",
        )  # fmt: skip
        read.append(warped.numpy())
    inside = brain & (read[3] > 0.999)
    here = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in fixed.shape[:3]], indexing="ij")
    error = np.sqrt(sum(((read[a] - here[a]) * voxel[a]) ** 2 for a in range(3)))
    return float(error[inside].mean())


def run(
    subjects: int,
    size: str,
    seed: int,
    lr_factor: float,
    subsets: tuple[tuple[str, ...], ...] = (("PD", "T1", "T2"),),
    settings: tuple[str, ...] = tuple(SETTINGS),
    anatomy: tuple[str, ...] | None = None,
    head: bool = False,
) -> dict:
    from swigapp import participant
    from swigapp.physics.protocol import Protocol

    config = PhantomConfig(
        size=size, lr_factors=(lr_factor,), max_rotation_deg=3.0, max_translation_mm=3.0,
        anatomy=anatomy, head=head,
    )  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        bids = write_dataset(Path(tmp) / "bids", subjects, seed=seed, config=config)
        for sub in sorted(p.name for p in bids.glob("sub-*")):
            anat = bids / sub / "anat"
            truth = bids / "derivatives" / TRUTH_PIPELINE / sub / "anat"
            mask_json = json.loads((truth / f"{sub}_desc-brain_mask.json").read_text())
            brain = np.asarray(nib.load(truth / f"{sub}_desc-brain_mask.nii.gz").dataobj) > 0.5
            work = Path(tmp) / sub
            every = {m: str(anat / f"{sub}_acq-lowres_{m}map.nii.gz") for m in ("PD", "T1", "T2")}
            for subset in subsets:
                maps = {m: every[m] for m in subset}
                name = ",".join(subset)
                conform = participant.conform_maps(
                    maps, {m: f"{m}map" for m in maps}, str(anat / f"{sub}_T1w.nii.gz"),
                    work / name,
                )  # fmt: skip
                mask = participant.make_mask(conform["lr_file"], conform["lr_up_file"], work / name)
                for guide in ("T1w", "T2w"):
                    sidecar = json.loads((anat / f"{sub}_{guide}.json").read_text())
                    protocol = Protocol.from_sidecar(sidecar, source=guide).as_dict()
                    motion = RigidMotion(**mask_json["GuideMotion"][guide])
                    for k, setting in enumerate(settings):
                        out = work / name / f"{guide}_{k}"
                        result = participant.register(
                            conform["lr_up_file"], mask["mask_file"],
                            str(anat / f"{sub}_{guide}.nii.gz"), protocol, guide, out,
                            RegistrationSettings(sampling=0.1, **SETTINGS[setting]),
                            lr_file=conform["lr_file"],
                        )  # fmt: skip
                        error = displacement_error_mm(
                            result["transform_files"], motion, anat / f"{sub}_{guide}.nii.gz",
                            Path(result["fixed_file"]), brain,
                        )  # fmt: skip
                        rows.append({
                            "subject": sub, "guide": guide, "setting": setting, "maps": name,
                            "error_mm": error, "seconds": result["seconds"],
                            "motion_deg": max(abs(v) for v in motion.rotation_deg),
                            "motion_mm": max(abs(v) for v in motion.translation_mm),
                        })  # fmt: skip
                        print(rows[-1], flush=True)
    return {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--size", default="slab", choices=("tiny", "slab", "full"))
    parser.add_argument("--seed", type=int, default=6000)
    parser.add_argument("--lr-factor", type=float, default=2.0)
    parser.add_argument(
        "--maps", nargs="+", default=["PD,T1,T2"], help="subsets of the LR maps given to the "
        "app, each comma-separated (the others are estimated, as the app does)",
    )  # fmt: skip
    parser.add_argument("--settings", choices=("all", "default"), default="all")
    parser.add_argument("--anatomy", choices=("template", "validation", "heldout"),
                        default="template", help="the phantoms' anatomy (individuals: the "
                        "first --subjects of that part of the split)")  # fmt: skip
    parser.add_argument("--head", action="store_true", help="heads with skull, scalp, eyes")
    args = parser.parse_args()
    subsets = tuple(tuple(m for m in ("PD", "T1", "T2") if m in s.split(",")) for s in args.maps)
    settings = tuple(SETTINGS) if args.settings == "all" else (DEFAULT_SETTING,)
    from benchmarks.quality import anatomies

    people = anatomies(args.anatomy, args.subjects)
    rows = run(args.subjects, args.size, args.seed, args.lr_factor, subsets, settings, people,
               args.head)["rows"]  # fmt: skip
    lines = [
        "# Registration: accuracy against the phantoms' known motion, and time",
        "",
        f"Command: `python -m benchmarks.registration --subjects {args.subjects} --size "
        f"{args.size} --seed {args.seed} --lr-factor {args.lr_factor:g} --maps "
        f"{' '.join(args.maps)} --settings {args.settings} --anatomy {args.anatomy}"
        + " --head"
        * args.head
        + "`; machine: "
        f"{platform.machine()}, ITK single-threaded (the app's reproducible setting). Head "
        "motion up to 3 degrees and 3 mm per axis between maps and each guide.",
        "",
        "| maps given | setting | mean displacement error (mm), median [min, max] | "
        "seconds per guide, median [min, max] |",
        "|---|---|---|---|",
    ]
    for subset in dict.fromkeys(r["maps"] for r in rows):
        for setting in settings:
            sel = [r for r in rows if r["setting"] == setting and r["maps"] == subset]
            err = [r["error_mm"] for r in sel]
            sec = [r["seconds"] for r in sel]
            lines.append(
                f"| {subset} | {setting} | {statistics.median(err):.3f} "
                f"[{min(err):.3f}, {max(err):.3f}] | {statistics.median(sec):.1f} "
                f"[{min(sec):.1f}, {max(sec):.1f}] |"
            )
    lines += ["", "| subject | guide | maps | setting | error (mm) | seconds |"]
    lines += ["|---|---|---|---|---|---|"]
    lines += [
        f"| {r['subject']} | {r['guide']} | {r['maps']} | {r['setting']} | "
        f"{r['error_mm']:.3f} | {r['seconds']:.1f} |"
        for r in rows
    ]
    RESULTS.mkdir(exist_ok=True)
    name = "registration.md" if args.maps == ["PD,T1,T2"] else "registration_subsets.md"
    if args.anatomy != "template" or args.head:
        name = f"registration_{args.anatomy}{'_head' * args.head}.md"
    (RESULTS / name).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
