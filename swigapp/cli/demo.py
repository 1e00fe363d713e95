"""``swigapp-demo``: the bundled demo on a phantom subject, end to end.

Generates a tiny phantom BIDS dataset, registers its T1w/T2w/FLAIR guides to the LR maps
(ANTs), brings the LR maps to the HR grid with the interpolation baselines and with the
shipped SWIG model (T1w + T2w guides), synthesises T2-FLAIR from each result, and scores
maps and FLAIR against the phantom's ground truth (NIfTIs and a TSV table under
OUT/derivatives/swigapp-demo). Then runs the BIDS App itself, ``swigapp BIDS OUT
participant`` and ``group``, on the same dataset into OUT/derivatives/swigapp.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from swigapp import metrics
from swigapp._version import __version__
from swigapp.inputs.bundle import load_bundle
from swigapp.io.bids import MAP_ORDER, MAP_SUFFIX, layout
from swigapp.io.files import save_nifti, write_json, write_tsv
from swigapp.models.cohort import prepare_bundle
from swigapp.models.features import SubjectTensors
from swigapp.models.inference import predict_volume
from swigapp.models.shipped import load_shipped
from swigapp.operators import kspace
from swigapp.operators.interp import upsample_interp
from swigapp.phantom.bids import TRUTH_PIPELINE, DatasetExistsError, write_dataset
from swigapp.phantom.subject import PhantomConfig
from swigapp.synthesis import synthesize

LOG = logging.getLogger("swigapp.demo")
#: How far (mm) the demo's guides see beyond the maps' slab, below and above.
DEMO_GUIDE_MARGIN_MM = 10.0
Method = Callable[[SubjectTensors], np.ndarray]


def _per_map(fn: Callable[[np.ndarray, tuple[int, ...]], np.ndarray]) -> Method:
    return lambda t: np.stack([fn(v, t.hr_shape) for v in t.lr.numpy()])


#: LR -> HR methods the demo compares; each returns (3, X, Y, Z) maps.
METHODS: dict[str, Method] = {
    "zerofilled": _per_map(lambda v, s: np.asarray(kspace.upsample(v.astype(np.float64), s))),
    "trilinear": _per_map(lambda v, s: upsample_interp(v, s, order=1)),
    "cubic": _per_map(lambda v, s: upsample_interp(v, s, order=3)),
    "swig": lambda t: predict_volume(load_shipped(), t.with_guides(("T1w", "T2w"))),
}


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(path)
    return np.asarray(img.dataobj, dtype=np.float32), img.affine


def run_demo(out_dir: Path, seed: int = 0, size: str = "tiny") -> list[dict[str, object]]:
    """Run the demo into ``out_dir`` (must not exist or be empty); return the score rows."""
    # guides that see 10 mm beyond the maps' slab, as a whole-head T1w does: their motion
    # then never takes brain out of their view
    config = PhantomConfig(size=size, guide_margin_mm=DEMO_GUIDE_MARGIN_MM)
    bids = write_dataset(out_dir / "bids", 1, seed=seed, config=config)
    truth_dir = bids / "derivatives" / TRUTH_PIPELINE / "sub-01" / "anat"
    bundle = load_bundle(layout(bids), "01", guides=("T1w", "T2w", "FLAIR"))
    prepared = prepare_bundle(bundle)
    truth, affine = {}, None
    for m, s in MAP_SUFFIX.items():
        truth[m], affine = _load(truth_dir / f"sub-01_desc-truth_{s}.nii.gz")
    mask = _load(truth_dir / "sub-01_desc-brain_mask.nii.gz")[0] > 0.5
    flair_protocol = bundle.protocols["FLAIR"]  # the acquired FLAIR's protocol (held out)
    flair_truth = synthesize(truth, flair_protocol)
    flair_range = float(flair_truth[mask].max())
    out = out_dir / "derivatives" / "swigapp-demo" / "sub-01" / "anat"
    rows: list[dict[str, object]] = []
    for name, method in METHODS.items():
        start = time.perf_counter()
        hr = dict(zip(MAP_ORDER, method(prepared.tensors), strict=True))
        seconds = time.perf_counter() - start
        flair = synthesize(hr, flair_protocol)
        row: dict[str, object] = {"method": name, "seconds": round(seconds, 3)}
        for m in MAP_SUFFIX:
            row[f"{m}_SSIM"] = metrics.ssim(hr[m], truth[m], metrics.DATA_RANGE[m], mask=mask)
            row[f"{m}_HFEN"] = metrics.hfen(hr[m], truth[m], mask=mask)
            save_nifti(out / f"sub-01_desc-{name}_{MAP_SUFFIX[m]}.nii.gz", hr[m], affine)
        row["FLAIR_SSIM"] = metrics.ssim(flair, flair_truth, flair_range, mask=mask)
        save_nifti(out / f"sub-01_desc-{name}_FLAIR.nii.gz", flair, affine)
        rows.append(row)
    save_nifti(out / "sub-01_desc-truth_FLAIR.nii.gz", flair_truth, affine)
    write_tsv(rows, out_dir / "derivatives" / "swigapp-demo" / "scores.tsv")
    write_json(
        out_dir / "derivatives" / "swigapp-demo" / "dataset_description.json",
        {
            "Name": "swigapp demo outputs",
            "BIDSVersion": "1.10.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "swigapp-demo", "Version": __version__}],
        },
    )
    return rows


def format_table(rows: list[dict[str, object]]) -> str:
    """Markdown table of the demo scores."""
    keys = list(rows[0])
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = [f"{row[k]:.3f}" if isinstance(row[k], float) else str(row[k]) for k in keys]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="swigapp-demo",
        description="Run swigapp's bundled demo on a generated phantom subject and score it.",
    )
    parser.add_argument("out_dir", nargs="?", default="demo", help="output folder (default ./demo)")
    parser.add_argument("--seed", type=int, default=0, help="phantom seed (default 0)")
    parser.add_argument(
        "--size", choices=("tiny", "slab", "full"), default="tiny", help="phantom size"
    )
    parser.add_argument("--version", action="version", version=f"swigapp {__version__}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out_dir = Path(args.out_dir).absolute()
    if out_dir.exists() and any(out_dir.iterdir()):
        print(f"swigapp-demo: error: {out_dir}: exists and is not empty", file=sys.stderr)
        return 1
    try:
        rows = run_demo(out_dir, seed=args.seed, size=args.size)
    except DatasetExistsError as err:
        print(f"swigapp-demo: error: {err}", file=sys.stderr)
        return 1
    print(format_table(rows))
    print(f"\nphantom dataset: {out_dir / 'bids'}")
    print(f"scored outputs: {out_dir / 'derivatives' / 'swigapp-demo'}")
    from swigapp.cli import run as app

    bids, app_out = str(out_dir / "bids"), str(out_dir / "derivatives" / "swigapp")
    print(f"\nrunning the BIDS App: swigapp {bids} {app_out} participant", flush=True)
    rc = app.main([bids, app_out, "participant", "-w", str(out_dir / "work")])
    if rc == 0:
        rc = app.main([bids, app_out, "group"])
    return rc


if __name__ == "__main__":
    sys.exit(main())
