"""Low-frequency data consistency: what putting the maps' smoothed LR residual back
(:func:`low_frequency_consistency`) costs or gains on phantoms.

    python -m benchmarks.low_frequency [--anatomy template validation] [--subjects 2]
        [--size slab] [--settings 2mm-iso 1x1x4mm clinical-2d] [--phantom-seed 3000]

For each subject the maps are taken as the app writes them (head mask, regional guard and
local fallback, :func:`swigapp.consistency.guard`), then corrected. Per map: the GM and
WM MAE against the truth (T1, T2 in ms; PD x 1000), the error of regional means (8 mm
cubes) and the SSIM over the brain, before and after, and the LR residual's size at the
correction's scale. Validation phantoms
(seed 3000) decide whether the app applies it; ``--phantom-seed 5000 --anatomy template
heldout`` reports it on held-out phantoms after that. Writes
benchmarks/results/low_frequency[_seed5000].{md,csv}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage

from benchmarks.local_fallback import phantom_arguments, phantom_subjects, predicted, write_csv
from benchmarks.quality import VALIDATION_SEED
from benchmarks.validate import load_candidate
from swigapp import consistency as cons
from swigapp import metrics
from swigapp.maps import MAP_ORDER

RESULTS = Path(__file__).parent / "results"
#: The corrections compared: options of :func:`low_frequency_consistency`.
VARIANTS = {"plain": {}, "significant 3 SD": {"significance": 3.0}}


def low_frequency_residual(
    maps_hr: np.ndarray,
    evidence: cons.Evidence,
    checked: np.ndarray,
    sigma: float = cons.LOCAL_SIGMA_LR,
    significance: float | None = None,
) -> np.ndarray:
    """Per map and LR voxel (3, x, y, z): the LR residual y - D(maps) averaged by a Gaussian
    of ``sigma`` LR voxels over the ``checked`` LR voxels (x, y, z) that are data (a
    normalised convolution: the average of the checked neighbours), 0 where under a third
    of the Gaussian's weight is checked. With ``significance`` k, shrunk towards 0 by k
    standard deviations of that average's noise (soft threshold): the LR map's noise is the
    robust spread (MAD) of the residual about its average, white and independent per LR
    voxel."""
    lr = np.asarray(evidence.lr, np.float64)
    diff = lr - cons.forward(maps_hr, evidence.acquisition)
    out = np.zeros_like(lr)
    # sum of the squared Gaussian weights = the Gaussian of sigma / sqrt(2), times this
    squared = float(np.prod([1.0 / (2.0 * np.sqrt(np.pi) * sigma) for n in lr.shape[1:] if n > 1]))
    for i in range(len(lr)):
        keep = checked if evidence.valid is None else checked & evidence.valid[i]
        num = ndimage.gaussian_filter(np.where(keep, diff[i], 0.0), sigma)
        den = ndimage.gaussian_filter(keep.astype(np.float64), sigma)
        usable = den > 1.0 / 3.0
        mean = np.where(usable, num / np.maximum(den, 1e-12), 0.0)
        if significance is not None and usable.any():
            fine = (diff[i] - mean)[keep & usable]
            noise = 1.4826 * float(np.median(np.abs(fine - np.median(fine))))
            weight2 = squared * ndimage.gaussian_filter(keep.astype(np.float64), sigma / np.sqrt(2))
            sd = noise * np.sqrt(weight2) / np.maximum(den, 1e-12)
            mean = np.sign(mean) * np.maximum(np.abs(mean) - significance * sd, 0.0)
        out[i] = mean
    return out


def low_frequency_consistency(
    maps: np.ndarray,
    evidence: cons.Evidence,
    checked: np.ndarray | None = None,
    sigma: float = cons.LOCAL_SIGMA_LR,
    significance: float | None = None,
) -> np.ndarray:
    """``maps`` (3, X, Y, Z) with their LR residual at the scale of ``sigma`` LR voxels put
    back (:func:`low_frequency_residual` by the acquisition's interpolation): the maps keep
    their detail, and the acquired LR maps set their local means, where noise averages out.
    Over the ``checked`` LR voxels (x, y, z; None: those the local check covers without a
    head, :func:`swigapp.consistency.checked_lr`), for the acquired maps only (an estimate
    is not data); clipped at 0."""
    checked = cons.checked_lr(evidence) if checked is None else checked
    residual = low_frequency_residual(maps, evidence, checked, sigma, significance)
    acquired = [i for i in range(len(maps)) if evidence.valid is None or evidence.valid[i].any()]
    out = np.array(maps, np.float32, copy=True)
    if acquired:
        correction = evidence.acquisition.interpolate(residual[acquired])
        out[acquired] = np.clip(out[acquired] + correction, 0.0, None)
    return out


def subject_rows(setting: str, anatomy: str, subject, network) -> list[dict]:
    """One row per map: GM/WM MAE and brain SSIM before and after the correction."""
    from swigapp.participant import head_mask

    sr, up, evidence = predicted(subject, network)
    head = head_mask(evidence, evidence.mask.shape)
    sr = np.where(head, sr, np.float32(0.0))
    guarded, _, _ = cons.guard(sr, up, evidence, head=head)
    before = np.where(head, guarded, np.float32(0.0))
    checked = cons.checked_lr(evidence, head)
    residual = low_frequency_residual(before, evidence, checked)
    brain_lr = cons.lr_footprint(evidence)
    rows = []
    for variant, options in VARIANTS.items():
        after = low_frequency_consistency(before, evidence, checked, **options)
        after = np.where(head, after, np.float32(0.0))
        rows += map_rows(setting, anatomy, subject, variant, evidence.lr, before, after,
                         residual, brain_lr)  # fmt: skip
    return rows


def map_rows(setting, anatomy, subject, variant, lr, before, after, residual, brain_lr):
    """Per map: the residual's size and GM/WM MAE and SSIM before and after."""
    truth_mask = subject.mask
    rows = []
    for i, m in enumerate(MAP_ORDER):
        truth = subject.truth[m]
        row = {"setting": setting, "anatomy": anatomy, "subject": subject.name, "map": m,
               "variant": variant}  # fmt: skip
        lr_scale = np.abs(np.asarray(lr[i], np.float64))[brain_lr]
        row["residual_p50_pct"] = float(
            100 * np.median(np.abs(residual[i][brain_lr]) / np.maximum(lr_scale, 1e-12))
        )
        for tag, maps in (("before", before), ("after", after)):
            for tissue in ("GM", "WM"):
                where = subject.tissues[tissue] & truth_mask
                row[f"{tissue}_mae_{tag}"] = float(np.mean(np.abs(maps[i][where] - truth[where])))
                row[f"{tissue}_roi_{tag}"] = roi_mean_error(maps[i], truth, where)
            row[f"ssim_{tag}"] = metrics.ssim(
                maps[i], truth, metrics.DATA_RANGE[m], mask=truth_mask
            )
        rows.append(row)
    return rows


#: Side of the cubic ROIs of :func:`roi_mean_error` (HR voxels, 1 mm) and the fewest voxels
#: of the tissue an ROI must hold.
ROI_SIDE, ROI_MIN_VOXELS = 8, 50


def roi_mean_error(maps: np.ndarray, truth: np.ndarray, where: np.ndarray) -> float:
    """Median over cubic ROIs (:data:`ROI_SIDE`, holding at least :data:`ROI_MIN_VOXELS` of
    ``where``) of |mean of ``maps`` - mean of ``truth``| over ``where`` in the ROI: the error
    of regional means, as an ROI analysis (or the NIST spheres) reads them."""
    blocks = tuple(np.arange(n) // ROI_SIDE for n in where.shape)
    label = np.ravel_multi_index(np.meshgrid(*blocks, indexing="ij"),
                                 tuple(int(b.max()) + 1 for b in blocks))  # fmt: skip
    ids = label[where]
    count = np.bincount(ids)
    diff = np.bincount(ids, weights=(maps[where] - truth[where]).astype(np.float64))
    keep = count >= ROI_MIN_VOXELS
    return float(np.median(np.abs(diff[keep] / count[keep]))) if keep.any() else float("nan")


def table(rows: list[dict], args: argparse.Namespace) -> str:
    """The markdown report: means over subjects, worst subject's change."""
    held = args.phantom_seed != VALIDATION_SEED
    lines = [
        f"# Low-frequency data consistency on {'held-out' if held else 'validation'} phantoms",
        "",
        f"Command: `python -m benchmarks.low_frequency --anatomy {' '.join(args.anatomy)} "
        f"--subjects {args.subjects} --size {args.size} --settings {' '.join(args.settings)}"
        + (f" --phantom-seed {args.phantom_seed}" if held else "")
        + f"`; model {args.model}; machine: {platform.machine()}, 2 cores. Phantoms of seed "
        f"{args.phantom_seed}. The maps as the app writes them (head, regional and local "
        "guard) before -> after the correction: GM and WM MAE against the truth (T1, T2 ms; "
        "PD x 1000) and SSIM over the brain, means over subjects; worst: the largest "
        "relative GM MAE change of a subject; residual: median |smoothed LR residual| / |LR| "
        "over the brain's LR voxels before the correction (%); ROI mean error: median over "
        f"{ROI_SIDE} mm cubes holding at least {ROI_MIN_VOXELS} voxels of the tissue of "
        "|mean - true mean| there (regional means, as an ROI analysis reads them).",
        "",
        "| setting | anatomy | map | variant | residual % | GM MAE | WM MAE | SSIM | GM worst % "
        "| GM ROI mean error | WM ROI mean error |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for setting in args.settings:
        for anatomy in args.anatomy:
            for m, variant in itertools.product(MAP_ORDER, VARIANTS):
                sel = [r for r in rows if (r["setting"], r["anatomy"], r["map"], r["variant"])
                       == (setting, anatomy, m, variant)]  # fmt: skip
                if not sel:
                    continue
                scale = 1000.0  # T1, T2: s -> ms; PD: x 1000

                def pair(key: str, factor: float = 1.0, digits: int = 1) -> str:
                    a = factor * np.mean([r[f"{key}_before"] for r in sel])  # noqa: B023
                    b = factor * np.mean([r[f"{key}_after"] for r in sel])  # noqa: B023
                    return f"{a:.{digits}f} -> {b:.{digits}f}"

                worst = max(100 * (r["GM_mae_after"] / r["GM_mae_before"] - 1) for r in sel)
                res = np.mean([r["residual_p50_pct"] for r in sel])
                lines.append(
                    f"| {setting} | {anatomy} | {m} | {variant} | {res:.2f} | "
                    f"{pair('GM_mae', scale)} | "
                    f"{pair('WM_mae', scale)} | {pair('ssim', digits=4)} | {worst:+.2f} | "
                    f"{pair('GM_roi', scale, 2)} | {pair('WM_roi', scale, 2)} |"
                )
    return "\n".join(lines) + "\n"


def real_rows(keep: Path, data: Path, cases: list[str], seed: int = 0) -> list[dict]:
    """The real acquisitions kept by ``python -m benchmarks.real --keep KEEP``: the app's
    guard rerun on its kept prediction (the maps it wrote), then the plain correction; each
    scored as benchmarks.real scores them (:func:`benchmarks.real.score_case`)."""
    from nipype.utils.filemanip import loadpkl

    from benchmarks import real
    from swigapp import participant as part
    from swigapp.operators.grid import voxel_sizes
    from swigapp.results import Predicted

    rows = []
    for name in cases:
        case = real.LOADERS[name](data / real.FOLDERS[name])
        work = keep / name
        inputs = loadpkl(next((work / "work").rglob("guard_maps/_inputs.pklz")))
        pred = Predicted.from_record(inputs["prediction"])
        registrations = inputs["registrations"]
        guides = {r["name"]: r["registered_file"] for r in registrations}
        ran_on = part.LRInputs(pred.lr_file, pred.lr_up_file, pred.acquisition,
                               pred.lr_valid_file)  # fmt: skip
        subject, evidence, up = part.load_inputs(
            ran_on, inputs["mask_file"], guides, inputs["protocols"]
        )
        prediction = part.Prediction(
            pred.method, part.load_maps(pred.maps_file).data, None, dict(pred.record),
            dict(pred.adaptation), subject, evidence, up, dict(pred.residual_input),
        )  # fmt: skip
        request = part.MethodSettings().request(voxel_sizes(evidence.hr_affine))
        coverages = [part.load_image(r["coverage_file"])[0] for r in registrations]
        kept = part.guard_prediction(prediction, request, coverages)
        head = part.head_mask(evidence, kept.maps.shape[1:])
        checked = cons.checked_lr(evidence, head)
        corrected = np.where(head, low_frequency_consistency(kept.maps, evidence, checked), 0.0)
        qc = work / "out" / f"sub-{name}" / "log" / f"sub-{name}_qc.json"
        pd_scale = float(json.loads(qc.read_text())["PDScaleFactor"])
        for variant, maps in (("as written", kept.maps), ("plain", corrected)):
            units = {"PD": maps[0] / pd_scale, "T1": maps[1], "T2": maps[2]}
            scored = real.score_case(
                case, work, seed, {m: units[m] for m in real.SCORED[case.kind]}
            )
            judged = [x for x in scored["spheres"] if x["judged"]]
            rows.append({"case": name, "variant": variant, "SR": scored["SR"],
                         "cubic": scored["cubic"], "floor": scored["floor"],
                         "spheres": sum(x["passes"] for x in judged),
                         "cubic spheres": sum(x["cubic passes"] for x in judged),
                         "judged": len(judged)})  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def real_table(rows: list[dict]) -> str:
    """The markdown report of :func:`real_rows`."""
    lines = [
        "# Low-frequency data consistency on the real acquisitions",
        "",
        "Command: `python -m benchmarks.low_frequency --real KEEP` after "
        f"`python -m benchmarks.real --keep KEEP`; machine: {platform.machine()}, 2 cores. "
        "As benchmarks/results/real.md scores them: SSIM over the brain and GM MAE (ms; the "
        "phantom: its spheres) against the full-resolution fit, and the NIST spheres that "
        "pass (SR within the LR fit's own error of NIST's value); as written -> with the "
        "plain correction (cubic spline of the LR fit).",
        "",
        "| case | map | SSIM | GM MAE ms | judged spheres that pass |",
        "|---|---|---|---|---|",
    ]
    for case in dict.fromkeys(r["case"] for r in rows):
        before, after = (next(r for r in rows if (r["case"], r["variant"]) == (case, v))
                         for v in ("as written", "plain"))  # fmt: skip
        for key in before["SR"]:
            if not key.endswith("SSIM"):
                continue
            m = key.split()[0]
            mae = f"GM {m} MAE ms"
            cell = (f"{before['SR'][mae]:.1f} -> {after['SR'][mae]:.1f} "
                    f"({before['cubic'][mae]:.1f})" if mae in before["SR"] else "-")  # fmt: skip
            spheres = "-"
            if before["judged"] and m != "PD":
                spheres = (f"{before['spheres']} -> {after['spheres']} of {before['judged']} "
                           f"({before['cubic spheres']})")  # fmt: skip
            lines.append(
                f"| {case} | {m} | {before['SR'][key]:.4f} -> {after['SR'][key]:.4f} "
                f"({before['cubic'][key]:.4f}) | {cell} | {spheres} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Score the phantoms and write the report."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    phantom_arguments(p, "the choice is made at the default, 3000")
    p.add_argument("--real", type=Path, metavar="KEEP",
                   help="score the real acquisitions kept here by benchmarks.real --keep "
                   "instead of phantoms")  # fmt: skip
    p.add_argument("--data", type=Path, default=None,
                   help="benchmarks.real's extracted sources (default: its default)")  # fmt: skip
    p.add_argument("--cases", nargs="+", default=["mese", "irt1", "nistir", "nistmese",
                                                   "nistvfa"])  # fmt: skip
    args = p.parse_args()
    if args.real:
        from benchmarks.real import DEFAULT_DATA

        rows = real_rows(args.real, args.data or DEFAULT_DATA, args.cases)
        text = real_table(rows)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "low_frequency_real.md").write_text(text)
        print(text)
        return
    tag = "" if args.phantom_seed == VALIDATION_SEED else f"_seed{args.phantom_seed}"
    network = load_candidate(args.model)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for setting, anatomy, subject in phantom_subjects(args, Path(tmp)):
            rows += subject_rows(setting, anatomy, subject, network)
            print(rows[-3 * len(VARIANTS) :], flush=True)
    write_csv(RESULTS / f"low_frequency{tag}.csv", rows)
    text = table(rows, args)
    (RESULTS / f"low_frequency{tag}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
