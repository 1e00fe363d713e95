"""What the network methods (SWIG, wmri2q) share: loading their weights and predicting
slice by slice along the least-downsampled axes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from swigapp.methods import DEFAULT_WEIGHTS, Request
from swigapp.models.features import SubjectTensors


def load_network(method: str, model_path: str | None) -> tuple[nn.Module, dict[str, Any]]:
    """The network of a method (a model file, a shipped model's name, else the method's
    default weights) and its record: name, path, sha256, and for shipped weights their
    version, the swigapp release that introduced them and, where the card has one, the
    calibration of their uncertainty (:mod:`swigapp.uncertainty`)."""
    from swigapp.models.shipped import load_shipped, model_card, shipped_name, weights_dir
    from swigapp.models.train import load_model, sha256

    name = shipped_name(model_path) if model_path else DEFAULT_WEIGHTS[method]
    if name is None:
        record = {"name": Path(str(model_path)).name, "path": str(model_path)}
        return load_model(str(model_path)), record | {"sha256": sha256(str(model_path))}
    card = model_card(name)
    record = {"name": name, "version": card["version"], "introduced_in": card["introduced_in"]}
    record |= {"path": str(weights_dir() / f"{name}.pt"), "sha256": card["sha256"]}
    if "uncertainty_calibration" in card:
        record["uncertainty_calibration"] = card["uncertainty_calibration"]
    return load_shipped(name), record


def predict(
    model: nn.Module,
    subject: SubjectTensors,
    request: Request,
    calibration: dict[str, Any] | None = None,
) -> tuple[np.ndarray, list[int], np.ndarray | None]:
    """HR maps averaged over the least-downsampled slice axes (the last one only with
    ``request.single_orientation``), those axes, and their uncertainty: the spread of the
    per-axis predictions (:func:`swigapp.models.inference.predict_ensemble`; None with one
    axis) through ``calibration`` (:func:`swigapp.uncertainty.calibrated`; None: raw)."""
    from swigapp.models.inference import predict_ensemble, slice_axes
    from swigapp.uncertainty import calibrated

    axes = slice_axes(subject)
    chosen = list(axes[-1:] if request.single_orientation else axes)
    maps, spread = predict_ensemble(model, subject, chosen, device=request.device)
    return maps, chosen, calibrated(spread, maps, calibration)
