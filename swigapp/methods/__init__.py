"""The super-resolution methods of the participant level: one module per method, one
registry line each.

A method module defines ``super_resolve(subject, request) -> (maps, record)``: ``subject``
is the :class:`~swigapp.models.features.SubjectTensors` of one participant, ``request`` a
:class:`Request`; it returns the HR maps (3, X, Y, Z: PD, T1 s, T2 s) and a JSON-ready
record for the provenance (model, adaptation losses, slice axes or fit summary). The record
may hold one array, ``uncertainty`` (3, X, Y, Z, map units, or None): the caller writes it
as the uncertainty maps and drops it from the record. This
package imports nothing heavy, so that the command-line parser can list the methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

from swigapp.models.inr_choices import INITS, STOP_RULES

if TYPE_CHECKING:
    import numpy as np
    import torch

    from swigapp.models.features import SubjectTensors
    from swigapp.results import SuperResolution


@dataclass(frozen=True)
class MethodInfo:
    """A registered method: its module, description (the maps' EstimationAlgorithm), the
    shipped weights it uses by default, the network architecture it runs, if any, and
    whether it runs without guides."""

    module: str
    description: str
    default_weights: str | None = None
    arch: str | None = None
    #: The method runs with no guide at all (the network was trained with guides left
    #: out): it then serves as its own fallback where no guide saw a voxel.
    guide_free: bool = False
    #: Command-line options that only this method takes: (flag, its value when not given).
    options: tuple[tuple[str, Any], ...] = ()


#: What ``--method inr`` corrects (``--inr-init``) and how it stops (``--inr-stop``).
INR_INITS, INR_STOP_RULES = INITS, STOP_RULES


@dataclass(frozen=True)
class Request:
    """What the participant level asks of a method (all methods get the same fields)."""

    device: torch.device
    model_path: str | None = None
    adapt_steps: int = 0
    seed: int = 0
    inr_max_steps: int | None = None
    inr_init: str = "lr"
    inr_stop: str = "auto"
    single_orientation: bool = False
    voxel_size: tuple[float, ...] = (1.0, 1.0, 1.0)


REGISTRY: dict[str, MethodInfo] = {
    "swig": MethodInfo(
        "swigapp.methods.swig",
        "SWIG: weighted-image-guided super-resolution, a 2.5D CNN trained with a "
        "physics-informed self-supervised loss (swigapp)",
        default_weights="swig_default",
        arch="resnet",
        guide_free=True,
        options=(("--adapt-steps", 0),),
    ),
    "inr": MethodInfo(
        "swigapp.methods.inr",
        "Subject-specific implicit neural representation (multi-resolution feature grids "
        "and a shared network with one head per map; after McGinnis et al., MICCAI 2023) "
        "fitted to this subject by guide consistency through the signal equations and LR "
        "consistency through the acquisition model (swigapp)",
        options=(("--inr-init", "lr"), ("--inr-stop", "auto"), ("--inr-max-steps", 0)),
    ),
    "wmri2q": MethodInfo(
        "swigapp.methods.wmri2q",
        "wmri2q: maps from the weighted images alone by a 2.5D U-Net trained with "
        "low-resolution labels and a scale-invariant Sobel edge loss (after Qiu et al., "
        "ISMRM 2022; swigapp)",
        default_weights="wmri2q_hybrid",
        arch="unet",
    ),
}

#: Super-resolution methods of the participant level (``--method``).
METHODS = tuple(REGISTRY)
#: Shipped weights used by each network method when no model file is given.
DEFAULT_WEIGHTS = {k: m.default_weights for k, m in REGISTRY.items() if m.default_weights}
#: Network architecture (``NetConfig.arch``) each network method runs.
METHOD_ARCH = {k: m.arch for k, m in REGISTRY.items() if m.arch}
#: Methods that run with no guide (their own fallback where no guide saw a voxel).
GUIDE_FREE = tuple(k for k, m in REGISTRY.items() if m.guide_free)
#: What each method is, for the maps' EstimationAlgorithm.
METHOD_DESCRIPTIONS = {k: m.description for k, m in REGISTRY.items()}


def run_method(
    method: str, subject: SubjectTensors, request: Request
) -> tuple[np.ndarray, dict[str, Any]]:
    """Super-resolve ``subject`` with the registered ``method``; ValueError if unknown."""
    if method not in REGISTRY:
        raise ValueError(f"unknown method {method!r} (choose from {', '.join(METHODS)})")
    return import_module(REGISTRY[method].module).super_resolve(subject, request)


def foreign_options(method: str, given: Mapping[str, Any]) -> str | None:
    """The error when options of another method were given to ``method`` (``given``: the
    parsed command line by destination, e.g. ``vars(args)``), else None."""
    for owner, info in REGISTRY.items():
        if owner == method:
            continue
        flags = [
            f for f, unset in info.options if given.get(f[2:].replace("-", "_"), unset) != unset
        ]
        if flags:
            return f"{', '.join(flags)}: only for --method {owner}, not {method}"
    return None


def methods_text(
    method: str, sr: SuperResolution, params: Mapping[str, Any], guides: str
) -> list[tuple[str, tuple[str, ...]]]:
    """The methods-text sentences (text, citation keys) the registered ``method`` writes
    about its run (``sr``: the super-resolution step's result; ``guides``: joined names)."""
    return import_module(REGISTRY[method].module).methods_text(sr, params, guides)


def fallback_method(method: str, request: Request) -> str | None:
    """The method run with no guide where no guide saw a voxel: a guide-free method itself,
    SWIG for the INR over SWIG (the base it refines), otherwise None (the upsampled LR
    maps)."""
    if method in GUIDE_FREE:
        return method
    if method == "inr" and request.inr_init == "swig":
        return "swig"
    return None
