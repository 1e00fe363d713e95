"""The participant report (one self-contained HTML file) and its QC figures (a JSON)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import nibabel as nib
import numpy as np

from swigapp import tissue
from swigapp.io.files import load_maps
from swigapp.io.sidecars import UNCERTAINTY_DESCRIPTION
from swigapp.maps import MAP_ORDER
from swigapp.metrics import ls_scale
from swigapp.reports import figures
from swigapp.reports.boilerplate import regional_warnings
from swigapp.results import Masked
from swigapp.uncertainty import describe

#: Which guide illustrates which map in the mosaics (first present wins).
GUIDE_FOR_MAP = {"PD": ("PDw", "T1w", "T2w"), "T1": ("T1w", "FLAIR"), "T2": ("T2w", "FLAIR")}


def _load(path: str) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj, dtype=np.float32)


@dataclass
class ResultMaps:
    """A participant's result maps, loaded once for the QC and the report: ``maps`` (PD,
    T1 s, T2 s), the brain ``mask``, the tissue ``labels`` (:func:`swigapp.tissue.classify`)
    and the uncertainty maps ``spread`` (3, X, Y, Z, or None when the method wrote none)."""

    maps: dict[str, np.ndarray]
    mask: np.ndarray
    labels: np.ndarray
    spread: np.ndarray | None = None


def load_result_maps(results: Mapping[str, Any]) -> ResultMaps:
    """The :class:`ResultMaps` of a participant's step results."""
    sr = load_maps(results["superres"].sr_file).data
    mask = _load(results["mask"].mask_file) > 0
    maps = dict(zip(MAP_ORDER, sr, strict=True))
    path = results["superres"].uncertainty_file
    spread = load_maps(path).data if path else None
    return ResultMaps(maps, mask, tissue.classify(maps["T1"], mask), spread)


def participant_qc(
    results: Mapping[str, Any], timings: Mapping[str, float], loaded: ResultMaps
) -> dict[str, Any]:
    """Per-participant QC numbers: tissue medians (T1/T2 in s), data consistency,
    registration MI, guide SSIM, invalid LR voxels per map, unit decisions, the PD scale
    factor (internal / input), the fraction of the brain mask each guide's field of view
    covers, the fraction where the maps fell back (no guide saw it), the data-consistency
    checks per brain region and the regions that fell back to the interpolated LR maps
    (:mod:`swigapp.consistency`), the uncertainty medians (from the uncertainty maps, when
    the method wrote them) and wall time per step (s)."""
    maps, mask = loaded.maps, loaded.mask
    return {
        "Method": results["superres"].method,
        "TissueMedians": tissue.tissue_medians(maps, loaded.labels),
        "BrainVolume_ml": float(mask.sum()) * _voxel_ml(results["mask"].mask_file),
        **({"BrainMaskGuideCut": results["mask"].guide_cut} if results["mask"].guide_cut else {}),
        **(
            {"BrainMaskGuideRatioCut": results["mask"].guide_ratio_cut}
            if results["mask"].guide_ratio_cut
            else {}
        ),
        "LRResidual": results["superres"].lr_residual,
        "GuideSSIM": results["synthesis"].guide_ssim,
        "RegistrationMI": {g: r.metric for g, r in results["registration"].items()},
        "InputQuality": {
            m: {k: q[k] for k in ("invalid_in_head", "invalid_total", "invalid_fraction_in_head")}
            for m, q in results["conform"].input_quality.items()
        },
        "InputUnits": dict(results["conform"].units),
        "AcquiredMaps": list(results["conform"].acquired),
        **(
            {"EstimatedMaps": list(results["conform"].estimated)}
            if results["conform"].estimated
            else {}
        ),
        "PDScaleFactor": results["conform"].pd_scale.get("factor", 1.0),
        "GuideCoverage": {g: r.coverage for g, r in results["registration"].items()},
        "GuideFallbackFraction": results["superres"].guide_fallback_fraction,
        "GuideFallback": results["superres"].guide_fallback,
        "RegionalChecks": results["superres"].regions,
        "RegionalFallback": results["superres"].regional_fallback,
        "Adaptation": results["superres"].adaptation,
        **uncertainty_qc(loaded.spread, maps, mask),
        **fit_qc(results.get("fit")),
        "Seconds": dict(timings),
    }


def fit_qc(fit: Mapping[str, Any] | None) -> dict[str, Any]:
    """QC of the maps fitted from raw series: which map came from which series, and per
    series the voxels fitted and failed, the medians of its maps and its notes ({} when
    every map was read from a file)."""
    if not fit:
        return {}
    keys = ("signal_voxels", "failed_voxels", "medians", "notes", "seconds")
    return {
        "FittedMaps": dict(fit["maps"]),
        "Fits": {k: {key: r[key] for key in keys} for k, r in fit["series"].items()},
    }


def uncertainty_qc(
    spread: np.ndarray | None, maps: Mapping[str, np.ndarray], mask: np.ndarray
) -> dict[str, Any]:
    """Median uncertainty in the brain mask per map, in map units (PD a.u., T1 and T2 in
    s) and relative to the map (spread / value); empty without uncertainty maps."""
    if spread is None or not mask.any():
        return {}
    median = {m: float(np.median(spread[i][mask])) for i, m in enumerate(MAP_ORDER)}
    relative = {
        m: float(np.median(spread[i][mask] / np.maximum(maps[m][mask], 1e-6)))
        for i, m in enumerate(MAP_ORDER)
    }
    return {"UncertaintyMedian": median, "UncertaintyRelativeMedian": relative}


def _voxel_ml(path: str) -> float:
    return float(abs(np.linalg.det(nib.load(path).affine[:3, :3]))) / 1000.0


def _table(rows: Mapping[str, Any]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
        for k, v in rows.items()
    )
    return f"<table>{cells}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


STYLE = """
body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em}th,td{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top}img{max-width:100%}.flag{color:#b00;font-weight:bold}
.methods p{line-height:1.45}.methods ol{font-size:.85em}
.flicker{position:relative;display:inline-block}.flicker img{display:block}
.flicker .top{position:absolute;top:0;left:0;animation:flick 2s steps(1) infinite}
.flicker:hover .top{animation-play-state:paused}
@keyframes flick{0%{opacity:0}50%{opacity:1}}
"""
#: Colour-bar labels of the maps (PD relative to water, T1/T2 in seconds as in BIDS).
MAP_UNITS = {"PD": "PD (water = 1)", "T1": "T1 (s)", "T2": "T2 (s)"}


def page(title: str, body: str) -> str:
    """A self-contained HTML page."""
    return (
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )


def render_participant(
    label: str,
    results: Mapping[str, Any],
    params: Mapping[str, Any],
    qc: Mapping[str, Any],
    loaded: ResultMaps,
    methods_html: str = "",
) -> str:
    """HTML report: LR vs SR vs guide mosaics, registration overlays, synthesised vs acquired
    guides with differences, T1/T2 histograms in GM/WM, provenance, and the methods
    boilerplate (``methods_html``, an HTML fragment). The uncertainty maps are shown when
    the method wrote them."""
    registered = {g: _load(r.registered_file) for g, r in results["registration"].items()}
    parts = _summary_section(results, params, qc)
    parts += _maps_section(results, loaded, registered)
    if loaded.spread is not None:
        calibration = (results["superres"].model or {}).get("uncertainty_calibration")
        parts.append(_uncertainty_panel(loaded.spread, qc, loaded.mask, describe(calibration)))
    parts += _registration_section(results, registered, loaded.mask)
    parts += _synthesis_section(results["synthesis"], registered, loaded.mask)
    parts.append("<h2>T1 and T2 in grey and white matter (k-means on T1)</h2>")
    histograms = figures.histograms(loaded.maps, loaded.labels, tissue.LABELS)
    parts.append(f"<img alt='histograms' src='{histograms}'>")
    parts.append("<h2>Provenance</h2>")
    parts.append(_table(_provenance(results, params)))
    if methods_html:
        parts.append(methods_html)
    return page(f"swigapp report: {label}", "\n".join(parts))


def _summary_section(
    results: Mapping[str, Any], params: Mapping[str, Any], qc: Mapping[str, Any]
) -> list[str]:
    """The summary table and, flagged, where no guide saw and the regional warnings."""
    parts = ["<h2>Summary</h2>", _table(_summary(qc, results, params))]
    fallback = float(qc.get("GuideFallbackFraction", 0.0))
    if fallback > 0:
        parts.append(
            f"<p class='flag'>No guide covers {100 * fallback:.1f} % of the brain mask (the "
            "guides' fields of view end inside the maps' field of view): there the maps are "
            f"{html.escape(results['superres'].guide_fallback or 'unguided')}, with "
            "no guided detail.</p>"
        )
    for warning in regional_warnings(results["superres"]):
        parts.append(f"<p class='flag'>{html.escape(warning[0].upper() + warning[1:])}.</p>")
    return parts


def _maps_section(
    results: Mapping[str, Any], loaded: ResultMaps, registered: Mapping[str, np.ndarray]
) -> list[str]:
    """Per map: the LR map as acquired, the SR map and the registered guide that shows it."""
    from swigapp.operators.interp import upsample_interp

    lr = load_maps(results["conform"].lr_file).data
    method = str(results["superres"].method).upper()
    parts = [
        "<h2>Low-resolution input vs super-resolved maps</h2><p>The LR maps are shown as "
        "acquired (nearest-neighbour on the output grid), with the registered guide.</p>"
    ]
    for i, m in enumerate(MAP_ORDER):
        acquired = upsample_interp(lr[i], loaded.mask.shape, order=0)
        if m in results["conform"].estimated:
            cols = {
                f"{m} LR (NOT acquired: estimate)": acquired,
                f"{m} ({method}, estimate)": loaded.maps[m],
            }
        else:
            cols = {f"{m} LR (acquired voxels)": acquired, f"{m} SR ({method})": loaded.maps[m]}
        guide = next((g for g in GUIDE_FOR_MAP[m] if g in registered), None)
        if guide:
            cols[f"{guide} (registered)"] = registered[guide]
        uri = figures.mosaic(cols, loaded.mask, shared=list(cols)[:2], title=m, unit=MAP_UNITS[m])
        parts.append(f"<img alt='{m} mosaic' src='{uri}'>")
    return parts


def _registration_section(
    results: Mapping[str, Any], registered: Mapping[str, np.ndarray], mask: np.ndarray
) -> list[str]:
    """Per guide: its registration target and the registered guide, flickering."""
    parts = [
        "<h2>Registration</h2><p>Each frame pair alternates the registration target (the "
        "guide's contrast synthesised from the LR maps) and the registered guide; the red "
        "edges are the target's. Hover to pause.</p>"
    ]
    for g, r in results["registration"].items():
        target, moved = figures.flicker_frames(_load(r.fixed_file), registered[g], mask)
        parts.append(
            f"<h3>{html.escape(g)} -> qMRI</h3><div class='flicker'>"
            f"<img alt='{g} registration target' src='{target}'>"
            f"<img class='top' alt='{g} registered' src='{moved}'></div>"
        )
    return parts


def _synthesis_section(
    synthesis: Mapping[str, Any], registered: Mapping[str, np.ndarray], mask: np.ndarray
) -> list[str]:
    """Each guide re-synthesised from the SR maps against the acquired one, and the
    requested contrasts."""
    parts = ["<h2>Synthesised from the SR maps vs acquired guides</h2>"]
    for g, path in synthesis.guide_synth_files.items():
        synth = _load(path)
        scale = ls_scale(synth, registered[g], mask)
        cols = {
            f"{g} acquired": registered[g],
            f"{g} synthesised": synth * scale,
            "difference": np.abs(registered[g] - synth * scale),
        }
        ssim = synthesis.guide_ssim[g]
        uri = figures.mosaic(cols, mask, shared=list(cols)[:2], title=f"{g} (SSIM {ssim:.3f})")
        parts.append(f"<img alt='{g} synthesis' src='{uri}'>")
    if synthesis.synth_files:
        cols = {c: _load(p) for c, p in synthesis.synth_files.items()}
        parts.append("<h2>Synthesised contrasts</h2>")
        parts.append(f"<img alt='synthesised' src='{figures.mosaic(cols, mask)}'>")
    return parts


def _uncertainty_panel(
    spread: np.ndarray, qc: Mapping[str, Any], mask: np.ndarray, calibration: str = ""
) -> str:
    """The uncertainty maps (3, X, Y, Z) with their units and medians; ``calibration``:
    the sentence of :func:`swigapp.uncertainty.describe`."""
    cols = {f"{m} SD": spread[i] for i, m in enumerate(MAP_ORDER)}
    units = {f"{m} SD": MAP_UNITS[m] for m in MAP_ORDER}
    rel = qc.get("UncertaintyRelativeMedian", {})
    medians = ", ".join(f"{m} {100 * v:.1f} %" for m, v in rel.items())
    uri = figures.mosaic(cols, mask, units=units, title="uncertainty (ensemble SD)")
    return (
        f"<h2>Uncertainty</h2><p>{html.escape(UNCERTAINTY_DESCRIPTION + calibration)} Median "
        "in the brain, "
        f"relative to the map: {html.escape(medians)}.</p><img alt='uncertainty' src='{uri}'>"
    )


def _summary(
    qc: Mapping[str, Any], results: Mapping[str, Any], params: Mapping[str, Any]
) -> dict[str, Any]:
    medians = qc["TissueMedians"]
    return {
        "GM median T1 / T2 (ms)": f"{1000 * medians['GM']['T1']:.0f} / "
        f"{1000 * medians['GM']['T2']:.0f}",
        "WM median T1 / T2 (ms)": f"{1000 * medians['WM']['T1']:.0f} / "
        f"{1000 * medians['WM']['T2']:.0f}",
        "brain volume (ml)": qc["BrainVolume_ml"],
        "invalid LR voxels in the head (NaN, Inf, negative)": {
            m: q["invalid_in_head"] for m, q in qc["InputQuality"].items()
        },
        **_fitted_line(qc),
        **(
            {"maps NOT acquired (estimates, not measurements)": ", ".join(qc["EstimatedMaps"])}
            if qc.get("EstimatedMaps")
            else {}
        ),
        "LR map units": qc["InputUnits"],
        "LR acquisition model": _acquisition_line(results["conform"].acquisition),
        "LR residual ||D(SR)-LR||/||LR||": qc["LRResidual"],
        "LR residual of the input": results["superres"].lr_residual_input,
        "guide SSIM (synthesised vs acquired)": qc["GuideSSIM"],
        **(
            {"median uncertainty / map value": qc["UncertaintyRelativeMedian"]}
            if "UncertaintyRelativeMedian" in qc
            else {}
        ),
        "brain mask covered by each guide": qc.get("GuideCoverage", {}),
        "registration metric (ANTs Mattes: -MI, lower is better)": qc["RegistrationMI"],
        "wall time per step (s)": qc["Seconds"],
    }


def _fitted_line(qc: Mapping[str, Any]) -> dict[str, str]:
    fitted = qc.get("FittedMaps") or {}
    if not fitted:
        return {}
    return {"maps fitted from raw series": ", ".join(f"{m} from {k}" for m, k in fitted.items())}


def _inr_line(fit: Mapping[str, Any]) -> str:
    return (
        f"{fit['steps']} steps (stopped by {fit['stopped_by'].replace('_', ' ')}), "
        f"{fit['fit_seconds']:.0f} s"
    )


def _acquisition_line(acq: Mapping[str, Any] | None) -> str:
    from swigapp.operators.acquisition import Acquisition

    return Acquisition.from_record(acq).summary() if acq else "3D k-space truncation"


def _model_version(model: Mapping[str, Any] | None) -> str:
    if not model:
        return ""
    if not model.get("version"):
        return "a local model file (no shipped version)"
    return f"{model['version']} (introduced in swigapp {model['introduced_in']})"


def _mask_line(mask: Masked) -> str:
    """How the brain mask was made, with the guides' cuts where T2 or PD was estimated."""
    line = mask.method
    ratio = mask.guide_ratio_cut
    if ratio:
        line += (
            f"; T2 estimated: cut where the {ratio['name']} guide over its synthesised contrast "
            f"is below {ratio['share']:g} of its median ({100 * ratio['removed']:.1f} % of the "
            "mask), guides registered again within it"
        )
    cut = mask.guide_cut
    if cut:
        line += (
            f"; PD estimated: cut where the {cut['name']} guide is below "
            f"{cut['share']:g} of its median, within {cut['depth_lr']:g} LR voxel(s) of the "
            f"edge ({100 * cut['removed']:.1f} % of the mask)"
        )
    return line


def _adaptation_line(requested: int | str, adaptation: Mapping[str, Any] | None) -> str:
    """The adaptation steps asked for, with ``auto``'s decision."""
    if adaptation and adaptation.get("mode") == "auto":
        return f"auto: {adaptation['steps']} ({adaptation['reason']})"
    return str(requested)


def _provenance(results: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    sr = results["superres"]
    return {
        "method": sr.method,
        "model": sr.model["name"] if sr.model else "none (fitted to this subject)",
        "model version": _model_version(sr.model),
        "model sha256": sr.model["sha256"] if sr.model else "",
        "device": sr.device,
        "guides": ", ".join(results["registration"]),
        "adaptation steps": _adaptation_line(params["adapt_steps"], sr.adaptation),
        **({"slice axes (averaged)": ", ".join(map(str, sr.slice_axes))} if sr.slice_axes else {}),
        **({"INR fit": _inr_line(sr.inr)} if sr.inr else {}),
        "seed": params["seed"],
        "registration": params["transform"],
        "brain mask": _mask_line(results["mask"]),
        **{f"protocol {g}": p for g, p in params["guide_protocols"].items()},
        **{f"synthesis {c}": p for c, p in params["synth_protocols"].items()},
        **{f"version {k}": v for k, v in params["versions"].items()},
    }
