"""``--method inr``: a representation fitted to this subject alone, over the upsampled LR
maps or over the SWIG prediction (``--inr-init swig``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from swigapp.methods import MethodOptions, Request, option, step_count
from swigapp.models.inr_choices import INITS, STOP_RULES
from swigapp.text import Sentence

if TYPE_CHECKING:
    import numpy as np

    from swigapp.models.features import SubjectTensors
    from swigapp.results import SuperResolution


@dataclass(frozen=True)
class Options(MethodOptions):
    """The INR's options: its step limit, what it corrects and how it stops."""

    inr_max_steps: int = option(
        "--inr-max-steps",
        0,
        "--method inr: most fitting steps; fitting may stop earlier by --inr-stop (default 0: 600)",
        type=step_count,
        metavar="N",
    )
    inr_init: str = option(
        "--inr-init",
        "lr",
        "--method inr: what the representation corrects: the upsampled LR maps, or "
        "the SWIG prediction (the INR then refines SWIG for this subject, held near it by a "
        "proximal term; on phantoms within noise of SWIG) (default lr)",
        choices=INITS,
    )
    inr_stop: str = option(
        "--inr-stop",
        "auto",
        "--method inr: stop when the mutual information between maps and guides stops "
        "rising, keeping the best state, the start included (mi, McGinnis et al.), or after "
        "--inr-max-steps (steps); auto: steps with --inr-init lr, mi with --inr-init swig "
        "(default auto)",
        choices=STOP_RULES,
    )

    def fallback(self, method: str) -> str | None:
        """Over SWIG, the SWIG network with no guide (the base it refines); over the LR
        maps, the interpolated LR maps."""
        return "swig" if self.inr_init == "swig" else None


def super_resolve(subject: SubjectTensors, request: Request) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit the INR (at most ``inr_max_steps`` steps when given, stopped by ``inr_stop``)
    over its base and render it on the HR grid."""
    from swigapp.models.inr import INRConfig, fit_inr, render_volume

    opts = request.options
    assert isinstance(opts, Options), opts
    config = INRConfig(seed=request.seed, init=opts.inr_init, stop=opts.inr_stop)
    if opts.inr_max_steps:
        config = replace(config, max_steps=int(opts.inr_max_steps))
    base, record = None, {}
    if config.init == "swig":
        from swigapp.methods.network import load_network, predict

        model, model_record = load_network("swig", None)
        base, axes, _ = predict(model, subject, request)
        record = {"model": model_record, "slice_axes": axes}
    fit = fit_inr(subject, request.voxel_size, config, device=request.device, base=base)
    maps = render_volume(fit, subject, device=request.device)
    return maps, {"inr": fit.summary(), **record}


def methods_text(sr: SuperResolution, params: Mapping[str, Any], guides: str) -> list[Sentence]:
    """This method's sentences of the methods text (``guides``: the guides, joined)."""
    out: list[Sentence] = []
    fit = sr.inr or {}
    c = fit.get("config", {})
    if c.get("encoding", "fourier") == "grid":
        spacings = ", ".join(f"{v:g}" for v in c.get("grid_spacings_mm", []))
        encoding = (
            f"multi-resolution dense feature grids ({c.get('grid_features')} features per "
            f"node, node spacings {spacings} mm, trilinear interpolation), a shared trunk "
            f"of {c.get('trunk_layers')} layers of width {c.get('width')}",
            ("mcginnis2023inr", "muller2022instant"),
        )
    else:
        encoding = (
            f"a coordinate MLP with {c.get('features')} Gaussian random Fourier features "
            f"(standard deviation {c.get('sigma')} cycles/mm), a shared trunk of "
            f"{c.get('trunk_layers')} layers of width {c.get('width')}",
            ("mcginnis2023inr", "tancik2020fourier"),
        )
    base = (
        "the SWIG network's prediction"
        if c.get("init") == "swig"
        else "the upsampled low-resolution maps"
    )
    out.append(
        (
            "High-resolution PD, T1 and T2 maps were estimated by a subject-specific "
            f"implicit neural representation after McGinnis et al., written for swigapp: "
            f"{encoding[0]} and one head per map, representing the correction to {base}",
            encoding[1],
        )
    )
    rule = (
        "; early stopping followed the mutual information between maps and guides (the "
        "state of its best check was kept)"
        if c.get("stop", "mi") == "mi"
        else "; it ran a fixed number of steps"
    )
    out.append(
        (
            f"It was fitted to this participant alone for {fit.get('steps')} steps "
            f"(stopped by {str(fit.get('stopped_by', '')).replace('_', ' ')}; at most "
            f"{c.get('max_steps')}) with guide consistency through the signal "
            f"equations ({guides}) and consistency with the low-resolution maps "
            "through the acquisition model"
            + (f", total variation of the grids weighted {c.get('tv'):g}" if c.get("tv") else "")
            + (
                f", and an L1 proximal term weighted {c.get('anchor'):g} holding the "
                "correction near its base"
                if c.get("anchor")
                else ""
            )
            + rule,
            ("mcginnis2023inr",),
        )
    )
    return out
