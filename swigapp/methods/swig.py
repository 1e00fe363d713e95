"""``--method swig``: the SWIG network, after optional per-subject adaptation."""

from __future__ import annotations

from typing import Any

import numpy as np

from swigapp.methods import Request
from swigapp.methods.network import load_network, predict
from swigapp.models.features import SubjectTensors


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
