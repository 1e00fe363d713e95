"""The super-resolution methods of the participant level: one module per method, one
registry line each.

A method module defines:

- ``Options``: a frozen :class:`MethodOptions` dataclass of the options only it takes,
  each field declared with :func:`option` (its command-line flag and help), so that the
  parser, the Nipype node and the request carry them without naming them;
- ``super_resolve(subject, request) -> (maps, record)``: ``subject`` is the
  :class:`~swigapp.models.features.SubjectTensors` of one participant, ``request`` a
  :class:`Request` whose ``options`` are the method's ``Options``; it returns the HR maps
  (3, X, Y, Z: PD, T1 s, T2 s) and a JSON-ready record for the provenance (model,
  adaptation losses, slice axes or fit summary). The record may hold one array,
  ``uncertainty`` (3, X, Y, Z, map units, or None): the caller writes it as the
  uncertainty maps and drops it from the record;
- ``methods_text(sr, params, guides)``: its sentences of the methods text.

The modules import nothing heavy at the top (torch only inside their functions), so that
the command-line parser can list the methods and their options.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from importlib import import_module
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    import numpy as np
    import torch

    from swigapp.models.features import SubjectTensors
    from swigapp.results import SuperResolution


@dataclass(frozen=True)
class MethodInfo:
    """A registered method: its module and description (the maps' EstimationAlgorithm),
    the shipped weights it uses by default and the network architecture it runs, if
    any."""

    module: str
    description: str
    default_weights: str | None = None
    arch: str | None = None


def option(flag: str, default: Any, help: str, **argparse_kwargs: Any) -> Any:
    """A field of a method's :class:`MethodOptions`: its default, command-line ``flag``,
    ``help`` and further :meth:`argparse.ArgumentParser.add_argument` keywords."""
    metadata = {"flag": flag, "help": help, "argparse": argparse_kwargs}
    return field(default=default, metadata=metadata)


def step_count(text: str) -> int:
    """argparse type: a count >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


@dataclass(frozen=True)
class MethodOptions:
    """The options a method takes (none here); a method's ``Options`` subclasses it with
    fields made by :func:`option`. The record (:meth:`to_record`) is what travels through
    the workflow."""

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        """Add this method's flags to a parser group."""
        for f in fields(cls):
            meta = f.metadata
            group.add_argument(
                meta["flag"], default=f.default, help=meta["help"], **meta["argparse"]
            )

    @classmethod
    def given(cls, args: Mapping[str, Any]) -> list[str]:
        """The flags of this method set to other than their default in ``args`` (the parsed
        command line by destination, e.g. ``vars(args)``)."""
        return [f.metadata["flag"] for f in fields(cls) if args.get(f.name, f.default) != f.default]

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Self:
        """The options from a record or the parsed command line (other keys ignored)."""
        return cls(**{f.name: record[f.name] for f in fields(cls) if f.name in record})

    def to_record(self) -> dict[str, Any]:
        """The options as JSON-ready values, by field name."""
        return asdict(self)

    @property
    def adaptation(self) -> int | str:
        """Steps of per-subject adaptation asked for, or ``"auto"``
        (:func:`swigapp.autoadapt.decide`); 0: the method does not adapt."""
        return 0

    def with_adaptation(self, steps: int) -> Self:
        """These options with ``steps`` of adaptation (unchanged for a method that does not
        adapt)."""
        return self

    def fallback(self, method: str) -> str | None:
        """The method run with no guide where no guide saw a voxel (``method``: the one
        these options belong to): itself if it runs without guides, else another, else
        None (the interpolated LR maps)."""
        return None


@dataclass(frozen=True)
class Request:
    """What the participant level asks of a method: the torch device, the network weights
    (``model_path``: a model file or a shipped name; None: the method's default), the
    seed, one slice axis instead of the orientation ensemble, the HR voxel size (mm), and
    the method's own ``options``."""

    device: torch.device
    model_path: str | None = None
    seed: int = 0
    single_orientation: bool = False
    voxel_size: tuple[float, ...] = (1.0, 1.0, 1.0)
    options: MethodOptions = MethodOptions()


REGISTRY: dict[str, MethodInfo] = {
    "swig": MethodInfo(
        "swigapp.methods.swig",
        "SWIG: weighted-image-guided super-resolution, a 2.5D CNN trained with a "
        "physics-informed self-supervised loss (swigapp)",
        default_weights="swig_default",
        arch="resnet",
    ),
    "inr": MethodInfo(
        "swigapp.methods.inr",
        "Subject-specific implicit neural representation (multi-resolution feature grids "
        "and a shared network with one head per map; after McGinnis et al., MICCAI 2023) "
        "fitted to this subject by guide consistency through the signal equations and LR "
        "consistency through the acquisition model (swigapp)",
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
#: The method run when none is named.
DEFAULT_METHOD = METHODS[0]
#: Shipped weights used by each network method when no model file is given.
DEFAULT_WEIGHTS = {k: m.default_weights for k, m in REGISTRY.items() if m.default_weights}
#: Network architecture (``NetConfig.arch``) each network method runs.
METHOD_ARCH = {k: m.arch for k, m in REGISTRY.items() if m.arch}
#: What each method is, for the maps' EstimationAlgorithm.
METHOD_DESCRIPTIONS = {k: m.description for k, m in REGISTRY.items()}


def _module(method: str) -> Any:
    if method not in REGISTRY:
        raise ValueError(f"unknown method {method!r} (choose from {', '.join(METHODS)})")
    return import_module(REGISTRY[method].module)


def options_class(method: str) -> type[MethodOptions]:
    """The options dataclass of the registered ``method``; ValueError if unknown."""
    return _module(method).Options


def method_options(method: str, record: Mapping[str, Any] | None = None) -> MethodOptions:
    """``method``'s options from a record or the parsed command line (defaults for what it
    does not hold)."""
    return options_class(method).from_record(record or {})


def add_method_arguments(group: argparse._ArgumentGroup) -> None:
    """Every method's own flags, in registry order."""
    for method in METHODS:
        options_class(method).add_arguments(group)


def run_method(
    method: str, subject: SubjectTensors, request: Request
) -> tuple[np.ndarray, dict[str, Any]]:
    """Super-resolve ``subject`` with the registered ``method``; ValueError if unknown."""
    return _module(method).super_resolve(subject, request)


def foreign_options(method: str, given: Mapping[str, Any]) -> str | None:
    """The error when options of another method were given to ``method`` (``given``: the
    parsed command line by destination, e.g. ``vars(args)``), else None."""
    for owner in METHODS:
        flags = options_class(owner).given(given) if owner != method else []
        if flags:
            return f"{', '.join(flags)}: only for --method {owner}, not {method}"
    return None


def methods_text(
    method: str, sr: SuperResolution, params: Mapping[str, Any], guides: str
) -> list[tuple[str, tuple[str, ...]]]:
    """The methods-text sentences (text, citation keys) the registered ``method`` writes
    about its run (``sr``: the super-resolution step's result; ``guides``: joined names)."""
    return _module(method).methods_text(sr, params, guides)


def fallback_method(method: str, request: Request) -> tuple[str, Request] | None:
    """What runs with no guide where no guide saw a voxel, as the method's options say
    (:meth:`MethodOptions.fallback`), with its request (no adaptation; another method with
    its default options and weights), or None: the interpolated LR maps."""
    plain = request.options.fallback(method)
    if plain is None:
        return None
    if plain == method:
        return plain, replace(request, options=request.options.with_adaptation(0))
    return plain, replace(request, model_path=None, options=method_options(plain))
