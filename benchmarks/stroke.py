"""A real patient's guides: one chronic-stroke patient's T1w, T2w and FLAIR (3T, 1 mm) guide
the app; the maps are made from the same images' tissue classes.

    python -m benchmarks.stroke [--mirror-root DIR] [--settings 2mm-iso 1x1x4mm]

Source (``../shared/REALDATA.md``): ``neurolabusc/VolumeRenderingData`` ``stroke/`` (MIT;
co-registered on one 1 mm grid, brain-extracted, 8-bit). ``--mirror-root`` extracts it from
the stored copy (``fetch``) into ``~/.cache/swigapp/realdata/stroke``.

What it exercises: real guide contrasts (a real scanner's T1w, T2w and FLAIR, with their
noise, bias, 8-bit steps and sequence details that the app's signal models do not hold) and a
real lesion (a chronic infarct with its gliotic rim) in a real individual's brain, none of
which the network saw in training. No qMRI of this patient exists, so the reference maps are
made here: the three images are classified (a Gaussian mixture on their log intensities into
WM, GM, CSF and lesion, then GM and WM apart on the T1w alone), the classes get partial
volume by the anti-aliasing of the real-anatomy pool
(:func:`swigapp.phantom.individuals.antialias`) and tissue values by the phantom's 3T draws
(:func:`swigapp.phantom.tissue.make_truth`; the lesion class takes its "lesion" values). LR
maps come from those by the app's acquisition model plus noise, as in the phantoms. The
guides are the real images, with the app's default 3T protocols (the source gives none).

Read the scores with that in mind: the reference's edges are the guides' edges, so where the
classes are right this case favours guidance; what it can show is whether real contrasts and
an unseen lesion lead the network to invent or lose detail (SR against cubic spline, on the
brain, GM and the lesion) and whether the checks fall back where it does.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from benchmarks.quality import SETTINGS
from benchmarks.subsets import run_app
from swigapp import metrics
from swigapp.io.files import save_nifti, write_json
from swigapp.operators.grid import lr_affine, lr_shape
from swigapp.operators.interp import upsample_interp
from swigapp.phantom.acquire import simulate_lr_maps
from swigapp.phantom.anatomy import Anatomy
from swigapp.phantom.bids import BIDS_VERSION, MAP_SUFFIX, MAP_UNITS
from swigapp.phantom.individuals import antialias
from swigapp.phantom.tissue import make_truth
from swigapp.physics.protocol import DEFAULT_PROTOCOLS

RESULTS = Path(__file__).parent / "results"
DATA = Path.home() / ".cache" / "swigapp" / "realdata" / "stroke"
REPO = "neurolabusc/VolumeRenderingData"
#: Guide suffix -> the source file.
FILES = {"T1w": "stroke/T1.nii.gz", "T2w": "stroke/T2.nii.gz", "FLAIR": "stroke/FLAIR.nii.gz"}
#: First-pass classes and their initial means: each image's intensity over its brain median
#: (T1w, T2w, FLAIR). "dark" is low in all three (the brain extraction's rim, vessels): CSF.
CLASS_MEANS = {
    "tissue_bright": (1.2, 0.85, 1.0),
    "tissue_dark": (0.85, 1.2, 1.1),
    "csf": (0.4, 2.2, 0.55),
    "dark": (0.28, 1.1, 0.2),
    "lesion": (0.65, 1.6, 1.6),
}
MAPS = ("PD", "T1", "T2")


def extract(mirror_root: Path, data: Path = DATA) -> None:
    """Copy the three images and the licence out of the stored copy (bare git)."""
    git_dir = mirror_root / REPO.replace("/", "+") / "repo"
    if not git_dir.is_dir():
        raise SystemExit(f"{git_dir}: no stored copy of {REPO} (fetch it first)")
    data.mkdir(parents=True, exist_ok=True)
    for name, inside in {**FILES, "LICENSE": "LICENSE"}.items():
        blob = subprocess.run(
            ["git", "--git-dir", str(git_dir), "show", f"HEAD:{inside}"],
            capture_output=True,
            check=True,
        ).stdout
        (data / (f"{name}.nii.gz" if name != "LICENSE" else name)).write_bytes(blob)


def load_guides(data: Path = DATA) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The three images (float32) and their shared affine."""
    missing = [g for g in FILES if not (data / f"{g}.nii.gz").is_file()]
    if missing:
        raise SystemExit(f"{data}: no {', '.join(missing)} (run with --mirror-root first)")
    images = {g: nib.load(data / f"{g}.nii.gz") for g in FILES}
    affine = images["T1w"].affine
    return {g: np.asarray(im.dataobj, dtype=np.float32) for g, im in images.items()}, affine


def classify(images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Crisp WM, GM, CSF and lesion masks of the brain-extracted images.

    A 5-class Gaussian mixture (full covariance) on the log of each image over its brain
    median separates fluid, the dark rim, the lesion (bright on FLAIR and T2w) and tissue;
    a 2-class mixture on the T1w alone then splits tissue into WM (bright) and GM.
    """
    from sklearn.mixture import GaussianMixture

    brain = ndimage.binary_fill_holes(np.logical_and.reduce([v > 0 for v in images.values()]))
    feats = np.stack(
        [np.log(np.maximum(v[brain], 1.0) / np.median(v[brain])) for v in images.values()], 1
    )
    names = list(CLASS_MEANS)
    gmm = GaussianMixture(
        len(names),
        covariance_type="full",
        random_state=0,
        means_init=np.log(np.array(list(CLASS_MEANS.values()))),
    )
    first = np.asarray(names)[gmm.fit(feats).predict(feats)]
    tissue = np.isin(first, ("tissue_bright", "tissue_dark"))
    t1 = feats[tissue, 0][:, None]
    split = GaussianMixture(2, random_state=0, means_init=np.percentile(t1, [75, 20])[:, None])
    bright = split.fit(t1).predict(t1) == 0
    label = np.where(np.isin(first, ("csf", "dark")), "csf", first)
    label[tissue] = np.where(bright, "wm", "gm")
    out = {}
    for cls in ("wm", "gm", "csf", "lesion"):
        mask = np.zeros(brain.shape, bool)
        mask[brain] = label == cls
        out[cls] = mask
    return out


def reference(
    images: dict[str, np.ndarray], affine: np.ndarray, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """Reference maps (PD, T1 s, T2 s), fractions (WM, GM, CSF, lesion) and brain mask."""
    frac = antialias(classify(images))
    wm = frac["wm"] + frac["lesion"]
    lesion = np.divide(frac["lesion"], wm, out=np.zeros_like(wm), where=wm > 1e-6)
    mask = np.clip(wm + frac["gm"] + frac["csf"], 0.0, 1.0)
    anatomy = Anatomy(gm=frac["gm"], wm=wm, csf=frac["csf"], mask=mask, affine=affine)
    truth = make_truth(anatomy, np.random.default_rng(seed), lesion=lesion)
    return truth.as_dict(), truth.fractions, mask > 0.5


def write_case(
    root: Path, images: dict[str, np.ndarray], affine: np.ndarray, maps: dict, factors, seed: int
) -> Path:
    """A BIDS dataset: LR maps by k-space truncation plus noise, the real images as guides."""
    shape = lr_shape(next(iter(maps.values())).shape, factors)
    lr = simulate_lr_maps(maps, shape, np.random.default_rng([seed, 1]))
    write_json(
        root / "dataset_description.json",
        {
            "Name": "swigapp stroke-guide benchmark",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "raw",
            "License": "MIT (guides: neurolabusc/VolumeRenderingData)",
        },
    )
    anat = root / "sub-stroke" / "anat"
    common = {"MagneticFieldStrength": 3, "MRAcquisitionType": "3D"}
    lr_aff = lr_affine(affine, maps["T1"].shape, shape)
    for name, data in lr.items():
        stem = anat / f"sub-stroke_acq-lowres_{MAP_SUFFIX[name]}"
        save_nifti(f"{stem}.nii.gz", data, lr_aff)
        write_json(
            f"{stem}.json",
            common
            | {
                "Units": MAP_UNITS[name],
                "EstimationMethod": "simulated: k-space truncation of the reference + noise",
                "LowResolutionFactors": list(factors),
            },
        )
    for name, data in images.items():
        stem = anat / f"sub-stroke_{name}"
        save_nifti(f"{stem}.nii.gz", data, affine)
        write_json(f"{stem}.json", common | DEFAULT_PROTOCOLS[name].to_sidecar())
    return root


def score(maps: dict, ref: dict, frac: dict, mask: np.ndarray) -> dict[str, float]:
    """SSIM on the brain and MAE (ms) in GM and in the lesion (fraction >= 0.9 / 0.5)."""
    regions = {"GM": frac["GM"] >= 0.9, "lesion": frac["lesion"] >= 0.5}
    row = {}
    for m in MAPS:
        row[f"{m} SSIM"] = metrics.ssim(maps[m], ref[m], metrics.DATA_RANGE[m], mask=mask)
        if m != "PD":
            for region, value in metrics.tissue_mae_ms(maps[m], ref[m], regions).items():
                row[f"{region} {m} MAE ms"] = value
    return row


def run_setting(
    setting: str,
    work: Path,
    seed: int,
    guides: tuple[dict[str, np.ndarray], np.ndarray],
    made: tuple[dict, dict, np.ndarray],
) -> dict:
    """One LR setting end to end: dataset, ``swigapp ... participant``, scores. ``guides``:
    :func:`load_guides`; ``made``: their :func:`reference` (maps, fractions, brain mask)."""
    images, affine = guides
    ref, frac, mask = made
    factors = SETTINGS[setting]["lr_factors"]
    bids = write_case(work / "bids", images, affine, ref, factors, seed)
    out = work / "out"
    print(f"running swigapp on the stroke case at {setting} ...", flush=True)
    (work / "app.log").write_text(run_app(bids, out, work / "work"))
    anat = out / "sub-stroke" / "anat"
    sr = {
        m: np.asarray(
            nib.load(anat / f"sub-stroke_res-hi_desc-swig_{MAP_SUFFIX[m]}.nii.gz").dataobj,
            dtype=np.float32,
        )
        for m in MAPS
    }
    raw = bids / "sub-stroke" / "anat"
    cubic = {
        m: upsample_interp(
            np.asarray(
                nib.load(raw / f"sub-stroke_acq-lowres_{MAP_SUFFIX[m]}.nii.gz").dataobj,
                dtype=np.float32,
            ),
            mask.shape,
            order=3,
        )
        for m in MAPS
    }
    qc = json.loads((out / "sub-stroke" / "log" / "sub-stroke_qc.json").read_text())
    return {
        "setting": setting,
        "voxels": {
            "brain": int(mask.sum()),
            "GM": int((frac["GM"] >= 0.9).sum()),
            "lesion": int((frac["lesion"] >= 0.5).sum()),
        },
        "fallback": [
            f"{r['region']} ({100 * r.get('fraction_of_brain', 0):.1f} %)"
            for r in qc.get("RegionalFallback", [])
        ],
        "guide_ssim": qc.get("GuideSSIM", {}),
        "SR": score(sr, ref, frac, mask),
        "cubic": score(cubic, ref, frac, mask),
    }


def table(results: list[dict], command: str) -> str:
    """Markdown: SR and cubic spline per setting and score, the fallbacks and guide SSIM."""
    keys = list(results[0]["SR"])
    lines = [
        "# A real patient's guides (chronic stroke, 3T T1w/T2w/FLAIR)",
        "",
        f"Command: `{command}`; machine: {platform.machine()}, 2 cores (this project's CI "
        "kind). Reference maps made from the patient's own tissue classes (see "
        "`benchmarks/stroke.py`); the guides are the real images. One patient, one seed: "
        "no spread.",
        "",
        "| setting | score | SR | cubic spline | SR better |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        for k in keys:
            sr, cu = r["SR"][k], r["cubic"][k]
            better = sr > cu if "SSIM" in k else sr < cu
            lines.append(
                f"| {r['setting']} | {k} | {sr:.4g} | {cu:.4g} | {'yes' if better else 'no'} |"
            )
    lines += [
        "",
        "| setting | brain / GM / lesion voxels | regional or local fallback | "
        "guide re-synthesis SSIM (SR maps) |",
        "|---|---|---|---|",
    ]
    for r in results:
        v = r["voxels"]
        ssim = ", ".join(f"{g} {s:.3f}" for g, s in r["guide_ssim"].items())
        lines.append(
            f"| {r['setting']} | {v['brain']} / {v['GM']} / {v['lesion']} | "
            f"{'; '.join(r['fallback']) or 'none'} | {ssim} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror-root", type=Path, help="extract the images from here first")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--settings", nargs="+", default=["2mm-iso", "1x1x4mm"], choices=("2mm-iso", "1x1x4mm")
    )
    parser.add_argument("--seed", type=int, default=5000)
    parser.add_argument("--keep", type=Path, help="keep the datasets and outputs here")
    args = parser.parse_args()
    if args.mirror_root:
        extract(args.mirror_root, args.data)
    guides = load_guides(args.data)
    made = reference(*guides, args.seed)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        for setting in args.settings:
            results.append(run_setting(setting, root / setting, args.seed, guides, made))
            print(json.dumps(results[-1], indent=1), flush=True)
    command = f"python -m benchmarks.stroke --settings {' '.join(args.settings)}"
    text = table(results, command)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stroke.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
