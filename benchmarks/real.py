"""Real acquisitions: the in-vivo MESE and IR slices and the NIST phantom's IR and MESE
through ``swigapp ... participant`` from their raw series, scored against the fit of the
full-resolution series (and, for the phantom, against NIST's sphere values).

    python -m benchmarks.real [--data DIR] [--mirror-root DIR] [--cases mese irt1 nistir nistmese]

The phantom's DICOM needs pydicom (``pip install -e .[benchmarks]``); its source and
handling: :mod:`benchmarks.nist`.

Sources (``../shared/REALDATA.md``; no licence file, so evaluation only and never committed):
``samuellestonge/qMRI-MOOC_T2-module`` (one axial slice, 30-echo spin echo, 0.69 mm
in-plane, 7.5 mm slice) and ``mathieuboudreau/Gold-Standard-Inversion-Recovery-T1-Mapping``
(one slice, 128x128, inversion recovery at 9 TIs). ``--mirror-root`` extracts them from the
stored copies (``fetch``) into ``--data``; without them the benchmark says so and stops.

Each case is turned into what a site would hold: the raw series at a lower in-plane
resolution (k-space truncation of each magnitude image by ``factor``; the slice is kept) and
full-resolution images as guides. The app runs on it as a user would (it fits the series
itself, estimates the maps not acquired, super-resolves, guards). The reference is the
app's own fit of the full-resolution series. The baseline is the cubic spline of the app's
LR fit. Each score sits beside the reference's noise floor: the score of a refit of the
full-resolution series with noise of the fit residual's level added (a perfect method
scores about this well against a noisy reference).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import nibabel as nib
import numpy as np

from benchmarks import nist
from benchmarks.subsets import run_app
from swigapp import metrics, tissue
from swigapp.io.files import save_nifti, write_json
from swigapp.operators.grid import lr_affine, lr_shape, voxel_sizes
from swigapp.operators.interp import upsample_interp
from swigapp.operators.kspace import downsample
from swigapp.physics.protocol import Protocol

RESULTS = Path(__file__).parent / "results"
DEFAULT_DATA = Path.home() / ".cache" / "swigapp" / "realdata"
SOURCES = {
    "mese": ("samuellestonge/qMRI-MOOC_T2-module", {
        "SEdata.nii.gz": "example_data/mono_t2_demo/mono_t2_data/SEdata.nii.gz",
        "Mask.nii.gz": "example_data/mono_t2_demo/mono_t2_data/Mask.nii.gz",
    }),
    "irt1": ("mathieuboudreau/Gold-Standard-Inversion-Recovery-T1-Mapping", {
        "IRData.mat": "data/IRData.mat",
        "Mask.mat": "data/Mask.mat",
        "BarralFit.mat": "fitdata/T1FitRD-NLS-PR_IRData.mat",
    }),
    "nist": (nist.REPO, dict.fromkeys(nist.FILES)),
}  # fmt: skip
#: Map names of the app's outputs per fitted quantity, and the SSIM range of each (s or a.u.).
SCORED = {"MESE": ("T2", "PD"), "IRT1": ("T1", "PD"), "VFA": ("T1", "PD")}
#: Each series' varying sidecar field and BIDS entity.
SERIES_FIELD = {"MESE": ("EchoTime", "echo"), "IRT1": ("InversionTime", "inv"),
                "VFA": ("FlipAngle", "flip")}  # fmt: skip
SUFFIX = {"T1": "T1map", "T2": "T2map", "PD": "PDmap"}
FIT_SUFFIX = {"T1": "T1map", "T2": "T2map", "PD": "M0map"}
#: Initial k-means centres (s) for the GM label of a T2-only reference (WM, GM, CSF).
T2_CENTRES_S = (0.07, 0.095, 0.8)


@dataclass
class RealCase:
    """One real acquisition as a site would hold it, before the lower-resolution copy.

    ``images``: (X, Y, 1, N) magnitudes; ``values``: EchoTime or InversionTime (s) of each;
    ``guides``: guide suffix -> (image (X, Y, 1) on the series' grid, the protocol it was
    acquired with); ``held_out``: images left out of the series (a guide that is not part of
    the fit); ``assumed``: the acquisition facts not in the source, for the record;
    ``region``: where MAE is scored instead of the reference's k-means GM, named
    ``region_name``; ``spheres``: a phantom's reference per sphere, name -> (NIST record,
    ROI centre in mm).
    """

    name: str
    kind: str
    images: np.ndarray
    values: list[float]
    affine: np.ndarray
    mask: np.ndarray
    common: dict
    guides: dict[str, tuple[np.ndarray, Protocol]]
    factor: int
    held_out: tuple[int, ...] = ()
    assumed: list[str] = field(default_factory=list)
    region: np.ndarray | None = None
    region_name: str = "GM"
    spheres: dict[str, tuple[dict, np.ndarray]] = field(default_factory=dict)

    @property
    def series_index(self) -> list[int]:
        """The images of the raw series (all but the held-out ones)."""
        return [k for k in range(len(self.values)) if k not in self.held_out]


def extract(mirror_root: Path, data: Path, cases: list[str]) -> None:
    """Copy the source files of ``cases`` out of the stored copies (bare git) under
    ``mirror_root``; the phantom's DICOM series become NIfTI (:func:`benchmarks.nist.extract`)."""
    for case in dict.fromkeys(FOLDERS[c] for c in cases):
        repo, files = SOURCES[case]
        git_dir = mirror_root / repo.replace("/", "+") / "repo"
        if not git_dir.is_dir():
            raise SystemExit(f"{git_dir}: no stored copy of {repo} (fetch it first)")
        if case == "nist":
            nist.extract(git_dir, data / case)
            continue
        (data / case).mkdir(parents=True, exist_ok=True)
        for name, inside in files.items():
            blob = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"HEAD:{inside}"],
                                  capture_output=True, check=True).stdout  # fmt: skip
            (data / case / name).write_bytes(blob)


def load_mese(folder: Path) -> RealCase:
    """The qMRI-MOOC multi-echo spin-echo slice (TE 12.8 ms x 1..30)."""
    img = nib.load(folder / "SEdata.nii.gz")
    images = np.asarray(img.dataobj, dtype=np.float64)
    mask = np.asarray(nib.load(folder / "Mask.nii.gz").dataobj) > 0
    tr = 3.0
    guides = {
        "PDw": (images[..., 0], Protocol("SE", tr=tr, te=0.0128, source="echo 1")),
        "T2w": (images[..., 7], Protocol("SE", tr=tr, te=0.1024, source="echo 8")),
    }
    common = {"RepetitionTime": tr, "FlipAngle": 90, "RefocusingFlipAngle": 180}
    assumed = [
        "RepetitionTime 3 s (not in the source; it sets only the T1 weighting of the "
        "synthesised guides)",
        "the guides (echoes 1 and 8) stay in the series, since the EPG fit needs the whole "
        "train: their noise is shared with the reference",
    ]
    values = [0.0128 * (k + 1) for k in range(images.shape[-1])]
    return RealCase("mese", "MESE", images, values, img.affine, mask[..., None], common,
                    guides, factor=3, assumed=assumed)  # fmt: skip


def load_irt1(folder: Path) -> RealCase:
    """The Barral in-vivo inversion-recovery slice (TI 350-1700 ms)."""
    from scipy.io import loadmat

    images = np.asarray(loadmat(folder / "IRData.mat")["data"], dtype=np.float64)
    mask = np.asarray(loadmat(folder / "Mask.mat")["Mask"]) > 0
    voxel = (2.0, 2.0, 5.0)
    tis = [0.35, 0.5, 0.65, 0.8, 0.95, 1.1, 1.25, 1.4, 1.7]
    tr, te = 2.55, 0.014
    last = len(tis) - 1
    guides = {
        "T1w": (images[..., last], Protocol("IR", tr=tr, te=te, ti=tis[last], source="TI 1700 ms"))
    }
    assumed = [
        "voxel 2x2x5 mm (the source has no geometry; the brain spans 66x84 voxels)",
        "RepetitionTime 2.55 s and EchoTime 14 ms (Barral et al. 2010's protocol; TR sets "
        "only M0 and the inversion efficiency, not T1)",
        "the guide (TI 1700 ms, WM > GM > CSF) is left out of the series and of the reference",
    ]
    common = {"RepetitionTime": tr, "EchoTime": te, "FlipAngle": 90}
    return RealCase("irt1", "IRT1", images, tis, np.diag([*voxel, 1.0]), mask[..., None],
                    common, guides, factor=2, held_out=(last,), assumed=assumed)  # fmt: skip


LOADERS = {"mese": load_mese, "irt1": load_irt1, "nistir": nist.load_ir,
           "nistmese": nist.load_mese, "nistvfa": nist.load_vfa}  # fmt: skip
#: The folder under ``--data`` that holds each case's extracted files.
FOLDERS = {"mese": "mese", "irt1": "irt1", "nistir": "nist", "nistmese": "nist",
           "nistvfa": "nist"}  # fmt: skip


def write_series(root: Path, case: RealCase, factor: int) -> Path:
    """A BIDS dataset with the case's series at ``1/factor`` of its in-plane resolution and,
    when ``factor`` is 1, nothing else; otherwise also the guides at full resolution."""
    sub = f"sub-{case.name}"
    anat = root / sub / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    write_json(root / "dataset_description.json",
               {"Name": f"swigapp real case {case.name}", "BIDSVersion": "1.10.0"})  # fmt: skip
    hr_shape = case.images.shape[:3]
    shape = lr_shape(hr_shape, (factor, factor, 1))
    affine = lr_affine(case.affine, hr_shape, shape)
    parameter, entity = SERIES_FIELD[case.kind]
    dims = "2D" if case.images.shape[2] == 1 else "3D"
    voxel = voxel_sizes(affine)
    clipped, top = ceiling(case.images)
    for n, k in enumerate(case.series_index, start=1):
        image = case.images[..., k]
        lr = np.abs(downsample(image, shape)) if factor > 1 else image
        if factor > 1 and top is not None:  # an LR voxel over clipped samples is unknown too
            blocks = clipped[: shape[0] * factor, : shape[1] * factor, :, k]
            unknown = blocks.reshape(shape[0], factor, shape[1], factor, -1).any(axis=(1, 3))
            lr = np.where(unknown, top, np.minimum(lr, top))
        stem = anat / f"{sub}_acq-{'lowres' if factor > 1 else 'full'}_{entity}-{n}_{case.kind}"
        save_nifti(stem.with_suffix(".nii.gz"), lr.astype(np.float32), affine)
        write_json(stem.with_suffix(".json"), {
            **case.common, parameter: case.values[k], "MRAcquisitionType": dims,
            "SliceThickness": voxel[2],
        })  # fmt: skip
    if factor > 1:
        for suffix, (image, protocol) in case.guides.items():
            save_nifti(anat / f"{sub}_{suffix}.nii.gz", image, case.affine)
            sidecar = {**protocol.to_sidecar(), "EchoTime": protocol.te}
            write_json(anat / f"{sub}_{suffix}.json", sidecar | {"MRAcquisitionType": dims})
    return root


def fit_reference(
    case: RealCase, images: np.ndarray | None = None, held_out: tuple[int, ...] | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The app's fit of the full-resolution series (``images``: another copy of them, e.g.
    with noise added; ``held_out``: other images to leave out): {"T1" or "T2" (s), "PD"
    (series units)}, NaN without signal, and the fit's RMS residual per voxel."""
    from bids import BIDSLayout

    from swigapp.io.raw_qmri import find_series, run_fit

    copy = replace(
        case,
        images=case.images if images is None else images,
        held_out=case.held_out if held_out is None else held_out,
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = write_series(Path(tmp), copy, factor=1)
        layout = BIDSLayout(root, validate=False)
        series = find_series(layout, {"subject": case.name, "datatype": "anat"}, case.name)
        fit, _, _ = run_fit(series[case.kind])
    maps = {m: fit.maps["M0" if m == "PD" else m] for m in SCORED[case.kind]}
    return maps, fit.residual


def noise_sigma(case: RealCase, residual: np.ndarray) -> float:
    """Gaussian noise SD of the magnitudes: the median RMS fit residual over the brain,
    corrected for the 3 fitted parameters (model misfit counts as noise: conservative)."""
    n = len(case.series_index)
    rms = residual[case.mask & np.isfinite(residual)]
    return float(np.median(rms) * np.sqrt(n / (n - 3)))


def source_fit_check(case: RealCase, folder: Path) -> str:
    """The app's IRT1 fit of all 9 TIs against the source's own fit (Barral's RD-NLS-PR)."""
    from scipy.io import loadmat

    theirs = np.asarray(loadmat(folder / "BarralFit.mat")["ll_T1"])[:, :, 0, 0] / 1000.0
    ours = fit_reference(case, held_out=())[0]["T1"][..., 0]
    ok = case.mask[..., 0] & np.isfinite(ours) & (theirs > 0)
    rel = np.abs(ours[ok] - theirs[ok]) / theirs[ok]
    return (
        f"the app's fit of all 9 TIs against the source's own fit (Barral's RD-NLS-PR), "
        f"{ok.sum()} brain voxels: median |T1 difference| {100 * np.median(rel):.2f} %, "
        f"90th percentile {100 * np.percentile(rel, 90):.2f} %"
    )


def with_noise(images: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Magnitudes with complex Gaussian noise of SD ``sigma`` added (Rician); clipped
    samples (:func:`ceiling`) stay at the ceiling, and none rises above it."""
    rng = np.random.default_rng(seed)
    noisy = np.abs(images + sigma * (rng.standard_normal(images.shape)
                                     + 1j * rng.standard_normal(images.shape)))  # fmt: skip
    clipped, top = ceiling(images)
    return noisy if top is None else np.where(clipped, top, np.minimum(noisy, top))


def ceiling(images: np.ndarray) -> tuple[np.ndarray, float | None]:
    """The samples of a series at the scanner's ceiling (clipped magnitudes; the app's own
    rule, :func:`swigapp.fitting.saturated`) and the ceiling, None when nothing clipped."""
    from swigapp.fitting import saturated

    clipped = saturated(images)
    return clipped, (float(images[clipped][0]) if clipped.any() else None)


def scores(maps: dict[str, np.ndarray], ref: dict[str, np.ndarray], mask: np.ndarray,
           gm: np.ndarray) -> dict[str, float]:  # fmt: skip
    """SSIM over the brain and GM MAE of each map against ``ref``: ms for T1/T2, % of the
    median for PD.

    PD is on each method's own scale (the app's water fraction, the fit's series units):
    each PD map, the reference's included, is divided by its median over ``mask`` and
    scored with a data range of 2.
    """
    row = {}
    for m, value in ref.items():
        x, y, where, region = (_plane(a) for a in (value, maps[m], mask, gm))
        x, y = np.nan_to_num(x), np.nan_to_num(y)
        if m == "PD":  # the median over the mask's nonzero voxels (a map may be 0 in parts)
            x, y = (v / np.median(v[where & (v > 0)]) for v in (x, y))
        data_range = metrics.DATA_RANGE[m] if m != "PD" else 2.0
        row[f"{m} SSIM"] = metrics.ssim(y, x, data_range, mask=where)
        if m != "PD":
            row[f"GM {m} MAE ms"] = metrics.tissue_mae_ms(y, x, {"GM": region})["GM"]
        else:
            row["GM PD MAE %"] = 100.0 * float(np.abs(y - x)[region].mean())
    return row


def _plane(image: np.ndarray) -> np.ndarray:
    """A one-slice volume (X, Y, 1) as its plane; a volume of several slices as it is."""
    return image[..., 0] if image.shape[-1] == 1 else image


#: Checks of the app's fit against the source's own, per case.
CHECKS = {"irt1": source_fit_check}


def _load(folder: Path, pattern: str) -> np.ndarray:
    """The one image in ``folder`` matching ``pattern``, as float64."""
    return np.asarray(nib.load(next(folder.glob(pattern))).dataobj, dtype=np.float64)


def run_case(case: RealCase, work: Path, seed: int, app_args: tuple[str, ...] = ()) -> dict:
    """Run the app on one case (``app_args``: more options) and score SR, cubic and the
    noise floor (:func:`score_case`)."""
    bids = write_series(work / "bids", case, case.factor)
    print(f"running swigapp on case {case.name} ...", flush=True)
    log = run_app(bids, work / "out", work / "work",
                  extra=("--guides", ",".join(case.guides), *app_args))  # fmt: skip
    (work / "app.log").write_text(log)
    return score_case(case, work, seed)


def score_case(
    case: RealCase, work: Path, seed: int, sr: dict[str, np.ndarray] | None = None
) -> dict:
    """Score the app's outputs under ``work`` (its ``out`` folder; ``sr``: other HR maps,
    name -> map in the derivatives' units, in place of its SR maps), cubic spline of its LR
    fit and the noise floor against the full-resolution fit, and the phantom's spheres."""
    out = work / "out"
    ref, residual = fit_reference(case)
    sigma = noise_sigma(case, residual)
    floor_maps = fit_reference(case, with_noise(case.images, sigma, seed))[0]
    brain = case.mask & np.all([np.isfinite(v) for v in ref.values()], axis=0)
    if case.region is not None:
        gm = case.region & brain
    else:
        driver = "T1" if "T1" in ref else "T2"
        centres = tissue.T1_CENTRES_S if driver == "T1" else T2_CENTRES_S
        gm = tissue.classify(ref[driver], brain, centres=centres) == 2
    anat = out / f"sub-{case.name}" / "anat"
    if sr is None:
        sr = {m: _load(anat, f"*_res-hi_desc-swig_{SUFFIX[m]}.nii.gz") for m in ref}
    lr_fit = {m: _load(anat, f"*_res-lo_desc-fit{case.kind}_{FIT_SUFFIX[m]}.nii.gz") for m in ref}
    qc = json.loads((out / f"sub-{case.name}" / "log" / f"sub-{case.name}_qc.json").read_text())
    cubic = {m: upsample_interp(np.nan_to_num(v), case.images.shape[:3], order=3)
             for m, v in lr_fit.items()}  # fmt: skip
    floor = {m: np.nan_to_num(v) for m, v in floor_maps.items()}
    lr_grid = nib.load(next(anat.glob(f"*_res-lo_desc-fit{case.kind}_M0map.nii.gz"))).affine
    on_grid = {"reference": (ref, case.affine), "LR fit": (lr_fit, lr_grid),
               "SR": (sr, case.affine), "cubic": (cubic, case.affine)}  # fmt: skip
    spheres = sphere_rows(case, on_grid)
    return {
        "spheres": spheres,
        "case": case.name, "sigma": sigma, "gm_voxels": int(gm.sum()),
        "brain_voxels": int(brain.sum()),
        "fallback": ", ".join(r["region"] for r in qc.get("RegionalFallback", [])) or "none",
        "SR": scores(sr, ref, brain, gm),
        "cubic": scores(cubic, ref, brain, gm),
        "floor": scores(floor, ref, brain, gm),
    }  # fmt: skip


def sphere_rows(case: RealCase, maps: dict[str, tuple[dict, np.ndarray]]) -> list[dict]:
    """Per sphere of a phantom case: NIST's value and each map's ROI mean (ms), with the LR
    fit's standard error, and whether the sphere is judged (its reference inside both the
    series' range of TE/TI, or of Ernst angles for VFA, and the fit's range, and not in the
    outer tenth of a 3D slab's slices, whose flip angle the slab profile lowers) and passes:
    |SR - ref| <= |LR fit - ref| + 2 SE(LR fit), i.e. SR moves the mean no further from
    NIST's value than the LR fit's own error (and whether cubic spline passes the same
    test: the ROI on the HR grid is not the LR grid's, so interpolation alone can fail it)."""
    from benchmarks import nist
    from swigapp.fitting import T1_RANGE, T2_RANGE

    if not case.spheres:
        return []
    quantity = "T2" if case.kind == "MESE" else "T1"
    fit_range = T2_RANGE if quantity == "T2" else T1_RANGE
    used = [case.values[k] for k in case.series_index]
    if case.kind == "VFA":  # the T1s whose Ernst angle lies among the flip angles
        lo, hi = (-case.common["RepetitionTime"] / np.log(np.cos(np.radians(a)))
                  for a in (max(used), min(used)))  # fmt: skip
    else:
        lo, hi = min(used), max(used)
    lo, hi = max(lo, fit_range[0]), min(hi, fit_range[1])
    centres = {n: c for n, (_, c) in case.spheres.items()}
    in_plane = case.images.shape[2] == 1
    stats = {k: nist.sphere_stats(v[quantity], a, centres, in_plane=in_plane)
             for k, (v, a) in maps.items()}  # fmt: skip
    # a 3D slab's outer tenth of slices sees a lower flip angle (the slab profile)
    n = case.images.shape[2]
    edge = int(np.ceil(0.1 * n)) if n > 1 else 0
    to_index = np.linalg.inv(case.affine)
    rows = []
    for name, (record, centre) in case.spheres.items():
        ref = record["value_s"]
        z = round(float((to_index @ [*centre, 1.0])[2]), 3)
        inside = n == 1 or edge <= z <= n - 1 - edge
        row = {"case": case.name, "sphere": name, "quantity": quantity, "NIST ms": 1000 * ref,
               "judged": bool(lo <= ref <= hi and inside)}  # fmt: skip
        for k in maps:
            row[f"{k} ms"] = 1000 * stats[k][name][0]
        row["LR fit SE ms"] = 1000 * stats["LR fit"][name][1]
        allowed = abs(row["LR fit ms"] - row["NIST ms"]) + 2 * row["LR fit SE ms"]
        row["passes"] = bool(abs(row["SR ms"] - row["NIST ms"]) <= allowed)
        row["cubic passes"] = bool(abs(row["cubic ms"] - row["NIST ms"]) <= allowed)
        rows.append(row)
    return rows


def table(rows: list[dict], cases: dict[str, RealCase], command: str) -> str:
    """The markdown report: per case and map, SR, cubic and the reference's noise floor."""
    lines = [
        "# Real acquisitions: in-vivo slices and the NIST phantom from their raw series",
        "",
        f"Command: `{command}`; machine: {platform.machine()}, 2 cores (this project's CI "
        "kind). The app as users run it (`swigapp ... participant --guides ...`, default "
        "options), on the raw series at a lower in-plane resolution; reference: the app's fit "
        "of the full-resolution series; cubic: cubic spline of the app's LR fit; floor: the "
        "reference refitted after adding noise of the fit residual's level (what a perfect "
        "method would score against this reference). SSIM over the source's brain mask (the "
        "phantom: its disc; PD: each map over its median over its nonzero voxels there, range "
        "2); GM: k-means label "
        "of the reference (the phantom: its sphere ROIs). GM MAE: ms for T1 and T2, % of the "
        "median for PD (on the maps divided by their median, as for SSIM).",
        "",
        "| case | map | SR SSIM | cubic SSIM | floor SSIM | SR GM MAE | cubic GM MAE "
        "| floor GM MAE |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        case = cases[row["case"]]
        for m in SCORED[case.kind]:
            key = f"GM {m} MAE ms" if m != "PD" else "GM PD MAE %"
            mae = [f"{row[k].get(key, float('nan')):.1f}" for k in ("SR", "cubic", "floor")]
            ssim = [f"{row[k][f'{m} SSIM']:.4f}" for k in ("SR", "cubic", "floor")]
            lines.append(f"| {case.name} | {m} | " + " | ".join(ssim + mae) + " |")
    lines += ["", "Per case:", ""]
    for row in rows:
        case = cases[row["case"]]
        hr = voxel_sizes(case.affine)
        lines.append(
            f"- **{case.name}** ({case.kind}, {len(case.series_index)} images; guides "
            + ", ".join(f"{g} = {p.source}" for g, (_, p) in case.guides.items())
            + f"): full resolution {hr[0]:.2f} x {hr[1]:.2f} x {hr[2]:.1f} mm, series at "
            f"1/{case.factor} in-plane; brain {row['brain_voxels']} voxels, GM "
            f"{row['gm_voxels']}; noise SD (fit residual) {row['sigma']:.3g}; regions the "
            f"app fell back in: {row['fallback']}. Assumed: "
            + "; ".join(case.assumed)
            + "."
            + (f" Fit check: {row['check']}." if row.get("check") else "")
            + (
                f" MAE is over the {case.region_name} ({row['gm_voxels']} voxels), not GM."
                if case.region is not None
                else ""
            )
        )
    lines += sphere_table([s for row in rows for s in row.get("spheres", [])])
    return "\n".join(lines) + "\n"


def _verdict(sphere: dict, key: str) -> str:
    """A judged sphere's test result (``key``) for the table; "-" for a sphere not judged."""
    return ("yes" if sphere[key] else "**no**") if sphere["judged"] else "-"


def sphere_table(spheres: list[dict]) -> list[str]:
    """The phantom's per-sphere table (markdown lines; none without a phantom case)."""
    if not spheres:
        return []
    judged = [s for s in spheres if s["judged"]]
    lines = [
        "",
        "## The phantom's spheres against NIST's values",
        "",
        f"Mean over each sphere's ROI ({nist.ROI_RADIUS_MM:g} mm radius: a disc in the plane "
        "of a one-slice series, a ball in a 3D slab; centres from mrbias's ROI template; on "
        "each map's own grid). Judged: NIST's value inside the series' TI or TE range (VFA: "
        "the T1s whose Ernst angle is among its flip angles) and the fit's range, and the "
        "sphere not in the outer tenth of a 3D slab's slices (the slab profile lowers the "
        "flip angle there). Passes: |SR - NIST| <= |LR fit - NIST| + 2 SE of the LR fit's "
        "mean (SR moves no sphere further from its reference than the LR fit's own error); "
        "cubic spline of the LR fit is held to the same test, since the ROI on the HR grid "
        "samples a sphere's edge differently from the LR grid's. "
        + "; ".join(
            f"{c}: {sum(s['passes'] for s in judged if s['case'] == c)} of "
            f"{sum(s['case'] == c for s in judged)} judged spheres pass (cubic: "
            f"{sum(s['cubic passes'] for s in judged if s['case'] == c)})"
            for c in dict.fromkeys(s["case"] for s in spheres)
        )
        + ".",
        "",
        "| case | sphere | map | NIST ms | reference (HR fit) ms | LR fit ms (SE) | SR ms "
        "| cubic ms | judged | SR passes | cubic passes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in spheres:
        lines.append(
            f"| {s['case']} | {s['sphere']} | {s['quantity']} | {s['NIST ms']:.1f} "
            f"| {s['reference ms']:.1f} "
            f"| {s['LR fit ms']:.1f} ({s['LR fit SE ms']:.1f}) | {s['SR ms']:.1f} "
            f"| {s['cubic ms']:.1f} | {'yes' if s['judged'] else 'no'} "
            f"| {_verdict(s, 'passes')} | {_verdict(s, 'cubic passes')} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder of the extracted sources (default %(default)s)")  # fmt: skip
    parser.add_argument("--mirror-root", type=Path,
                        help="first extract the sources from the stored copies here")  # fmt: skip
    parser.add_argument("--cases", nargs="+", choices=tuple(LOADERS), default=list(LOADERS))
    parser.add_argument("--keep", type=Path, help="keep each case's BIDS, outputs and log here")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise-floor refit")
    parser.add_argument("--app-args", default="", help="more swigapp options, e.g. '--no-fallback'")
    args = parser.parse_args()
    if args.mirror_root:
        extract(args.mirror_root, args.data, args.cases)
    missing = sorted({FOLDERS[c] for c in args.cases
                      if not all((args.data / FOLDERS[c] / n).exists()
                                 for n in SOURCES[FOLDERS[c]][1])})  # fmt: skip
    if missing:
        raise SystemExit(
            f"real data absent for {', '.join(missing)} under {args.data}: run with "
            "--mirror-root DIR after fetching " + ", ".join(SOURCES[c][0] for c in missing)
        )
    cases = {c: LOADERS[c](args.data / FOLDERS[c]) for c in args.cases}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, case in cases.items():
            work = (args.keep or Path(tmp)) / name
            shutil.rmtree(work, ignore_errors=True)
            rows.append(run_case(case, work, args.seed, tuple(args.app_args.split())))
            if name in CHECKS:
                rows[-1]["check"] = CHECKS[name](case, args.data / name)
            print(json.dumps(rows[-1], default=str), flush=True)
    command = "python -m benchmarks.real --cases " + " ".join(args.cases)
    command += f" --app-args '{args.app_args}'" if args.app_args else ""
    text = table(rows, cases, command)
    RESULTS.mkdir(exist_ok=True)
    if not args.app_args:
        name = "real" if set(args.cases) == set(LOADERS) else "real_" + "_".join(args.cases)
        (RESULTS / f"{name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
