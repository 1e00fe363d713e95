"""What one participant's derivatives are: every map, mask, transform and contrast with
its sidecar (sources, units, method, resolution), the maps fitted from raw series, the
uncertainty maps, PD in the input's scale."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swigapp.io.bids import MAP_ORDER, MAP_SUFFIX
from swigapp.io.files import dumps
from swigapp.io.naming import bids_uri, entity_name, subject_dir
from swigapp.uncertainty import describe

if TYPE_CHECKING:
    import numpy as np

    from swigapp.results import GuideRegistration, SuperResolution, Synthesised

MAP_UNITS = {"PD": "arbitrary", "T1": "s", "T2": "s"}


def _round(value: Any, digits: int = 6) -> Any:
    """Floats rounded, and NaN/Inf as null (JSON has no NaN: e.g. the LR residual of a map
    that was not acquired)."""
    if isinstance(value, float):
        return round(value, digits) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _round(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v, digits) for v in value]
    return value


def participant_outputs(
    subject: str,
    session: str | None,
    bids_dir: str | Path,
    sources: Mapping[str, str],
    results: Mapping[str, Any],
    params: Mapping[str, Any],
    work_dir: str | Path,
) -> dict[str, Path | str]:
    """Every derivative of one participant: relative output path -> file or JSON text.

    ``sources``: input name (PD, T1, T2, or a guide) -> input path; ``results``: the step
    results of :mod:`swigapp.participant` under keys conform, mask, registration (per
    guide), superres, synthesis; ``params``: the run's parameters (recorded in sidecars),
    with ``method_descriptions`` (method name -> one line:
    :data:`swigapp.methods.METHOD_DESCRIPTIONS`).
    The SR maps are split into one file per map in ``work_dir``.
    """
    from swigapp.io.files import load_maps
    from swigapp.operators.grid import voxel_sizes

    label = f"sub-{subject}" + (f"_ses-{session}" if session else "")
    out = _Outputs(label, subject_dir("", subject, session), Path(work_dir))
    out.uri = {k: bids_uri(v, bids_dir) for k, v in sources.items()}
    out.uri |= fitted_outputs(label, out.anat, results.get("fit"), bids_dir, out.files)
    out.map_uris = [out.uri[m] for m in results["conform"].acquired]
    sr_maps = load_maps(results["superres"].sr_file)
    maps, affine = sr_maps.data, sr_maps.affine
    vox = "x".join(f"{v:g}" for v in voxel_sizes(affine))
    out.resolution = f"{vox} mm voxels on the field of view of the acquired low-resolution maps"
    mask_uri = out.add(
        entity_name(label, "mask", res="hi", desc="brain"),
        results["mask"].mask_file,
        {
            "Type": "Brain",
            "Resolution": out.resolution,
            "Sources": out.map_uris,
            "Method": results["mask"].method,
        },
    )
    out.registrations(results["registration"], params["transform"])
    map_names = out.maps(maps, affine, results, params, mask_uri)
    sr = results["superres"]
    if sr.uncertainty_file:
        out.uncertainty(sr, results["conform"].pd_scale, map_names)
    out.contrasts(results["synthesis"], params, list(map_names.values()))
    return out.files


class _Outputs:
    """One participant's derivatives as they are assembled: ``files`` (relative output path
    -> file or JSON text), the inputs' URIs (``uri``; ``map_uris``: the acquired maps') and
    the HR grid in words (``resolution``)."""

    def __init__(self, label: str, anat: Path, work: Path) -> None:
        self.label, self.anat, self.work = label, anat, work
        self.files: dict[str, Path | str] = {}
        self.uri: dict[str, str] = {}
        self.map_uris: list[str] = []
        self.guides: list[str] = []
        self.resolution = ""

    def add(self, name: str, image: Path | str, sidecar: dict[str, Any]) -> str:
        """An image and its sidecar; returns the image's BIDS URI."""
        self.files[str(self.anat / name)] = Path(image)
        self.files[str(self.anat / name.replace(".nii.gz", ".json"))] = dumps(_round(sidecar))
        return f"bids::{(self.anat / name).as_posix()}"

    def registrations(self, registration: Mapping[str, GuideRegistration], transform: str) -> None:
        """Each registered guide with its ANTs transforms."""
        self.guides = list(registration)
        for guide, reg in registration.items():
            xfm_names = []
            for i, xfm in enumerate(reg.transform_files):
                ext = "".join(Path(xfm).suffixes)
                extra = f"{i}" if len(reg.transform_files) > 1 else ""
                xfm_name = entity_name(
                    self.label, "xfm", ext, **{"from": guide + extra}, to="qmri", mode="image"
                )
                self.files[str(self.anat / xfm_name)] = Path(xfm)
                xfm_names.append(xfm_name)
            self.add(
                entity_name(self.label, guide, res="hi", desc="registered"),
                reg.registered_file,
                {
                    "Resolution": self.resolution,
                    "SkullStripped": False,
                    "Sources": [self.uri[guide], *self.map_uris],
                    "RegistrationMethod": (
                        f"ANTs {transform} registration (Mattes mutual information) to the "
                        f"{guide} contrast synthesised from the upsampled LR maps"
                    ),
                    "Transforms": xfm_names,
                    "MutualInformation": reg.metric,
                },
            )

    def maps(
        self,
        maps: np.ndarray,
        affine: np.ndarray,
        results: Mapping[str, Any],
        params: Mapping[str, Any],
        mask_uri: str,
    ) -> dict[str, str]:
        """The SR maps (the estimated ones only with ``write_estimated``), one file each,
        PD in the input's scale; returns map name -> URI."""
        from swigapp.io.files import save_nifti

        sr, conform = results["superres"], results["conform"]
        provenance = _provenance(results, params, self.guides)
        estimated = conform.estimated
        map_names = {}
        for i, m in enumerate(MAP_ORDER):
            if m in estimated and not params.get("write_estimated"):
                continue
            pd_scale = conform.pd_scale if m == "PD" else None
            data = in_input_scale(maps[i], pd_scale)
            path = save_nifti(self.work / f"sr_{m}.nii.gz", data, affine)
            desc = "estimated" if m in estimated else sr.method
            sidecar = {
                "Units": output_units(m, pd_scale),
                **_pd_scaling(pd_scale),
                "Resolution": self.resolution,
                "SkullStripped": False,
                "Sources": [*self.map_uris, *(self.uri[g] for g in self.guides), mask_uri],
                "EstimationAlgorithm": params["method_descriptions"][sr.method],
                **(
                    {"Description": ESTIMATED_DESCRIPTION.format(m=m, how=estimated[m])}
                    if m in estimated
                    else {}
                ),
                "DataConsistency": {
                    "LRResidual": sr.lr_residual[m],
                    "LRResidualOfInput": sr.lr_residual_input[m],
                    "GuideSSIM": results["synthesis"].guide_ssim,
                },
                **provenance,
            }
            name = entity_name(self.label, MAP_SUFFIX[m], res="hi", desc=desc)
            map_names[m] = self.add(name, path, sidecar)
        return map_names

    def uncertainty(
        self, sr: SuperResolution, pd_scale: Mapping[str, Any] | None, map_names: dict[str, str]
    ) -> None:
        """The orientation-ensemble spread of each written map."""
        calibration = (sr.model or {}).get("uncertainty_calibration")
        for m, path in uncertainty_maps(sr, pd_scale, self.work).items():
            if m not in map_names:
                continue
            self.add(
                entity_name(self.label, MAP_SUFFIX[m], res="hi", desc=f"{sr.method}Uncertainty"),
                path,
                {
                    "Units": output_units(m, pd_scale if m == "PD" else None),
                    "Resolution": self.resolution,
                    "SkullStripped": False,
                    "Description": UNCERTAINTY_DESCRIPTION + describe(calibration),
                    "Sources": [map_names[m]],
                    "SliceAxes": sr.slice_axes,
                }
                | ({"Calibration": calibration} if calibration else {}),
            )

    def contrasts(self, synth: Synthesised, params: Mapping[str, Any], map_uris: list[str]) -> None:
        """The guides re-synthesised from the SR maps (QC) and the requested contrasts."""
        jobs = [
            (guide, "synthguide", path, params["guide_protocols"][guide], {
                "SSIMToAcquired": synth.guide_ssim[guide],
                "Description": f"{guide} synthesised from the SR maps with the acquired "
                f"{guide}'s protocol (quality control)",
            })
            for guide, path in synth.guide_synth_files.items()
        ] + [
            (name, "synth", path, params["synth_protocols"][name], {})
            for name, path in synth.synth_files.items()
        ]  # fmt: skip
        for contrast, desc, path, protocol, extra in jobs:
            sidecar = {"Resolution": self.resolution, "SkullStripped": False}
            sidecar |= {"Sources": map_uris, "Protocol": protocol, **extra}
            self.add(entity_name(self.label, contrast, res="hi", desc=desc), path, sidecar)


def _provenance(
    results: Mapping[str, Any], params: Mapping[str, Any], guides: list[str]
) -> dict[str, Any]:
    """The sidecar fields every SR map shares: method, model, acquisition, guides,
    adaptation, seed, device, software."""
    sr, acquisition = results["superres"], results["conform"].acquisition
    adaptation = sr.adaptation or {}
    return {
        "Method": sr.method,
        "Model": sr.model,
        **({"AcquisitionModel": acquisition} if acquisition else {}),
        "Guides": guides,
        "GuideProtocols": params["guide_protocols"],
        "AdaptSteps": params["adapt_steps"],
        **({"AdaptDecision": adaptation["reason"]} if adaptation.get("mode") == "auto" else {}),
        "AdaptLosses": sr.adapt_losses,
        **({"SliceAxes": sr.slice_axes} if sr.slice_axes else {}),
        **({"INRFit": sr.inr} if sr.inr else {}),
        "Seed": params["seed"],
        "Device": sr.device,
        "SoftwareDependencies": params["versions"],
    }


def _pd_scaling(pd_scale: Mapping[str, Any] | None) -> dict[str, Any]:
    """The PD map's ``PDScaling`` sidecar entry when the input PD was rescaled."""
    if not pd_scale:
        return {}
    return {
        "PDScaling": {
            "Description": "the network works on the input PD times Factor (a water "
            "fraction); this map was divided by Factor: it is in the input's scale",
            "Reference": pd_scale["reference"],
            "ReferenceValue": pd_scale["reference_value"],
            "Factor": pd_scale["factor"],
            "Rule": pd_scale["rule"],
            "InputUnits": pd_scale["input_units"],
        }
    }


#: What an estimated map is (``--write-estimated``), for its sidecar.
ESTIMATED_DESCRIPTION = (
    "NOT A MEASUREMENT: {m} was not acquired. The LR input for {m} was {how}, and the "
    "super-resolution method refined it with the guides; it served only the physics terms "
    "(guide synthesis). No LR-consistency check applies to it."
)
#: What the uncertainty maps are, for their sidecars and the report.
UNCERTAINTY_DESCRIPTION = (
    "Uncertainty of the super-resolved map: the standard deviation over the orientation "
    "ensemble (one 2.5D prediction per least-downsampled slice axis), taken in the "
    "network's domain (PD, ln T1, ln T2) and converted to the map's units (for T1 and T2: "
    "SD of ln T times T). 0 outside the brain mask. It is large where the predictions "
    "along different axes disagree; it does not include the LR input's noise."
)


def fitted_outputs(
    label: str,
    anat: Path,
    fit: Mapping[str, Any] | None,
    bids_dir: str | Path,
    files: dict[str, Path | str],
) -> dict[str, str]:
    """Add the maps fitted from raw series (``res-lo_desc-fit<KIND>_<T1map|T2map|M0map>``)
    and their residual maps to ``files``, with sidecars whose Sources name the raw images;
    returns map name -> the fitted map's URI (the source of the SR map)."""
    from swigapp.io.raw_qmri import FIT_SUFFIX, RESIDUAL_SUFFIX

    if not fit:
        return {}
    uris: dict[str, str] = {}
    by_suffix = {v: k for k, v in FIT_SUFFIX.items()}
    for kind, record in fit["series"].items():
        sources = [bids_uri(f, bids_dir) for f in record["files"]]
        for suffix, out in record["outputs"].items():
            name = entity_name(label, suffix, res="lo", desc=f"fit{kind}")
            files[str(anat / name)] = Path(out["file"])
            sidecar = {**out["sidecar"], "Sources": sources}
            if suffix != RESIDUAL_SUFFIX:
                sidecar |= {"Resolution": "the grid of the raw series", "SkullStripped": False}
            files[str(anat / name.replace(".nii.gz", ".json"))] = dumps(_round(sidecar))
            if suffix != RESIDUAL_SUFFIX:
                uris[by_suffix[suffix]] = f"bids::{(anat / name).as_posix()}"
    return uris


def uncertainty_maps(
    sr: SuperResolution, pd_scale: Mapping[str, Any] | None, work: Path
) -> dict[str, Path]:
    """The uncertainty of each map as its own NIfTI in ``work`` (PD in the input's scale,
    as the PD map)."""
    from swigapp.io.files import load_maps, save_nifti

    loaded = load_maps(sr.uncertainty_file)
    spread, affine = loaded.data, loaded.affine
    out = {}
    for i, m in enumerate(MAP_ORDER):
        data = in_input_scale(spread[i], pd_scale if m == "PD" else None)
        out[m] = Path(save_nifti(work / f"sr_{m}_uncertainty.nii.gz", data, affine))
    return out


def in_input_scale(data: np.ndarray, pd_scale: Mapping[str, Any] | None) -> np.ndarray:
    """A PD map (or its uncertainty) back in the input's own scale: divided by the factor
    of ``pd_scale`` (the network works on a water fraction); other maps pass None."""
    if pd_scale and pd_scale["factor"] != 1.0:
        return (data / pd_scale["factor"]).astype(data.dtype)
    return data


def output_units(m: str, pd_scale: Mapping[str, Any] | None) -> str:
    """Units of map ``m`` as written (PD: the input's units when it was rescaled)."""
    return pd_scale.get("output_units", MAP_UNITS[m]) if pd_scale else MAP_UNITS[m]
