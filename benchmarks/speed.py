"""Inference speed and memory on one full 1 mm brain grid (197 x 233 x 189), CPU.

    python -m benchmarks.speed [--repeats 3] [--threads 2]
    python -m benchmarks.speed --method inr      # or wmri2q

SWIG: times (median of --repeats) the whole predict_volume call (the default orientation
ensemble: three slice axes on this isotropic grid) and, in the same run, the network's
convolutions alone on the same slices (inputs prepared beforehand), and reports the ratio:
the distance of the inference code to the machine's convolution throughput. The same is
measured for one slice axis (``--single-orientation``) in the same run.
wmri2q: the whole predict_volume call of the shipped hybrid U-Net. INR: fitting (default
settings, early stopping on) and rendering the fitted representation on the whole grid.
Peak RSS is measured in a fresh subprocess doing one complete run.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from swigapp.models.features import SubjectTensors, prepare_subject
from swigapp.models.inference import (
    CPU_SLICE_BATCH,
    brain_chunks,
    oriented,
    predict_volume,
    slice_axes,
)
from swigapp.models.inr import fit_inr, render_volume
from swigapp.models.network import in_batches
from swigapp.models.shipped import load_shipped
from swigapp.operators import grid
from swigapp.phantom.subject import PhantomConfig, make_subject

GRID = (197, 233, 189)


def full_grid_subject() -> SubjectTensors:
    """A full 1 mm phantom (2 mm LR) zero-padded onto the whole MNI grid 197 x 233 x 189.

    The LR maps are padded to the LR size of that grid (98 x 116 x 94); timing does not
    depend on the sub-voxel mismatch this padding leaves between LR maps and guides.
    """
    s = make_subject(0, seed=7000, config=PhantomConfig(size="full", guides=("T1w", "T2w")))
    shape = s.truth.t1.shape
    lr_grid = grid.lr_shape(GRID, (2.0,))
    pad = [(0, g - n) for g, n in zip(GRID, shape, strict=True)]
    lr_pad = [(0, g - n) for g, n in zip(lr_grid, s.lr_maps["T1"].shape, strict=True)]
    guides = {k: np.pad(v, pad) for k, v in s.guides.items()}
    lr = {k: np.pad(v, lr_pad) for k, v in s.lr_maps.items()}
    return prepare_subject(lr, guides, s.protocols, np.pad(s.truth.brain_mask, pad))


@torch.inference_mode()
def conv_only_seconds(
    model, subject: SubjectTensors, axes: tuple[int, ...], chunk: int = 16
) -> float:
    """Time of the convolutions alone on the per-slice inputs of the same brain chunks (the
    same crops, kept slices and batches as inference), for every slice axis in ``axes``."""
    present = subject.present[None]
    inputs = []
    for axis in axes:
        vols, mask, _ = oriented(subject, axis)
        chunks = brain_chunks(vols, mask, chunk, model.config.context, model.halo)
        for _, _, keep, _, args in chunks:
            inputs.append(model.slice_inputs(*args, present, keep)[0])
    start = time.perf_counter()
    for x in inputs:
        in_batches(model.residual, x, CPU_SLICE_BATCH)
    return time.perf_counter() - start


WEIGHTS = {"swig": "swig_default", "wmri2q": "wmri2q_hybrid"}
VOXEL = (1.0, 1.0, 1.0)


def run_method(method: str, subject: SubjectTensors) -> dict:
    """One complete run of ``method`` on ``subject``: seconds per phase."""
    if method == "inr":
        t0 = time.perf_counter()
        fit = fit_inr(subject, VOXEL)
        t1 = time.perf_counter()
        render_volume(fit, subject)
        t2 = time.perf_counter()
        return {"fit": t1 - t0, "render": t2 - t1, "total": t2 - t0, "steps": fit.steps,
                "stopped_by": fit.stopped_by}  # fmt: skip
    model = load_shipped(WEIGHTS[method])
    t0 = time.perf_counter()
    predict_volume(model, subject)
    return {"total": time.perf_counter() - t0}


def peak_rss_child(method: str) -> None:
    """Child process: one complete run, then print peak RSS in MiB."""
    run_method(method, full_grid_subject())
    print(json.dumps({"peak_rss_mib": own_peak_rss_mib()}))


def own_peak_rss_mib() -> float:
    """Peak RSS of this process's own memory (VmHWM). Not ru_maxrss: after fork + exec it
    keeps the parent's resident size at the fork, which a benchmark parent holding a full
    brain would dominate."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # no /proc: best effort


def peak_rss(method: str, threads: int) -> float:
    """Peak RSS (MiB) of a fresh subprocess doing one complete run of ``method``."""
    child = subprocess.run(
        [sys.executable, "-m", "benchmarks.speed", "--child", "--threads", str(threads),
         "--method", method],
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    return json.loads(child.stdout.strip().splitlines()[-1])["peak_rss_mib"]


def other_method(args: argparse.Namespace) -> None:
    """INR or wmri2q: medians of whole runs, and peak RSS."""
    subject = full_grid_subject()
    runs = [run_method(args.method, subject) for _ in range(args.repeats)]
    rss = peak_rss(args.method, args.threads)
    print(
        f"Command: `python -m benchmarks.speed --method {args.method} --repeats {args.repeats} "
        f"--threads {args.threads}`"
    )
    print(f"Grid {subject.hr_shape}; median of {args.repeats}:")
    keys = [k for k in runs[0] if k != "stopped_by"]
    print(
        "| " + " | ".join(f"{k} (s)" if k != "steps" else k for k in keys) + " | peak RSS (MiB) |"
    )
    print("|" + "---|" * (len(keys) + 1))
    cells = [f"{statistics.median(r[k] for r in runs):.{0 if k == 'steps' else 1}f}" for k in keys]
    print("| " + " | ".join(cells) + f" | {rss:.0f} |")
    if args.method == "inr":
        print("stopped by: " + ", ".join(r["stopped_by"] for r in runs))


def main() -> None:
    """Run the benchmark and print a Markdown summary."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--method", choices=("swig", "inr", "wmri2q"), default="swig")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        peak_rss_child(args.method)
        return
    if args.method != "swig":
        other_method(args)
        return
    model = load_shipped()
    subject = full_grid_subject()
    modes = {"orientation ensemble": slice_axes(subject), "single orientation": (2,)}
    predict_volume(model, subject)  # warm-up
    times: dict[str, dict[str, list[float]]] = {m: {"full": [], "conv": []} for m in modes}
    for _ in range(args.repeats):
        for mode, axes in modes.items():
            t0 = time.perf_counter()
            predict_volume(model, subject, axes)
            times[mode]["full"].append(time.perf_counter() - t0)
            times[mode]["conv"].append(conv_only_seconds(model, subject, axes))
    rss = peak_rss("swig", args.threads)
    print(
        f"Command: `python -m benchmarks.speed --repeats {args.repeats} --threads {args.threads}`"
    )
    print(
        f"Machine: {platform.processor() or platform.machine()}, {args.threads} torch threads, "
        f"torch {torch.__version__}"
    )
    print(f"Grid {subject.hr_shape}, brain slices only; median of {args.repeats}:")
    print("| slice axes | inference (s) | convolutions alone (s) | ratio |")
    print("|---|---|---|---|")
    for mode, axes in modes.items():
        t_full = statistics.median(times[mode]["full"])
        t_conv = statistics.median(times[mode]["conv"])
        print(f"| {mode} {axes} | {t_full:.1f} | {t_conv:.1f} | {t_full / t_conv:.2f} |")
    print(f"Peak RSS of one default inference (orientation ensemble), fresh process: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
