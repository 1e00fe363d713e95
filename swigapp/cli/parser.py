"""Command-line arguments of ``swigapp`` (BIDS Apps conventions)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from swigapp._version import __version__
from swigapp.methods import DEFAULT_METHOD, METHODS, add_method_arguments, step_count
from swigapp.models.shipped import available

GUIDES = ("T1w", "T2w", "FLAIR", "PDw")
PLUGINS = ("MultiProc", "Linear", "SLURM", "SLURMGraph", "SGE", "SGEGraph", "PBS", "PBSGraph",
           "LSF", "Condor", "OAR", "IPython")  # fmt: skip


def comma_list(choices: tuple[str, ...] | None = None) -> Callable[[str], list[str]]:
    """argparse type: a comma-separated list (duplicates dropped), optionally from ``choices``."""

    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError("expected a comma-separated list")
        if choices:
            bad = [t for t in items if t not in choices]
            if bad:
                raise argparse.ArgumentTypeError(
                    f"unknown {', '.join(bad)} (choose from {', '.join(choices)})"
                )
        return list(dict.fromkeys(items))

    return parse


def fraction(text: str) -> float:
    """argparse type: a fraction in (0, 1]."""
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1], got {value}")
    return value


def _voxel(text: str) -> tuple[float, float, float]:
    parts = [float(p) for p in text.replace("x", ",").split(",") if p]
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3 or any(p <= 0 for p in parts):
        raise argparse.ArgumentTypeError("give one or three positive sizes in mm (1 or 1,1,1)")
    return tuple(parts)  # type: ignore[return-value]


def build_parser() -> argparse.ArgumentParser:
    """The ``swigapp`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="swigapp",
        description=(
            "Physics-informed, weighted-image-guided super-resolution of quantitative MRI. "
            "From low-resolution PD/T1/T2 maps and high-resolution T1w/T2w images of a BIDS "
            "dataset, writes high-resolution maps (T1/T2 in seconds), registered guides, "
            "synthesised contrasts and an HTML report per participant as a BIDS derivatives "
            "dataset; the group level summarises QC across participants."
        ),
        epilog=(
            "Exit codes: 0 success; 1 processing failed (see the crash files in the work "
            "dir); 2 bad command line; 3 invalid input (the message names the file)."
        ),
    )
    parser.add_argument("bids_dir", type=Path, help="the input BIDS dataset (read only)")
    parser.add_argument("output_dir", type=Path, help="the derivatives folder to write")
    parser.add_argument("analysis_level", choices=("participant", "group"), help="which level")
    parser.add_argument("--version", action="version", version=f"swigapp {__version__}")

    sel = parser.add_argument_group("selecting inputs")
    sel.add_argument(
        "--participant-label",
        "--participant_label",
        nargs="+",
        metavar="LABEL",
        help="participants to process, with or without 'sub-' (default: all)",
    )
    sel.add_argument("--session-label", nargs="+", metavar="LABEL", help="sessions (default: all)")
    sel.add_argument(
        "--bids-filter-file",
        type=Path,
        metavar="FILE",
        help="JSON of extra pybids filters per input: keys 'qmri' and guide names, e.g. "
        '{"qmri": {"acquisition": "lowres"}, "T1w": {"run": 1}}',
    )
    sel.add_argument(
        "--guides",
        type=comma_list(GUIDES),
        default=["T1w", "T2w"],
        metavar="LIST",
        help="weighted images guiding the model (default T1w,T2w; also FLAIR, PDw)",
    )
    sel.add_argument(
        "--protocol-overrides",
        type=Path,
        metavar="FILE",
        help="JSON/YAML {guide: {RepetitionTime: ..., ...}} for guides whose sidecars lack "
        "acquisition parameters",
    )
    sel.add_argument(
        "--fit-qmri",
        action="store_true",
        help="fit the maps from the raw qMRI series (MESE, IRT1, VFA, MP2RAGE/UNIT1) even "
        "where map files exist (default: fit only the maps that are missing)",
    )
    sel.add_argument(
        "--write-estimated",
        action="store_true",
        help="also write the maps that were not acquired (a participant with only some of "
        "PD, T1 and T2) as desc-estimated maps; they are estimates for the physics terms, "
        "not measurements (default: not written)",
    )
    sel.add_argument(
        "--skip-bids-validation", action="store_true", help="do not run the BIDS validator"
    )

    model = parser.add_argument_group("model and outputs")
    model.add_argument(
        "--method",
        choices=METHODS,
        default=DEFAULT_METHOD,
        help="swig: the SWIG CNN (LR maps + guides, trained prior); inr: an implicit neural "
        "representation fitted to each subject (no training data, minutes per subject); "
        "wmri2q: maps from the weighted images alone by a U-Net (Qiu et al. 2022) "
        "(default swig)",
    )
    model.add_argument(
        "--model",
        type=Path,
        metavar="PATH|NAME",
        help="--method swig or wmri2q: a model.pt, or the name of shipped weights "
        f"({', '.join(available())}) (default: swig_default for swig, wmri2q_hybrid "
        "for wmri2q)",
    )
    add_method_arguments(model)  # each method's own flags (swigapp.methods)
    model.add_argument(
        "--single-orientation",
        action="store_true",
        help="run the network along one slice axis only, instead of averaging its "
        "predictions along each least-downsampled axis (all three for isotropic LR maps): "
        "about 2x faster inference on isotropic LR maps, slightly less accurate, no "
        "uncertainty maps",
    )
    model.add_argument(
        "--no-fallback",
        action="store_true",
        help="keep the super-resolved maps in brain regions whose maps explain the guides "
        "worse than the interpolated LR maps (cubic spline; a 2D stack's least-squares "
        "upsampling), or fail both data-consistency checks (LR residual and guide "
        "re-synthesis); by default such a region gets that interpolation. Either way the "
        "report and QC JSON name the region and the reason",
    )
    model.add_argument(
        "--synthesize",
        type=comma_list(),
        default=["FLAIR"],
        metavar="LIST",
        help="contrasts to synthesise from the SR maps (default FLAIR; built in: "
        "T1w, T2w, FLAIR, PDw, SE-T1w; others need --synth-protocol)",
    )
    model.add_argument(
        "--synth-protocol",
        type=Path,
        metavar="FILE",
        help="JSON/YAML {contrast: {RepetitionTime: s, EchoTime: s, InversionTime: s, "
        "FlipAngle: deg, ...}} overriding or adding synthesis protocols",
    )
    model.add_argument(
        "--output-resolution",
        type=_voxel,
        metavar="MM",
        help="HR voxel size in mm (default: the first guide's)",
    )
    model.add_argument(
        "--registration",
        choices=("rigid", "affine"),
        default="rigid",
        help="guide-to-maps transform (default rigid)",
    )
    model.add_argument(
        "--lr-model",
        choices=("auto", "kspace", "slice-profile"),
        default="auto",
        help="acquisition model of the LR maps: 3D k-space truncation, or a 2D multi-slice "
        "stack (in-plane truncation, slice profile of FWHM SliceThickness at the slice "
        "positions); 'auto' takes MRAcquisitionType from the T1 map's sidecar, else "
        "slice-profile when the slices are more than 1.5x thicker than the in-plane voxels "
        "(default auto)",
    )
    model.add_argument(
        "--registration-sampling",
        type=fraction,
        default=0.1,
        metavar="FRACTION",
        help="fraction of the target's voxels the registration metric samples (default 0.1; "
        "0.2 reproduces swigapp 0.1.0's registration)",
    )
    model.add_argument(
        "--registration-full-resolution",
        action="store_true",
        help="run the registration's last level on the full HR grid, as swigapp 0.2.0 did "
        "(default: at the LR maps' resolution where it is at least twice as coarse, the "
        "finest detail of the target synthesised from them)",
    )
    model.add_argument(
        "--no-template-mask",
        action="store_true",
        help="brain mask from the maps alone (no template registration)",
    )
    model.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="torch device"
    )
    model.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    run = parser.add_argument_group("execution")
    run.add_argument(
        "-w",
        "--work-dir",
        type=Path,
        default=Path("work"),
        help="Nipype work folder; re-running with the same one skips finished steps "
        "(default ./work)",
    )
    run.add_argument(
        "--nprocs",
        "--n-cpus",
        type=step_count,
        default=0,
        help="processes for MultiProc (default: all CPUs)",
    )
    run.add_argument(
        "--omp-nthreads",
        type=step_count,
        default=0,
        help="threads per process for torch (default: min(nprocs, 8))",
    )
    run.add_argument("--mem", type=float, metavar="GB", help="memory limit for MultiProc (GB)")
    run.add_argument(
        "--plugin",
        choices=PLUGINS,
        default="MultiProc",
        help="Nipype execution plugin (default MultiProc; SLURM/SGE/PBS submit jobs)",
    )
    run.add_argument(
        "--plugin-args",
        metavar="JSON|FILE",
        help='plugin arguments as JSON or a JSON file, e.g. \'{"sbatch_args": "-p short"}\'',
    )
    run.add_argument(
        "--stop-on-first-crash", action="store_true", help="abort at the first failing step"
    )
    run.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv)")
    return parser


def default_nprocs(requested: int) -> int:
    """CPUs to use: ``requested`` or, when 0, the CPUs this process may run on."""
    if requested:
        return requested
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
