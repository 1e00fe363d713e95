"""``--method inr``: a representation fitted to this subject alone."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from swigapp.methods import Request
from swigapp.models.features import SubjectTensors


def super_resolve(subject: SubjectTensors, request: Request) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit the INR (at most ``request.inr_max_steps`` steps when given) and render it on
    the HR grid of ``request.voxel_size`` mm voxels."""
    from swigapp.models.inr import INRConfig, fit_inr, render_volume

    config = INRConfig(seed=request.seed)
    if request.inr_max_steps:
        config = replace(config, max_steps=int(request.inr_max_steps))
    fit = fit_inr(subject, request.voxel_size, config, device=request.device)
    maps = render_volume(fit, subject, request.voxel_size, device=request.device)
    return maps, {"inr": fit.summary()}
