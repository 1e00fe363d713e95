"""Where a model's grey-matter T1 error lies: its sign, the LR band, and what the LR data fix.

    python -m benchmarks.gm_bias swig_default runs/x/model.pt --anatomy validation --subjects 3

On validation phantoms (seed 3000, as :mod:`benchmarks.validate`; T1w + T2w guides) prints,
per subject and model, in pure grey matter (fraction >= 0.9): the T1 MAE and mean signed
error (ms); the error split into the LR k-space band and beyond it (MAE of each part); the
mean signed error per bin of the true T1 (percentiles 0-10-25-50-75-90-100); and the MAE
after two data-consistency corrections: the LR data put back into the band (``hard``), and
the LR residual smoothed by a Gaussian of ``sigma`` HR voxels within the brain added
(``smooth``). Rows for the zero-filled LR input give its in-band error, the LR maps' noise.
Used to find why candidates trained on real anatomies lost GM T1 accuracy
(docs/benchmarks.md, "Version 8").
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from benchmarks.quality import (
    GUIDES,
    HELD_OUT_SEED,
    SETTINGS,
    VALIDATION_SEED,
    anatomies,
    eval_subjects,
)
from benchmarks.validate import load_candidate
from swigapp.models.features import MAP_ORDER
from swigapp.models.inference import predict_volume
from swigapp.operators.kspace import beyond_band

T1 = MAP_ORDER.index("T1")
BINS = (0, 10, 25, 50, 75, 90, 100)  # percentiles of the true GM T1


def in_band(x: np.ndarray, lr_shape: tuple[int, ...]) -> np.ndarray:
    """The part of ``x`` (HR grid) inside the LR k-space band."""
    return x - beyond_band(torch.from_numpy(x).double(), lr_shape).numpy()


def smoothed_within(x: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of ``x`` using only the voxels of ``mask`` (normalised)."""
    num = gaussian_filter(np.where(mask, x, 0.0), sigma)
    den = gaussian_filter(mask.astype(np.float64), sigma)
    return np.where(den > 1e-3, num / np.maximum(den, 1e-3), 0.0)


def describe(t1: np.ndarray, truth: np.ndarray, gm: np.ndarray, lr_shape, lr_up, brain) -> str:
    """One line of the printed table (T1 in s in, ms out)."""
    error = t1 - truth
    band = in_band(error, lr_shape)
    edges = np.percentile(truth[gm], BINS)
    per_bin = [
        1000 * float(error[gm & (truth >= a) & (truth <= b)].mean())
        for a, b in itertools.pairwise(edges)
    ]
    hard = t1 - in_band(t1, lr_shape) + lr_up
    residual = lr_up - in_band(t1, lr_shape)
    smooth = {s: t1 + smoothed_within(residual, brain, s) for s in (2, 4, 8)}

    def mae(x: np.ndarray) -> float:
        return 1000 * float(np.abs(x - truth)[gm].mean())

    bias, in_mae = 1000 * error[gm].mean(), 1000 * np.abs(band)[gm].mean()
    return (
        f"MAE {mae(t1):6.1f} bias {bias:6.1f} | in band {in_mae:5.1f}"
        f" beyond {1000 * np.abs(error - band)[gm].mean():5.1f} | bias per bin "
        + " ".join(f"{b:6.1f}" for b in per_bin)
        + f" | hard {mae(hard):6.1f} smooth "
        + " ".join(f"s{s} {mae(v):5.1f}" for s, v in smooth.items())
    )


def main() -> None:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="shipped model names or model.pt files")
    p.add_argument("--subjects", type=int, default=3)
    p.add_argument("--anatomy", choices=("template", "validation"), default="validation")
    p.add_argument("--setting", choices=list(SETTINGS), default="2mm-iso")
    p.add_argument("--size", choices=("tiny", "slab", "full"), default="slab")
    p.add_argument("--phantom-seed", type=int, default=VALIDATION_SEED)
    args = p.parse_args()
    if args.phantom_seed == HELD_OUT_SEED:
        p.error("the held-out seed is the quality benchmark's: diagnose on another")
    networks = {m: load_candidate(m) for m in args.models}
    print(f"GM T1 (ms), {args.anatomy} anatomy, {args.setting}, seed {args.phantom_seed}")
    with tempfile.TemporaryDirectory() as tmp:
        for subject in eval_subjects(
            SETTINGS[args.setting], args.subjects, args.size, args.phantom_seed, 0, Path(tmp),
            anatomy=anatomies(args.anatomy, args.subjects),
        ):  # fmt: skip
            inputs = subject.prepared.tensors.with_guides(GUIDES)
            lr_shape = tuple(inputs.lr.shape[1:])
            truth, gm = subject.truth["T1"], subject.tissues["GM"]
            lr_up = inputs.lr_up.numpy()[T1]
            brain = subject.mask & (truth > 0)
            rows = {"zero-filled LR input": lr_up}
            rows |= {m: predict_volume(net, inputs)[T1] for m, net in networks.items()}
            for name, t1 in rows.items():
                line = describe(t1, truth, gm, lr_shape, lr_up, brain)
                print(f"sub-{subject.name} {name:28s} {line}", flush=True)


if __name__ == "__main__":
    main()
