"""What the network methods (SWIG, wmri2q) share: loading their weights and predicting
slice by slice along the least-downsampled axes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swigapp.methods import DEFAULT_WEIGHTS, Request
from swigapp.text import Sentence, dims, join

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from swigapp.models.features import SubjectTensors
    from swigapp.results import SuperResolution


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


#: Loss terms of the training configuration (swigapp-train weights), as methods text.
LOSS_TERMS = {
    "guide": "consistency of the guides synthesised from the predicted maps through their "
    "signal equations with the acquired guides (intensity scale solved in closed form)",
    "lr": "consistency of the k-space-truncated prediction with the low-resolution maps",
    "supervised": "L1 supervision by the phantoms' high-resolution truth",
    "edge": "a scale-invariant Sobel edge loss between synthesised and acquired guides",
    "lowres": "L1 against the low-resolution maps upsampled to the high-resolution grid "
    "(low-resolution labels)",
    "linear": "supervision in the linear domain",
    "beyond": "supervision of the detail outside the low-resolution k-space band",
}


def training_text(card: Mapping[str, Any] | None) -> list[Sentence]:
    """How the network was trained, from its model card (methods text)."""
    if not card:
        return [("No model card was found for this model, so its training is not described", ())]
    t = card.get("training", {})
    terms = [
        f"{LOSS_TERMS.get(k, k)} (weight {w:g})"
        for k, w in t.get("weights", {}).items()
        if w and w > 0
    ]
    data = t.get("data", {})
    refs: tuple[str, ...] = ()
    if data.get("source") == "phantom":
        phantom = data.get("phantom", {})
        lesions = phantom.get("n_lesions")
        where = (
            f"{data.get('subjects')} synthetic subjects made by swigapp-phantom from "
            "deformations of the ICBM 2009 template anatomy"
            + (f", with {lesions} white-matter lesions each" if lesions else "")
            + (f" (phantom seed {data['phantom_seed']})" if "phantom_seed" in data else "")
        )
        settings = data.get("lr_settings")
        if settings:
            where += ", at low resolutions " + join([dims(s, "g") + " mm" for s in settings])
        if data.get("randomisation"):
            where += (
                "; each subject drew its own tissue values, guide protocols, mismatch between "
                "sidecar and acquisition, noise, bias, guide resolution, deformation, atrophy "
                "and lesion load (domain randomisation)"
            )
        refs = ("fonov2009icbm",)
    else:
        where = f"{data.get('subjects', 'the')} subjects of a BIDS cohort"
    init = t.get("init")
    start = (
        f"fine-tuned from earlier weights (sha256 {str(init.get('sha256'))[:12]}...)"
        if isinstance(init, Mapping)
        else "trained from scratch"
    )
    hw = card.get("hardware", {})
    return [
        (
            f"The network ({card.get('parameters', 0):,} parameters) was {start} for "
            f"{t.get('steps')} steps (batch {t.get('batch_size')}, Adam, learning rate "
            f"{t.get('learning_rate'):g}) on {where}, with a loss of {join(terms)}"
            + (
                f"; training took {card['training_seconds']:.0f} s on {hw.get('device', '?')}"
                if "training_seconds" in card
                else ""
            ),
            refs,
        )
    ]


def model_name(model: Mapping[str, Any]) -> str:
    """The weights a network ran with: shipped name, version and release, or the file,
    with the sha256."""
    if model.get("version"):
        return (
            f"model {model['name']} version {model['version']}, introduced in swigapp "
            f"{model['introduced_in']}; sha256 {model['sha256']}"
        )
    return f"model file {model['name']}; sha256 {model['sha256']}"


def network_text(sr: SuperResolution, params: Mapping[str, Any]) -> list[Sentence]:
    """What the network methods share in the methods text: their training, the slice axes
    they ran along and the adaptation to the participant."""
    from swigapp.autoadapt import AUTO_STEPS
    from swigapp.models.shipped import card_for

    model = sr.model
    out = training_text(card_for(model))
    axes = sr.slice_axes or []
    if len(axes) > 1:
        listed = join([str(a) for a in axes])
        out.append(
            (
                f"Predictions slice by slice along each of the voxel axes {listed} (the "
                "least-downsampled axes) were averaged (PD, ln T1, ln T2); their standard "
                "deviation, converted to the maps' units, is reported as a per-voxel "
                "uncertainty map",
                (),
            )
        )
    elif axes:
        out.append((f"The network ran slice by slice along voxel axis {axes[0]}", ()))
    adaptation = sr.adaptation or {}
    steps = int(adaptation.get("steps", 0) if adaptation else params.get("adapt_steps") or 0)
    if adaptation.get("mode") == "auto":
        out.append(
            (
                "Adaptation to this participant was decided automatically: the network "
                f"is adapted ({steps or AUTO_STEPS} steps of the physics-informed loss without "
                "supervision, anchored to the pre-trained prediction) only where the "
                "pre-trained maps fail a data-consistency check, and the adapted maps "
                f"are kept only if they pass both checks. Here: {adaptation['reason']}",
                ("samadifardheris2025swig",),
            )
        )
    elif steps:
        losses = sr.adapt_losses or []
        last = f" (final loss {losses[-1]:.4g})" if losses else ""
        out.append(
            (
                f"Before inference the network was adapted to this participant for {steps} "
                "steps of the physics-informed loss without supervision (guide and "
                f"low-resolution consistency){last}",
                ("samadifardheris2025swig",),
            )
        )
    else:
        out.append(("The network was not adapted to this participant", ()))
    return out
