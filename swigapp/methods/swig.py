"""``--method swig``: the SWIG network, after optional per-subject adaptation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from swigapp.methods import Request
from swigapp.methods.network import load_network, model_name, network_text, predict
from swigapp.models.features import SubjectTensors
from swigapp.text import Sentence

if TYPE_CHECKING:
    from swigapp.results import SuperResolution


def super_resolve(subject: SubjectTensors, request: Request) -> tuple[np.ndarray, dict[str, Any]]:
    """SWIG inference after ``request.adapt_steps`` steps of adaptation to this subject."""
    from swigapp.models.inference import adapt

    model, record = load_network("swig", request.model_path)
    losses: list[float] = []
    if request.adapt_steps > 0:
        model, raw = adapt(
            model, subject, request.adapt_steps, seed=request.seed, device=request.device
        )
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
