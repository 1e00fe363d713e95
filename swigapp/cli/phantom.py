"""``swigapp-phantom``: write a realistic phantom BIDS dataset (LR qMRI maps + HR guides)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from swigapp._version import __version__
from swigapp.cli.parser import comma_list
from swigapp.phantom.bids import TRUTH_PIPELINE, DatasetExistsError, write_dataset
from swigapp.phantom.individuals import AnatomyNotFoundError, describe_sources, load_individual
from swigapp.phantom.raw import KINDS as RAW_KINDS
from swigapp.phantom.subject import GUIDES, PhantomConfig
from swigapp.physics.protocol import DEFAULT_PROTOCOLS


def parse_factors(text: str) -> tuple[float, ...]:
    """Parse '2' or '1,1,4' into per-axis downsampling factors (each >= 1)."""
    try:
        factors = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a factor list: {text!r} (e.g. 2 or 1,1,4)") from None
    if len(factors) not in (1, 3) or any(f < 1 for f in factors):
        raise argparse.ArgumentTypeError(f"need 1 or 3 factors >= 1, got {text!r}")
    return factors


def build_parser() -> argparse.ArgumentParser:
    """Command-line parser of swigapp-phantom."""
    parser = argparse.ArgumentParser(
        prog="swigapp-phantom",
        description=(
            "Generate a BIDS dataset of synthetic subjects from the ICBM 2009 template "
            "anatomy: low-resolution PD/T1/T2 maps (k-space truncated, seconds) and "
            "high-resolution weighted guides (T1w MPRAGE, T2w TSE, FLAIR) with motion, "
            f"bias and noise; the ground truth goes to derivatives/{TRUTH_PIPELINE}."
        ),
    )
    parser.add_argument("out_dir", help="folder to create (must not exist or be empty)")
    parser.add_argument(
        "--subjects", type=int, default=1, metavar="N", help="number of subjects (default 1)"
    )
    parser.add_argument(
        "--size",
        choices=("tiny", "slab", "full"),
        default="tiny",
        help="tiny: 2 mm, 40 slices, seconds per subject; full: 1 mm whole brain (default tiny)",
    )
    parser.add_argument(
        "--lr-factor",
        type=parse_factors,
        default=(2.0,),
        metavar="F",
        help="k-space truncation factor: one value or three per axis, e.g. 2 or 1,1,4 (default 2)",
    )
    parser.add_argument(
        "--acquisition",
        choices=("3d", "2d"),
        default="3d",
        help="LR acquisition model: 3d k-space truncation, or a 2d multi-slice stack of axial "
        "slices (in-plane factors from --lr-factor, slice profile through-plane) (default 3d)",
    )
    parser.add_argument(
        "--slice-thickness",
        type=float,
        default=None,
        metavar="MM",
        help="2d: slice thickness (profile FWHM) in mm (default: the third --lr-factor times "
        "the HR voxel size)",
    )
    parser.add_argument(
        "--slice-gap",
        type=float,
        default=0.0,
        metavar="MM",
        help="2d: gap between slices in mm; spacing = thickness + gap, rounded to tile the "
        "field of view (default 0)",
    )
    parser.add_argument(
        "--slice-profile",
        choices=("gaussian", "rect"),
        default="gaussian",
        help="2d: slice profile (default gaussian)",
    )
    parser.add_argument(
        "--tilt",
        type=float,
        default=0.0,
        metavar="DEG",
        help="rotate the LR maps' axes by DEG degrees about the left-right axis relative to "
        "the guides (AC-PC-like angulation, |DEG| <= 45; the truth lies on the maps' axes) "
        "(default 0)",
    )
    parser.add_argument(
        "--head",
        action="store_true",
        help="a head instead of a skull-stripped brain: extra-cerebral CSF, skull, scalp fat "
        "and muscle, and a noisy LR map background with negative values as fitted maps have",
    )
    parser.add_argument(
        "--anatomy",
        type=comma_list(),
        default=None,
        metavar="NAME[,NAME...]",
        help="real individuals instead of the ICBM 2009 template, taken in turn by subject "
        "(each subject a deformation of its own): subject names, "
        + describe_sources()
        + " (label maps extracted into the real-data cache first: "
        "python -m swigapp.phantom.individuals fetch ...), or a path to a converted .npz "
        "or a label map",
    )
    parser.add_argument(
        "--maps",
        type=comma_list(("PD", "T1", "T2")),
        default=["PD", "T1", "T2"],
        metavar="MAP[,MAP...]",
        help="the LR maps written (default PD,T1,T2): a subset, as sites with an MP2RAGE "
        "(T1) or a multi-echo spin echo (T2, PD) have",
    )
    parser.add_argument(
        "--raw-qmri",
        type=comma_list(RAW_KINDS),
        default=[],
        metavar="KIND[,KIND...]",
        help="write raw qMRI series instead of the maps they give (BIDS file collections at "
        "the LR resolution): MESE (T2, PD; 32 echoes), IRT1 (T1, PD; 7 inversion times), "
        "VFA (T1, PD; 3 flip angles), MP2RAGE (T1: both inversions, magnitude and phase, "
        "and UNIT1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="base random seed (default 0)")
    parser.add_argument(
        "--lesions", type=int, default=3, metavar="N", help="WM lesions per subject (default 3)"
    )
    parser.add_argument(
        "--guides",
        default=list(GUIDES),
        type=comma_list(tuple(DEFAULT_PROTOCOLS)),
        help=f"comma-separated guide contrasts, from {', '.join(DEFAULT_PROTOCOLS)} "
        f"(default {','.join(GUIDES)})",
    )
    parser.add_argument(
        "--protocol-jitter",
        type=float,
        default=0.0,
        metavar="FRAC",
        help="relative jitter of TR/TE/TI/flip around 3T defaults (default 0)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty out_dir")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--version", action="version", version=f"swigapp {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.subjects < 1:
        print("swigapp-phantom: error: --subjects must be >= 1", file=sys.stderr)
        return 2
    slice_options = (
        args.slice_thickness is not None or args.slice_gap or (args.slice_profile != "gaussian")
    )
    if args.acquisition == "3d" and slice_options:
        print("swigapp-phantom: error: slice options need --acquisition 2d", file=sys.stderr)
        return 2
    if (args.slice_thickness is not None and args.slice_thickness <= 0) or args.slice_gap < 0:
        print("swigapp-phantom: error: need thickness > 0 and gap >= 0 mm", file=sys.stderr)
        return 2
    if abs(args.tilt) > 45:
        print("swigapp-phantom: error: --tilt must be within +-45 degrees", file=sys.stderr)
        return 2
    for name in args.anatomy or ():
        try:  # converts once into the cache; a missing anatomy fails before any output
            load_individual(name, args.size)
        except AnatomyNotFoundError as err:
            print(f"swigapp-phantom: error: {err}", file=sys.stderr)
            return 2
        except (KeyError, ValueError) as err:
            print(f"swigapp-phantom: error: --anatomy {name}: {err}", file=sys.stderr)
            return 2
    factors = args.lr_factor * 3 if len(args.lr_factor) == 1 else args.lr_factor
    slices = {}
    if args.acquisition == "2d":
        slices = {
            "acquisition": "2d",
            "slice_thickness_mm": args.slice_thickness,
            "slice_gap_mm": args.slice_gap,
            "slice_profile": args.slice_profile,
        }
    config = PhantomConfig(
        size=args.size,
        lr_factors=factors,
        guides=tuple(args.guides),
        n_lesions=args.lesions,
        protocol_jitter=args.protocol_jitter,
        head=args.head,
        tilt_deg=args.tilt,
        anatomy=None if args.anatomy is None else tuple(args.anatomy),
        raw_qmri=tuple(args.raw_qmri),
        maps=tuple(m for m in ("PD", "T1", "T2") if m in args.maps),
        **slices,
    )
    start = time.perf_counter()
    try:
        path = write_dataset(
            args.out_dir,
            args.subjects,
            seed=args.seed,
            config=config,
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
    except (DatasetExistsError, ValueError) as err:
        print(f"swigapp-phantom: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.subjects} subject(s) to {path} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
