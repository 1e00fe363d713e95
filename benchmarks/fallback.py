"""Regional fallback: do the data-consistency checks find the regions where SWIG harms?

    python -m benchmarks.fallback [--subjects 2] [--settings 2mm-iso "combined 2 mm iso" ...]

For validation phantoms (seed 3000: never the held-out 5000 or the shift benchmark's
7000), every brain region of :mod:`swigapp.consistency` (octants about the brain's centre)
is scored twice: by the checks the app can compute without truth (LR residual of the SR
maps and of the zero-filled input, the same residual after smoothing the difference by
one LR voxel, which averages noise out and keeps systematic departures, and each guide's
re-synthesis SSIM), and by its truth error (MAE and HFEN per map of SWIG and of the LR
input in the region: the HFEN's Laplacian of Gaussian is taken over the whole volume, its
norms over the region). A region is *harmed* where SWIG's MAE or HFEN is above the LR
input's for a map.

``--wrong-guides`` also runs each subject with the guides of another subject (other
anatomy, same protocols) in one octant, the right anterior superior: a local failure of
registration or a guide from the wrong session, where SWIG draws structure that is not
there. The table then says whether the checks see that region, and what falling back
there does to its error.

Writes benchmarks/results/fallback/fallback.{md,csv}.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage

from benchmarks.quality import GUIDES, HELD_OUT_SEED, SETTINGS, VALIDATION_SEED, eval_subjects
from benchmarks.shift import AXES, SHIFT_SEED
from benchmarks.validate import load_candidate
from swigapp import consistency as cons
from swigapp import metrics
from swigapp.models.features import MAP_ORDER, prepare_subject
from swigapp.models.inference import predict_ensemble

#: The octant whose guides ``--wrong-guides`` replaces.
WRONG_REGION = "right anterior superior"


def smoothed_diff(maps, lr, acquisition, sigma=1.0) -> np.ndarray:
    """D(maps) - LR, Gaussian-smoothed by ``sigma`` LR voxels (systematic departures only)."""
    diff = cons.forward(maps, acquisition) - np.asarray(lr, np.float64)
    return np.stack([ndimage.gaussian_filter(d, sigma) for d in diff])


def foreign_guides(
    prepared, other, mask, hr_affine, region: str | None = WRONG_REGION
) -> dict[str, np.ndarray]:
    """``prepared``'s guides with ``other``'s (scaled to the same median in the brain) in
    ``region``, with the fallback's smooth edge; everywhere when ``region`` is None."""
    keep = 0.0
    if region is not None:
        keep = cons.fallback_weight([region], mask.shape, hr_affine, mask)
    out = {}
    for g in GUIDES:
        own, theirs = prepared.registered[g], other.registered[g]
        scale = np.median(own[mask]) / max(float(np.median(theirs[mask])), 1e-6)
        out[g] = (keep * own + (1.0 - keep) * scale * theirs).astype(np.float32)
    return out


def region_rows(setting, subject, network, guides=None, scenario="as acquired") -> list[dict]:
    """One row per region: checks, truth errors of SWIG and of the interpolated LR maps (the
    fallback), SWIG after fallback."""
    prepared = subject.prepared
    tensors = prepared.tensors.with_guides(GUIDES)
    up, lr = tensors.lr_up.numpy(), tensors.lr.numpy()
    mask = tensors.mask.numpy().astype(bool)
    acq, hr_affine = prepared.acquisition, prepared.hr_affine
    registered = guides or {g: prepared.registered[g] for g in GUIDES}
    if guides is not None:
        lr_maps = dict(zip(MAP_ORDER, lr, strict=True))
        protocols = {g: subject.protocols[g] for g in GUIDES}
        tensors = prepare_subject(lr_maps, guides, protocols, mask, lr_up=up, acquisition=acq)
    sr, spread = predict_ensemble(network, tensors)
    protocols = {g: subject.protocols[g] for g in GUIDES}
    evidence = cons.Evidence(lr, acq, registered, protocols, mask, acq.lr_affine, hr_affine)
    after, checks, fallen = cons.guard(sr, up, evidence)  # the app's checks and fallback
    fell = [f["region"] for f in fallen]
    up = evidence.interpolated  # the scores' LR reference: the fallback
    centre = cons.brain_centre(mask, hr_affine)
    hr_labels = cons.octant_labels(mask.shape, hr_affine, centre)
    lr_labels = cons.octant_labels(lr.shape[1:], acq.lr_affine, centre)
    log = {
        key: [metrics._log(np.asarray(v[i], np.float64), 1.5) for i in range(3)]
        for key, v in (("swig", sr), ("lr", up), ("after", after))
    }
    log_truth = [metrics._log(np.asarray(subject.truth[m], np.float64), 1.5) for m in MAP_ORDER]
    lr64 = np.asarray(lr, np.float64)
    smooth_sr, smooth_up = smoothed_diff(sr, lr, acq), smoothed_diff(up, lr, acq)
    rows = []
    for label in range(8):
        name = cons.octant_name(label)
        if name not in checks:
            continue
        region = checks[name]
        inside = subject.mask & (hr_labels == label)
        row = {"setting": setting, "scenario": scenario, "subject": subject.name, "region": name}
        row["fraction"] = region["fraction_of_brain"]
        row["falls_back"] = name in fell
        row["fails"] = ",".join(cons.region_failures(region)) or "-"
        smooth = cons.relative_residual(smooth_sr, lr64, None, lr_labels == label)
        smooth_in = cons.relative_residual(smooth_up, lr64, None, lr_labels == label)
        for i, m in enumerate(MAP_ORDER):
            row[f"{m}_res"] = region["lr_residual"][m]
            row[f"{m}_res_input"] = region["lr_residual_input"][m]
            row[f"{m}_res_smooth"] = smooth[m]
            row[f"{m}_res_smooth_input"] = smooth_in[m]
            truth = subject.truth[m][inside]
            for key, vol in (("swig", sr), ("lr", up), ("after", after)):
                row[f"{m}_mae_{key}"] = float(np.mean(np.abs(vol[i][inside] - truth)))
                row[f"{m}_hfen_{key}"] = metrics._norm_ratio(
                    (log[key][i] - log_truth[i])[inside], log_truth[i][inside]
                )
            row[f"{m}_harm"] = (
                row[f"{m}_mae_swig"] > row[f"{m}_mae_lr"]
                or row[f"{m}_hfen_swig"] > row[f"{m}_hfen_lr"]
            )
        for g in GUIDES:
            row[f"{g}_ssim"] = region["guide_ssim"][g]
        for i, m in enumerate(MAP_ORDER):  # the uncertainty map's median, relative to the map
            rel = spread[i][inside] / np.maximum(sr[i][inside], 1e-6) if spread is not None else 0
            row[f"{m}_unc_rel"] = float(np.median(rel))
        rows.append(row)
    return rows


def harm_count(rows: list[dict], metric: str) -> int:
    """Regions where SWIG's ``metric`` (mae, hfen) is above the interpolated LR maps' for
    some map."""
    return sum(
        any(r[f"{m}_{metric}_swig"] > r[f"{m}_{metric}_lr"] for m in MAP_ORDER) for r in rows
    )


def read_rows(path: Path) -> list[dict]:
    """Rows of a fallback.csv with numbers and flags parsed."""
    out = []
    with path.open() as handle:
        for row in csv.DictReader(handle):
            parsed: dict = {}
            for key, value in row.items():
                if value in ("True", "False"):
                    parsed[key] = value == "True"
                else:
                    try:
                        parsed[key] = float(value)
                    except ValueError:
                        parsed[key] = value
            out.append(parsed)
    return out


def summary(rows: list[dict]) -> str:
    """Markdown: per (setting, scenario), harmed regions, firing of the gate, the checks'
    ranges in harmed and unharmed regions, and the error change where it fell back."""
    lines = [
        "| setting | scenario | regions | harmed (any map): MAE / HFEN | fail a check (warned) "
        "| fall back "
        "| harmed and fall back "
        "| max res (T1) unharmed / harmed | max smoothed res (T1) unharmed / harmed "
        "| min guide SSIM unharmed / harmed | max T1 uncertainty (relative) unharmed / harmed "
        "| MAE T1 ms SWIG / LR / after, fallen regions "
        "| T1 HFEN SWIG / LR / after, fallen regions |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    keys = dict.fromkeys((r["setting"], r["scenario"]) for r in rows)
    for setting, scenario in keys:
        here = [r for r in rows if r["setting"] == setting and r["scenario"] == scenario]
        harmed = [r for r in here if any(r[f"{m}_harm"] for m in MAP_ORDER)]
        fine = [r for r in here if r not in harmed]
        fell = [r for r in here if r["falls_back"]]

        def top(sub, key, fn=max):
            return f"{fn(r[key] for r in sub):.3f}" if sub else "-"

        def ssim_min(sub):
            return f"{min(min(r[f'{g}_ssim'] for g in GUIDES) for r in sub):.3f}" if sub else "-"

        mae = hf = "-"
        if fell:
            mae = " / ".join(
                f"{1000 * np.mean([r[f'T1_mae_{k}'] for r in fell]):.1f}"
                for k in ("swig", "lr", "after")
            )
            hf = " / ".join(
                f"{np.mean([r[f'T1_hfen_{k}'] for r in fell]):.3f}" for k in ("swig", "lr", "after")
            )
        lines.append(
            f"| {setting} | {scenario} | {len(here)} | {harm_count(here, 'mae')} / "
            f"{harm_count(here, 'hfen')} | "
            f"{sum(r['fails'] != '-' for r in here)} | {len(fell)} | "
            f"{sum(r['falls_back'] for r in harmed)} | {top(fine, 'T1_res')} / "
            f"{top(harmed, 'T1_res')} | {top(fine, 'T1_res_smooth')} / "
            f"{top(harmed, 'T1_res_smooth')} | {ssim_min(fine)} / {ssim_min(harmed)} "
            f"| {top(fine, 'T1_unc_rel')} / {top(harmed, 'T1_unc_rel')} | {mae} | {hf} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Score the regions and write the report."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--subjects", type=int, default=2)
    p.add_argument("--size", choices=("tiny", "slab", "full"), default="slab")
    p.add_argument("--settings", nargs="+", default=["2mm-iso", "1x1x4mm", "combined 2 mm iso"],
                   choices=list(SETTINGS | AXES), metavar="SETTING")  # fmt: skip
    p.add_argument("--phantom-seed", type=int, default=VALIDATION_SEED)
    p.add_argument("--model", default="swig_default")
    p.add_argument("--wrong-guides", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/fallback")
    p.add_argument("--summarise", type=Path, metavar="CSV", help="only print a CSV's table")
    args = p.parse_args()
    if args.summarise:
        print(summary(read_rows(args.summarise)))
        return
    if args.phantom_seed in (HELD_OUT_SEED, SHIFT_SEED):
        p.error(f"seed {args.phantom_seed} is a reported benchmark's: use a validation seed")
    network = load_candidate(args.model)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for setting in args.settings:
            subjects = list(
                eval_subjects(
                    (SETTINGS | AXES)[setting], args.subjects, args.size, args.phantom_seed,
                    args.seed, Path(tmp) / setting,
                )
            )  # fmt: skip
            for k, subject in enumerate(subjects):
                rows += region_rows(setting, subject, network)
                if args.wrong_guides and len(subjects) > 1:
                    other = subjects[(k + 1) % len(subjects)].prepared
                    mask = subject.prepared.tensors.mask.numpy().astype(bool)
                    guides = foreign_guides(
                        subject.prepared, other, mask, subject.prepared.hr_affine
                    )
                    rows += region_rows(setting, subject, network, guides, "wrong guides")
                print(summary([r for r in rows if r["setting"] == setting]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "fallback.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "fallback.md").write_text(
        f"Command: `python -m benchmarks.fallback --subjects {args.subjects} --size {args.size}"
        f" --settings {' '.join(repr(x) if ' ' in x else x for x in args.settings)}"
        f"{' --wrong-guides' if args.wrong_guides else ''}`; validation phantom seed "
        f"{args.phantom_seed}, model {args.model}. Region: an octant of the brain; harmed: "
        "SWIG's MAE or HFEN above the interpolated LR maps' (the fallback) for some map in "
        "the region.\n\n" + summary(rows) + "\n"
    )
    print(f"wrote {out}/fallback.md")


if __name__ == "__main__":
    main()
