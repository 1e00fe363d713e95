"""``--method inr``: a representation fitted to this subject alone, over the upsampled LR
maps or over the SWIG prediction (``--inr-init swig``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from swigapp.methods import Request
from swigapp.models.features import SubjectTensors


def super_resolve(subject: SubjectTensors, request: Request) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit the INR (at most ``request.inr_max_steps`` steps when given, stopped by
    ``request.inr_stop``) over its base and render it on the HR grid."""
    from swigapp.models.inr import INRConfig, fit_inr, render_volume

    config = INRConfig(seed=request.seed, init=request.inr_init, stop=request.inr_stop)
    if request.inr_max_steps:
        config = replace(config, max_steps=int(request.inr_max_steps))
    base, record = None, {}
    if config.init == "swig":
        from swigapp.methods.network import load_network, predict

        model, model_record = load_network("swig", None)
        base, axes, _ = predict(model, subject, request)
        record = {"model": model_record, "slice_axes": axes}
    fit = fit_inr(subject, request.voxel_size, config, device=request.device, base=base)
    maps = render_volume(fit, subject, device=request.device)
    return maps, {"inr": fit.summary(), **record}
