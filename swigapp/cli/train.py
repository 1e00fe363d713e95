"""``swigapp-train``: train a SWIG super-resolution model (phantoms or a BIDS cohort)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from swigapp._version import __version__
from swigapp.cli.phantom import parse_factors
from swigapp.models.data import TRAIN_PHANTOM
from swigapp.models.losses import LossWeights
from swigapp.models.network import NetConfig
from swigapp.models.train import TrainConfig, train


def _triple(text: str) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected three integers like 48,48,12: {text!r}"
        ) from None
    if len(values) != 3 or min(values) < 4:
        raise argparse.ArgumentTypeError(f"expected three integers >= 4 like 48,48,12: {text!r}")
    return values


def init_weights(model: str) -> dict:
    """{"path", "sha256"} of the weights named by ``--init``: a shipped name or a model.pt
    (a file of a shipped model's name wins, as with ``swigapp --model``)."""
    from swigapp.models.shipped import available, model_card, shipped_name, weights_dir
    from swigapp.models.train import sha256

    name = shipped_name(model)
    if name:
        card = model_card(name)
        return {"path": str(weights_dir() / card["weights_file"]), "sha256": card["sha256"]}
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(
            f"{model!r} is neither a shipped model ({', '.join(available())}) nor a file"
        )
    return {"path": str(path), "sha256": sha256(path)}


def anatomy_list(text: str) -> list[str | None]:
    """Anatomies of the training phantoms, taken in turn by subject: a comma list of
    ``template`` (the ICBM 2009 template, None), split parts (``training``: every training
    individual of :mod:`swigapp.phantom.individuals`' split, the sources interleaved) and
    individual names."""
    from swigapp.phantom.individuals import split_subjects

    out: list[str | None] = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        if item == "template":
            out.append(None)
        elif item in ("training", "validation", "heldout"):
            out += split_subjects(item)
        else:
            out.append(item)
    return out or [None]


def build_parser() -> argparse.ArgumentParser:
    """Command-line parser of swigapp-train."""
    p = argparse.ArgumentParser(
        prog="swigapp-train",
        description=(
            "Train the SWIG model with the physics-informed loss: guide consistency through "
            "the signal equations, LR consistency through k-space truncation, and (phantoms "
            "only) a supervised term. Resumes from OUT_DIR/checkpoint.pt when present."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("out_dir", help="run folder: checkpoint, losses.tsv/png, model.pt, model card")
    src = p.add_argument_group("training data")
    src.add_argument(
        "--bids",
        metavar="DIR",
        help="self-supervised training on a BIDS cohort (LR maps + HR guides, no HR truth) "
        "instead of phantoms generated on the fly",
    )
    src.add_argument("--subjects", type=int, default=6, help="phantom subjects to generate")
    src.add_argument("--phantom-seed", type=int, default=1000, help="seed of the phantom cohort")
    src.add_argument(
        "--size", choices=("tiny", "slab", "full"), default="slab", help="phantom size"
    )
    src.add_argument(
        "--max-rotation",
        type=float,
        default=TRAIN_PHANTOM.max_rotation_deg,
        metavar="DEG",
        help="phantoms: largest residual misregistration of a guide, degrees per axis",
    )
    src.add_argument(
        "--max-translation",
        type=float,
        default=TRAIN_PHANTOM.max_translation_mm,
        metavar="MM",
        help="phantoms: largest residual misregistration of a guide, mm per axis",
    )
    src.add_argument(
        "--head-motion",
        type=float,
        nargs=2,
        metavar=("DEG", "MM"),
        help="phantoms: move the head by up to DEG and MM per axis between the maps and each "
        "guide, then resample the guide back as registration does (the motion known up to "
        "--max-rotation/--max-translation); default: no head motion, the guides are only "
        "misregistered by --max-rotation/--max-translation%(default).0s",
    )
    src.add_argument(
        "--lesions",
        type=int,
        default=TRAIN_PHANTOM.n_lesions,
        metavar="N",
        help="phantoms: white-matter lesions per subject",
    )
    src.add_argument(
        "--anatomies",
        default="template",
        metavar="LIST",
        help="phantoms: their anatomies, taken in turn by subject: a comma list of template "
        "(the ICBM 2009 template), training (the training individuals of the anatomy split; "
        "fetch them first: python -m swigapp.phantom.individuals fetch) and individual names "
        "(default template)",
    )
    src.add_argument(
        "--randomise",
        action="store_true",
        help="phantoms: domain randomisation, each subject with its own random tissue values "
        "(1.5T/3T/7T-like T1s), guide protocols, sidecar mismatch (TI, inversion efficiency, "
        "B1+), noise, bias, guide resolution, deformation, atrophy and lesion load",
    )
    src.add_argument(
        "--lr-settings",
        type=parse_factors,
        nargs="+",
        default=[(2.0,), (1.0, 1.0, 4.0)],
        metavar="F",
        help="LR factor settings to train on (default: 2 and 1,1,4)%(default).0s",
    )
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--steps", type=int, default=1500, help="optimiser steps")
    opt.add_argument("--batch-size", type=int, default=4, help="crops per step")
    opt.add_argument(
        "--crop", type=_triple, default=(48, 48, 12), help="in-plane, in-plane, slices"
    )
    opt.add_argument("--learning-rate", type=float, default=1e-3, help="Adam, cosine decay")
    opt.add_argument(
        "--guide-keep", type=float, default=0.75, help="probability of keeping each guide"
    )
    opt.add_argument(
        "--map-drop",
        type=float,
        default=0.0,
        metavar="P",
        help="probability that a crop is given only T1, T2 and PD, or T1 and PD, the other "
        "maps estimated as the app does (one network for every subset; default 0)",
    )
    opt.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints")
    opt.add_argument("--seed", type=int, default=0, help="seed of weights and crop sampling")
    opt.add_argument(
        "--init",
        metavar="MODEL",
        help="fine-tune: start from a shipped model's weights (a name such as swig_default) "
        "or a model.pt, instead of a random initialisation; the network options must match, "
        "except a larger --context, which grows the start network (same predictions at step 0)",
    )
    net = p.add_argument_group("network")
    net.add_argument("--width", type=int, default=32, help="feature channels")
    net.add_argument("--blocks", type=int, default=5, help="residual blocks")
    net.add_argument("--context", type=int, default=1, help="neighbouring slices on each side")
    net.add_argument("--no-lr-input", action="store_true", help="ablation: maps from guides only")
    net.add_argument(
        "--arch",
        choices=("resnet", "unet"),
        default="resnet",
        help="resnet: the SWIG model; unet: wmri2q (maps from the weighted images alone, after "
        "Qiu et al. 2022; implies --no-lr-input; use with --w-lowres and --w-edge)",
    )
    loss = p.add_argument_group("loss weights")
    loss.add_argument("--w-guide", type=float, default=1.0, help="guide consistency")
    loss.add_argument("--w-lr", type=float, default=5.0, help="LR (k-space) consistency")
    loss.add_argument("--w-supervised", type=float, default=1.0, help="ignored without HR truth")
    loss.add_argument("--w-edge", type=float, default=0.0, help="Sobel edge loss (Qiu et al.)")
    loss.add_argument(
        "--w-lowres",
        type=float,
        default=0.0,
        help="L1 to the LR maps upsampled to the HR grid as labels (wmri2q)",
    )
    loss.add_argument(
        "--w-linear",
        type=float,
        default=0.0,
        help="supervised L1 in physical units (weighs CSF edges); ignored without HR truth",
    )
    loss.add_argument(
        "--w-beyond",
        type=float,
        default=0.0,
        help="supervised L1 of the error outside the LR k-space band (the detail the LR "
        "maps lack); ignored without HR truth",
    )
    loss.add_argument(
        "--w-anchor",
        type=float,
        default=0.0,
        help="with --init: L1 (PD, ln T1, ln T2, in the brain) to the starting model's "
        "predictions, which keeps a self-supervised fine-tune near the model it refines",
    )
    run = p.add_argument_group("execution")
    run.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    run.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--version", action="version", version=f"swigapp {__version__}")
    return p


#: Options that shape the phantoms generated on the fly, meaningless with --bids.
PHANTOM_ONLY = (
    "subjects",
    "anatomies",
    "phantom_seed",
    "size",
    "max_rotation",
    "max_translation",
    "head_motion",
    "lesions",
    "randomise",
    "lr_settings",
)


def _phantom_pool(args: argparse.Namespace, settings: list) -> tuple[list, dict[str, Any]]:
    """The phantom training pool of the command line and its record for the model card."""
    from swigapp.models.data import phantom_pool

    config = replace(
        TRAIN_PHANTOM,
        size=args.size,
        max_rotation_deg=args.max_rotation,
        max_translation_mm=args.max_translation,
        n_lesions=args.lesions,
    )
    head = None if args.head_motion is None else tuple(args.head_motion)
    anatomies = anatomy_list(args.anatomies)
    pool = phantom_pool(
        args.subjects, args.phantom_seed, settings, config, not args.quiet, head,
        randomise=args.randomise, anatomies=anatomies,
    )  # fmt: skip
    data = {
        "source": "phantom",
        "subjects": args.subjects,
        "phantom_seed": args.phantom_seed,
        "lr_settings": [list(s) for s in settings],
        "anatomies": [a or "template" for a in anatomies],
        "phantom": {k: list(v) if isinstance(v, tuple) else v for k, v in config.__dict__.items()},
    }
    if any(anatomies):
        from swigapp.phantom.individuals import anatomy_record

        data["anatomy_sources"] = anatomy_record([a for a in anatomies if a])
    if args.randomise:
        from swigapp.models.data import RANDOM_DEFORMATION_MM
        from swigapp.phantom.shift import RANDOM_ON, RANDOMISATION

        data["randomisation"] = {
            "probability_on": RANDOM_ON,
            "ranges": {k: list(v) for k, v in RANDOMISATION.items()},
            "deformation_mm": list(RANDOM_DEFORMATION_MM),
        }
    if head is not None:
        data["head_motion"] = {"max_rotation_deg": head[0], "max_translation_mm": head[1]}
    return pool, data


def _train_config(args: argparse.Namespace, data: dict[str, Any]) -> TrainConfig:
    """The training configuration of the command line (``data``: the pool's record)."""
    truth = data["source"] == "phantom"  # the supervised terms need HR truth: 0 without it
    weights = LossWeights(
        guide=args.w_guide,
        lr=args.w_lr,
        supervised=args.w_supervised if truth else 0.0,
        edge=args.w_edge,
        lowres=args.w_lowres,
        linear=args.w_linear if truth else 0.0,
        beyond=args.w_beyond if truth else 0.0,
        anchor=args.w_anchor,
    )
    return TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        crop=args.crop,
        learning_rate=args.learning_rate,
        seed=args.seed,
        guide_keep=args.guide_keep,
        map_drop=args.map_drop,
        checkpoint_every=args.checkpoint_every,
        net=NetConfig(
            args.width,
            args.blocks,
            args.context,
            use_lr=not (args.no_lr_input or args.arch == "unet"),
            arch=args.arch,
        ),
        weights=weights,
        data=data,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.bids:
        given = [n for n in PHANTOM_ONLY if getattr(args, n) != parser.get_default(n)]
        if given:
            options = ", ".join("--" + n.replace("_", "-") for n in given)
            parser.error(f"{options}: phantom options, they do not apply with --bids")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = [f * 3 if len(f) == 1 else f for f in args.lr_settings]
    if args.bids:
        from swigapp.models.cohort import bids_pool

        try:
            pool = bids_pool(args.bids, progress=not args.quiet)
        except ValueError as err:  # InputError and ProtocolError name the file
            print(f"swigapp-train: error: {err}", file=sys.stderr)
            return 1
        data = {"source": "bids", "path": str(args.bids), "subjects": len(pool)}
    else:
        pool, data = _phantom_pool(args, settings)
    if args.w_anchor and not args.init:
        parser.error("--w-anchor needs --init (the model to stay near)")
    config = _train_config(args, data)
    if args.init:
        try:
            config.init = init_weights(args.init)
        except FileNotFoundError as err:
            print(f"swigapp-train: error: --init: {err}", file=sys.stderr)
            return 1
    try:
        path = train(config, pool, args.out_dir, device=args.device, progress=not args.quiet)
    except (ValueError, RuntimeError) as err:
        print(f"swigapp-train: error: {err}", file=sys.stderr)
        return 1
    print(f"model written to {path}")
    return 0
