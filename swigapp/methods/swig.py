"""``--method swig``: the SWIG network, after optional per-subject adaptation."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Self

from swigapp.methods import MethodOptions, Request, option, step_count
from swigapp.methods.network import load_network, model_name, network_text, predict
from swigapp.text import Sentence

if TYPE_CHECKING:
    import numpy as np

    from swigapp.models.features import SubjectTensors
    from swigapp.results import SuperResolution


def _adapt_steps(text: str) -> int | str:
    """argparse type: ``auto`` or a step count >= 0."""
    if text == "auto":
        return text
    try:
        return step_count(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 'auto' or a step count, got {text!r}") from None


@dataclass(frozen=True)
class Options(MethodOptions):
    """SWIG's options: steps of per-subject adaptation before inference."""

    adapt_steps: int | str = option(
        "--adapt-steps",
        0,
        "--method swig: per-subject self-supervised fine-tuning steps before inference, "
        "anchored to the pre-trained prediction; auto: 30 steps only where the pre-trained "
        "maps fail a data-consistency check, kept only if the adapted maps pass it (default 0)",
        type=_adapt_steps,
        metavar="N|auto",
    )

    @property
    def adaptation(self) -> int | str:
        """The steps asked for, or ``"auto"``."""
        return self.adapt_steps

    def with_adaptation(self, steps: int) -> Self:
        """These options with ``steps`` of adaptation."""
        return replace(self, adapt_steps=int(steps))

    def fallback(self, method: str) -> str | None:
        """SWIG runs without guides (it was trained with guides left out)."""
        return method


def super_resolve(subject: SubjectTensors, request: Request) -> tuple[np.ndarray, dict[str, Any]]:
    """SWIG inference after the options' steps of adaptation to this subject (a count:
    the participant level resolves ``auto``)."""
    from swigapp.models.inference import adapt

    model, record = load_network("swig", request.model_path)
    losses: list[float] = []
    steps = int(request.options.adaptation)
    if steps > 0:
        model, raw = adapt(model, subject, steps, seed=request.seed, device=request.device)
        losses = [round(v, 6) for v in raw]
    maps, axes, spread = predict(model, subject, request, record.get("uncertainty_calibration"))
    return maps, {"model": record, "adapt_losses": losses, "slice_axes": axes,
                  "uncertainty": spread}  # fmt: skip


def methods_text(sr: SuperResolution, params: Mapping[str, Any], guides: str) -> list[Sentence]:
    """This method's sentences of the methods text (``guides``: the guides, joined)."""
    model = sr.model
    first: Sentence = (
        "High-resolution PD, T1 and T2 maps were estimated with SWIG, a "
        "physics-informed, weighted-image-guided super-resolution method, as "
        "implemented in swigapp: a 2.5D residual convolutional network "
        f"({model_name(model)}) takes the zero-filled upsampled low-resolution "
        f"maps and the registered guides ({guides}) and predicts PD, ln T1 and "
        "ln T2",
        ("samadifardheris2025swig",),
    )
    return [first, *network_text(sr, params)]
