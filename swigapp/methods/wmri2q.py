"""``--method wmri2q``: the U-Net that estimates the maps from the weighted images alone."""

from __future__ import annotations

from typing import Any

import numpy as np

from swigapp.methods import Request
from swigapp.methods.network import load_network, predict
from swigapp.models.features import SubjectTensors


def super_resolve(subject: SubjectTensors, request: Request) -> tuple[np.ndarray, dict[str, Any]]:
    """wmri2q inference (no per-subject adaptation: the CLI refuses ``--adapt-steps``)."""
    model, record = load_network("wmri2q", request.model_path)
    maps, axes, spread = predict(model, subject, request, record.get("uncertainty_calibration"))
    return maps, {"model": record, "slice_axes": axes, "uncertainty": spread}
