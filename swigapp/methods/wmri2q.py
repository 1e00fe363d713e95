"""``--method wmri2q``: the U-Net that estimates the maps from the weighted images alone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from swigapp.methods import MethodOptions, Request
from swigapp.methods.network import load_network, model_name, network_text, predict
from swigapp.text import Sentence

if TYPE_CHECKING:
    import numpy as np

    from swigapp.models.features import SubjectTensors
    from swigapp.results import SuperResolution

#: wmri2q takes no options of its own; with no guide it has nothing to run on, so where
#: no guide saw a voxel the interpolated LR maps stand.
Options = MethodOptions


def super_resolve(subject: SubjectTensors, request: Request) -> tuple[np.ndarray, dict[str, Any]]:
    """wmri2q inference (no per-subject adaptation)."""
    model, record = load_network("wmri2q", request.model_path)
    maps, axes, spread = predict(model, subject, request, record.get("uncertainty_calibration"))
    return maps, {"model": record, "slice_axes": axes, "uncertainty": spread}


def methods_text(sr: SuperResolution, params: Mapping[str, Any], guides: str) -> list[Sentence]:
    """This method's sentences of the methods text (``guides``: the guides, joined)."""
    model = sr.model
    first: Sentence = (
        "High-resolution PD, T1 and T2 maps were estimated from the registered "
        f"weighted images alone ({guides}) after Qiu et al.: a 2.5D U-Net "
        f"({model_name(model)}) trained with low-resolution labels and a "
        "scale-invariant Sobel edge loss; the low-resolution maps are not an input "
        "of the network",
        ("qiu2022hybrid",),
    )
    return [first, *network_text(sr, params)]
