"""Raw qMRI series (BIDS qMRI file collections): find them, check them, fit maps from them.

A participant may hold, instead of (or beside) fitted maps, the raw series a qMRI protocol
acquires: ``MESE`` (``echo-<n>``, EchoTime), ``IRT1`` (``inv-<n>``, InversionTime), ``VFA``
(``flip-<n>``, FlipAngle, with an optional ``fmap/*_TB1map``) or ``MP2RAGE`` (``inv-1``/
``inv-2`` with optional ``part-mag``/``part-phase``, and/or ``UNIT1``). :func:`find_series`
finds them with pybids and checks their sidecars; :func:`plan_fits` decides which series
supplies each missing map; :func:`fit_series` fits them (:mod:`swigapp.fitting`) and writes
the maps as ordinary map files (PD from M0 in series units, T1/T2 in s), with a residual map
and sidecars that name the model. Background voxels (no signal in any image of the series)
are not fitted: they are NaN, like the voxels a fit fails on, and follow the imperfect-input
path of :mod:`swigapp.inputs.qmri`.

Series are described by JSON-ready dicts (``kind``, ``files``, ``values``, ``metadata``,
``extra``) so that they travel through the Nipype graph.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from swigapp.fitting import fit_by_pattern, saturated
from swigapp.io.images import InputError, load_image

LOG = logging.getLogger("swigapp.io")


@dataclass(frozen=True)
class SeriesKind:
    """A BIDS qMRI file collection: its suffix, the entity that indexes its images, the
    sidecar field that varies over them, the maps it gives, the fewest images it needs."""

    suffix: str
    entity: str
    parameter: str
    provides: tuple[str, ...]
    minimum: int


KINDS: dict[str, SeriesKind] = {
    "MESE": SeriesKind("MESE", "echo", "EchoTime", ("T2", "PD"), 3),
    "IRT1": SeriesKind("IRT1", "inv", "InversionTime", ("T1", "PD"), 3),
    "VFA": SeriesKind("VFA", "flip", "FlipAngle", ("T1", "PD"), 2),
    "MP2RAGE": SeriesKind("MP2RAGE", "inv", "InversionTime", ("T1", "PD"), 2),
}
#: The series that supplies each map, best first (inversion recovery is the reference T1
#: method; M0 is closest to PD at TE = 0 from a spin-echo train).
PREFERENCE = {
    "T2": ("MESE",),
    "T1": ("IRT1", "VFA", "MP2RAGE"),
    "PD": ("MESE", "IRT1", "VFA", "MP2RAGE"),
}
#: Voxels whose largest signal over the series is below this fraction of the series' 99.9th
#: percentile are background: not fitted (NaN).
BACKGROUND_FRACTION = 0.05
#: Sidecar fields about the acquisition's geometry copied to the fitted maps (the LR
#: acquisition model reads them).
GEOMETRY_FIELDS = (
    "MRAcquisitionType",
    "SliceThickness",
    "SpacingBetweenSlices",
    "SliceEncodingDirection",
    "MagneticFieldStrength",
)
#: Output suffix of each fitted map (M0 in series units is BIDS's M0map).
FIT_SUFFIX = {"T1": "T1map", "T2": "T2map", "PD": "M0map"}
#: Suffix of the fit's residual map (outside BIDS: listed in the output's .bidsignore).
RESIDUAL_SUFFIX = "fitresidual"


def _series_where(label: str, kind: str) -> str:
    return f"{label}: {kind} series"


def find_series(bids_layout: Any, base: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """The raw qMRI series of one participant/session (``base``: the pybids query of its
    files), each checked: enough images, one parameter value per image, none repeated.

    InputError names the file and the missing or repeated sidecar field.
    """
    found: dict[str, dict[str, Any]] = {}
    base = {**base, "extension": [".nii.gz", ".nii"]}
    for kind, spec in KINDS.items():
        files = [
            f
            for f in bids_layout.get(**base, suffix=spec.suffix)
            if f.entities.get("part", "mag") == "mag"
        ]
        extra: dict[str, Any] = {}
        if kind == "MP2RAGE":
            unit1 = bids_layout.get(**base, suffix="UNIT1")
            if unit1:
                extra["UNIT1"] = unit1[0].path
                extra["UNIT1_metadata"] = dict(bids_layout.get_metadata(unit1[0].path))
            phases = {
                f.entities.get("inv"): f.path
                for f in bids_layout.get(**base, suffix=spec.suffix, part="phase")
            }
            if phases:
                extra["phase"] = {str(k): v for k, v in phases.items()}
        if not files and not extra.get("UNIT1"):
            continue
        if kind == "VFA":
            b1 = bids_layout.get(**{**base, "datatype": "fmap"}, suffix="TB1map")
            if b1:
                extra["TB1map"] = b1[0].path
        metadata = [dict(bids_layout.get_metadata(f.path)) for f in files]
        values = []
        for f, meta in zip(files, metadata, strict=True):
            value = meta.get(spec.parameter)
            if isinstance(value, list) and len(value) == 1:
                value = value[0]
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise InputError(
                    f"{f.path}: the {kind} series needs a numeric {spec.parameter} in its "
                    f"sidecar (got {value!r})"
                )
            values.append(float(value))
        if len(set(values)) != len(values):
            raise InputError(
                f"{_series_where(where, kind)}: {spec.parameter} repeats "
                f"({', '.join(f'{v:g}' for v in values)}); one image per value is expected"
            )
        minimum = 0 if extra.get("UNIT1") else spec.minimum
        if len(files) < minimum:
            raise InputError(
                f"{_series_where(where, kind)}: {len(files)} image(s), at least "
                f"{spec.minimum} are needed to fit it"
            )
        order = np.argsort(values)
        found[kind] = {
            "kind": kind,
            "files": [files[i].path for i in order],
            "values": [values[i] for i in order],
            "metadata": [metadata[i] for i in order],
            "extra": extra,
        }
    return found


def can_supply(series: Mapping[str, Any], name: str) -> bool:
    """Whether ``series`` can give map ``name`` (MP2RAGE gives M0 only with its inversions)."""
    if name not in KINDS[series["kind"]].provides:
        return False
    return not (series["kind"] == "MP2RAGE" and name == "PD" and len(series["files"]) < 2)


def plan_fits(series: Mapping[str, Mapping[str, Any]], needed: Sequence[str]) -> dict[str, str]:
    """Map name -> the series kind that supplies it, for each of ``needed`` that a series
    can give (best first, :data:`PREFERENCE`)."""
    plan = {}
    for name in needed:
        for kind in PREFERENCE[name]:
            if kind in series and can_supply(series[kind], name):
                plan[name] = kind
                break
    return plan


def check_series(series: Mapping[str, Any]) -> tuple[tuple[int, ...], np.ndarray]:
    """Load each image of a series once to check it (3D, same grid; NaN allowed) and the
    protocol fields its fit needs; returns the grid (shape, affine). InputError names the
    file and the problem."""
    images = list(series["files"]) + (
        [series["extra"]["UNIT1"]] if "UNIT1" in series["extra"] else []
    )
    shape, affine = None, None
    for path in images:
        data, aff = load_image(path, finite=False)
        if shape is None:
            shape, affine = data.shape, aff
        elif data.shape != shape or not np.allclose(aff, affine, atol=1e-3):
            raise InputError(f"{path}: grid differs from {images[0]} of the same series")
        if not np.isfinite(data).any() or not (np.nan_to_num(data) != 0).any():
            raise InputError(f"{path}: the image is empty (no finite non-zero voxel)")
    _protocol_of(series)
    extra = series["extra"]
    phases = extra.get("phase", {})
    if series["kind"] == "MP2RAGE" and "UNIT1" not in extra and not {"1", "2"} <= set(phases):
        raise InputError(
            f"{series['files'][0]}: the MP2RAGE inversions are magnitudes only, which lose the "
            "sign of the first inversion: add the part-phase images or the UNIT1 image"
        )
    assert shape is not None and affine is not None
    return shape, affine


def _needs(meta: Mapping[str, Any], names: Sequence[str], path: str, kind: str) -> list[float]:
    out = []
    for name in names:
        value = meta.get(name)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise InputError(f"{path}: the {kind} fit needs a positive {name} (got {value!r})")
        out.append(float(value))
    return out


def _protocol_of(series: Mapping[str, Any]) -> dict[str, Any]:
    """The protocol values each fit needs, from the sidecars (InputError when missing)."""
    kind, files, metadata = series["kind"], series["files"], series["metadata"]
    if kind == "MESE":
        te = np.asarray(series["values"])
        spacing = np.diff(np.concatenate([[0.0], te]))
        if not np.allclose(spacing, spacing[0], rtol=0.02):
            raise InputError(
                f"{files[0]}: the MESE fit (an EPG of a CPMG train) needs echoes at n x the echo "
                f"spacing, got EchoTime {', '.join(f'{v:g}' for v in te)} s"
            )
        return {"echo_times": list(series["values"])}
    if kind == "IRT1":
        tr = metadata[0].get("RepetitionTime")
        return {"inversion_times": list(series["values"]), "repetition_time": tr}
    if kind == "VFA":
        field = (
            "RepetitionTimeExcitation"
            if "RepetitionTimeExcitation" in metadata[0]
            else "RepetitionTime"
        )
        (tr,) = _needs(metadata[0], [field], files[0], kind)
        return {"flip_angles": list(series["values"]), "repetition_time": tr}
    # MP2RAGE: the timing from the inversions' sidecars, else the UNIT1 sidecar (lists)
    if len(files) >= 2:
        first, second = metadata[0], metadata[1]
        source = files[0]
        ti = tuple(series["values"][:2])
        flips = (
            *_needs(first, ["FlipAngle"], files[0], kind),
            *_needs(second, ["FlipAngle"], files[1], kind),
        )
    else:
        first = series["extra"].get("UNIT1_metadata", {})
        source = series["extra"]["UNIT1"]
        ti_list, flip_list = first.get("InversionTime"), first.get("FlipAngle")
        if not (
            isinstance(ti_list, list)
            and isinstance(flip_list, list)
            and len(ti_list) == len(flip_list) == 2
        ):
            raise InputError(
                f"{source}: without the inversions (inv-1/inv-2 MP2RAGE images), the UNIT1 "
                "sidecar must list both InversionTime and both FlipAngle values"
            )
        ti, flips = (
            (float(ti_list[0]), float(ti_list[1])),
            (float(flip_list[0]), float(flip_list[1])),
        )
    tr, tau, shots = _needs(
        first,
        ["RepetitionTimePreparation", "RepetitionTimeExcitation", "NumberShots"],
        source,
        kind,
    )
    return {"tr": tr, "ti": ti, "flips": flips, "tau": tau, "n": round(shots)}


def _load_stack(paths: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    arrays, affine = [], None
    for path in paths:
        data, aff = load_image(path, finite=False)
        arrays.append(data)
        affine = aff if affine is None else affine
    assert affine is not None
    return np.stack(arrays, axis=-1).astype(np.float64), affine


def _signal(stack: np.ndarray) -> np.ndarray:
    """Voxels with signal: the largest |value| over the series above
    :data:`BACKGROUND_FRACTION` of its 99.9th percentile."""
    peak = np.nanmax(np.abs(np.nan_to_num(stack, nan=0.0)), axis=-1)
    positive = peak[peak > 0]
    if not positive.size:
        return np.zeros(peak.shape, bool)
    return peak > BACKGROUND_FRACTION * float(np.percentile(positive, 99.9))


def run_fit(series: Mapping[str, Any]) -> tuple[Any, np.ndarray, np.ndarray]:
    """Fit one series: (:class:`~swigapp.fitting.Fit` on the whole grid, background NaN),
    the grid's affine and the signal mask."""
    from swigapp.fitting import Fit
    from swigapp.fitting.mp2rage import MP2RAGEProtocol, fit_mp2rage

    kind, protocol = series["kind"], _protocol_of(series)
    if kind == "MP2RAGE":
        mp2 = MP2RAGEProtocol(**protocol)
        try:
            mp2.delays()
        except ValueError as err:
            raise InputError(
                f"{series['files'][0] if series['files'] else series['extra']['UNIT1']}: {err}"
            ) from err
        inv = mags = None
        if len(series["files"]) >= 2:
            mags, affine = _load_stack(series["files"][:2])
            phases = series["extra"].get("phase", {})
            if "1" in phases and "2" in phases:
                ph, _ = _load_stack([phases["1"], phases["2"]])
                if np.nanmax(np.abs(ph)) > 2 * math.pi + 0.1:  # Siemens: -4096..4095
                    ph = ph * (math.pi / 4096.0)
                inv = mags * np.exp(1j * ph)
            elif "UNIT1" not in series["extra"]:
                raise InputError(
                    f"{series['files'][0]}: the MP2RAGE inversions are magnitudes only, which "
                    "lose the sign of the first inversion: add the part-phase images or UNIT1"
                )
        signal_from = mags
        unit1 = None
        if "UNIT1" in series["extra"]:
            unit1, affine = load_image(series["extra"]["UNIT1"], finite=False)
        if inv is not None and unit1 is None:
            fit = fit_mp2rage(mp2, inv1=inv[..., 0], inv2=inv[..., 1])
        else:
            # M0 needs only the second inversion's magnitude
            fit = fit_mp2rage(mp2, unit1=unit1, inv2=None if mags is None else mags[..., 1])
        signal = _signal(signal_from) if signal_from is not None else np.isfinite(fit.maps["T1"])
    else:
        stack, affine = _load_stack(series["files"])
        signal = _signal(stack)
        voxels = stack[signal]
        b1 = None
        if kind == "VFA" and "TB1map" in series["extra"]:
            b1 = _b1_on(series["extra"]["TB1map"], stack.shape[:3], affine)[signal]
        clipped = saturated(voxels)
        try:
            part = fit_by_pattern(
                lambda rows, use: _fit_voxels(kind, protocol, voxels[rows], use, b1, rows),
                voxels,
                ~clipped,
                MIN_SAMPLES[kind],
            )
        except ValueError as err:
            raise InputError(f"{series['files'][0]}: {err}") from err
        if clipped.any():
            _note_clipping(part, clipped, float(voxels[clipped][0]), MIN_SAMPLES[kind])
        maps = {}
        for name, value in part.maps.items():
            full = np.full(signal.shape, np.nan)
            full[signal] = value
            maps[name] = full
        residual = np.full(signal.shape, np.nan)
        residual[signal] = part.residual
        fit = Fit(maps, residual, part.model, part.notes, part.parameters)
    for value in fit.maps.values():
        value[~signal] = np.nan
    return fit, affine, signal


#: The fewest samples a voxel's fit needs, per series.
MIN_SAMPLES = {"MESE": 3, "IRT1": 3, "VFA": 2}


def _fit_voxels(
    kind: str,
    protocol: Mapping[str, Any],
    voxels: np.ndarray,
    use: np.ndarray,
    b1: np.ndarray | None,
    rows: np.ndarray,
) -> Any:
    """The fit of one MESE, IRT1 or VFA series on ``voxels`` (voxels, n), using the samples
    where ``use`` (``b1``: the VFA's transmit efficiency over all voxels, ``rows`` of it)."""
    from swigapp.fitting.irt1 import fit_irt1
    from swigapp.fitting.mese import fit_mese
    from swigapp.fitting.vfa import fit_vfa

    if kind == "MESE":
        return fit_mese(voxels, **protocol, use=use)
    if kind == "IRT1":
        ti = [t for t, u in zip(protocol["inversion_times"], use, strict=True) if u]
        return fit_irt1(voxels[:, use], ti, protocol["repetition_time"])
    flips = [a for a, u in zip(protocol["flip_angles"], use, strict=True) if u]
    b1_rows = None if b1 is None else b1[rows]
    return fit_vfa(voxels[:, use], flips, protocol["repetition_time"], b1=b1_rows)


def _note_clipping(fit: Any, clipped: np.ndarray, ceiling: float, min_samples: int) -> None:
    """Record clipped samples left out of ``fit``: a note for the sidecars and QC, counts in
    its parameters, and a warning."""
    voxels = int(clipped.any(axis=1).sum())
    lost = int((((~clipped).sum(axis=1)) < min_samples).sum())
    fit.parameters["ClippedSamples"] = int(clipped.sum())
    fit.parameters["ClippedVoxels"] = voxels
    fit.notes.append(
        f"{int(clipped.sum())} samples in {voxels} voxels sat at the images' ceiling "
        f"({ceiling:g}: clipped magnitudes) and were left out of the fit; {lost} voxels kept "
        f"fewer than {min_samples} samples and are NaN"
    )
    LOG.warning("clipped magnitudes: %s", fit.notes[-1])


def _b1_on(path: str, shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """A TB1map as transmit efficiency (1 = nominal; percent maps divided by 100) on the
    series' grid (linear interpolation through the affines)."""
    from scipy import ndimage

    data, aff = load_image(path, finite=False)
    inside = np.isfinite(data) & (data > 0)
    if not inside.any():
        raise InputError(f"{path}: the B1 map holds no positive value")
    if float(np.median(data[inside])) > 10:  # percent of nominal
        data = data / 100.0
    if data.shape != tuple(shape) or not np.allclose(aff, affine, atol=1e-3):
        index = np.linalg.inv(aff) @ affine
        data = ndimage.affine_transform(
            np.nan_to_num(data, nan=1.0),
            index[:3, :3],
            index[:3, 3],
            output_shape=shape,
            order=1,
            mode="nearest",
        )
    return np.where(data > 0, data, np.nan)


def _correct_saturation(fit: Any, t1: np.ndarray, tr: Any) -> None:
    """Divide a MESE fit's M0 by the longitudinal recovery 1 - exp(-(TR - last TE)/T1) with
    T1 (s) from another series' fit, so that M0 is a proton density (in place)."""
    if not isinstance(tr, int | float) or tr <= 0:
        return
    last = max(fit.parameters.get("EchoTime") or [0.0])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        recovery = 1.0 - np.exp(-(float(tr) - last) / t1)
        fit.maps["M0"] = np.where(recovery > 0.05, fit.maps["M0"] / recovery, np.nan)
    fit.notes[:] = [n for n in fit.notes if "saturation" not in n]
    fit.notes.append(f"M0 corrected for T1 saturation at TR {float(tr):g} s with the fitted T1 map")


def _write_fit(
    fit: Any,
    kind: str,
    names: Sequence[str],
    affine: np.ndarray,
    geometry: Mapping[str, Any],
    stem: Path,
) -> dict[str, Any]:
    """Write the fitted maps ``names`` (of T1, T2, PD) and the residual as
    ``{stem}_desc-fit{kind}_{suffix}.nii.gz`` with sidecars; returns suffix -> file and
    sidecar."""
    from swigapp.io.files import save_nifti, write_json

    written: dict[str, Any] = {}
    for name in names:
        suffix = FIT_SUFFIX[name]
        path = stem.with_name(f"{stem.name}_desc-fit{kind}_{suffix}.nii.gz")
        save_nifti(path, fit.maps["M0" if name == "PD" else name].astype(np.float32), affine)
        sidecar = {
            "Units": "arbitrary" if name == "PD" else "s",
            "EstimationMethod": fit.model,
            "Notes": fit.notes,
            **geometry,
        }
        write_json(path.with_name(path.name.replace(".nii.gz", ".json")), sidecar)
        written[suffix] = {"file": str(path), "sidecar": sidecar}
    residual = stem.with_name(f"{stem.name}_desc-fit{kind}_{RESIDUAL_SUFFIX}.nii.gz")
    save_nifti(residual, fit.residual.astype(np.float32), affine)
    written[RESIDUAL_SUFFIX] = {
        "file": str(residual),
        "sidecar": {
            "Description": "root-mean-square residual of the fit per voxel, in the "
            "series' units (NaN: not fitted)",
            "EstimationMethod": fit.model,
        },
    }
    return written


def _series_record(
    fit: Any, signal: np.ndarray, sources: list[str], written: dict[str, Any], seconds: float
) -> dict[str, Any]:
    """The QC record of one fitted series (JSON-ready)."""
    finite = np.isfinite(next(iter(fit.maps.values())))
    return {
        "files": sources,
        "model": fit.model,
        "notes": fit.notes,
        "parameters": {k: v for k, v in fit.parameters.items() if k != "protocol"},
        "signal_voxels": int(signal.sum()),
        "failed_voxels": int((signal & ~finite).sum()),
        "outputs": written,
        "medians": {
            k: float(np.nanmedian(v[signal])) if (signal & np.isfinite(v)).any() else None
            for k, v in fit.maps.items()
        },
        "seconds": round(seconds, 3),
    }


def fit_series(
    series: Mapping[str, Mapping[str, Any]],
    plan: Mapping[str, str],
    out_dir: str | Path,
    label: str,
) -> dict[str, Any]:
    """Fit every series the ``plan`` uses and write its maps into ``out_dir``.

    Returns ``maps`` (map name -> written path), ``map_suffixes``, ``map_metadata`` (with
    ``Units`` and the acquisition's geometry) for the app's map inputs, and ``result``: per
    series, its files, model, notes, voxels fitted and failed, seconds and the written files
    with their sidecars (JSON-ready).
    """
    maps: dict[str, str] = {}
    suffixes: dict[str, str] = {}
    metadata: dict[str, dict[str, Any]] = {}
    record: dict[str, Any] = {"maps": dict(plan), "series": {}}
    reference = plan.get("T1") or next(iter(plan.values()))
    grid = None
    fitted_t1: np.ndarray | None = None
    for kind in sorted(set(plan.values()), key=lambda k: k != reference):
        start = time.perf_counter()
        s = series[kind]
        LOG.info("%s: fitting the %s series (%d images)", label, kind, len(s["files"]))
        fit, affine, signal = run_fit(s)
        if grid is None:
            grid = (signal.shape, affine)
        elif signal.shape != grid[0] or not np.allclose(affine, grid[1], atol=1e-3):
            raise InputError(
                f"{s['files'][0]}: the {kind} series is on another grid than the "
                f"{reference} series; fitted maps must share one grid"
            )
        if plan.get("T1") == kind:
            fitted_t1 = fit.maps["T1"]
        if kind == "MESE" and plan.get("PD") == kind and fitted_t1 is not None:
            _correct_saturation(fit, fitted_t1, s["metadata"][0].get("RepetitionTime"))
        geometry = {
            k: s["metadata"][0][k]
            for k in GEOMETRY_FIELDS
            if s["metadata"] and k in s["metadata"][0]
        }
        sources = list(s["files"]) + ([s["extra"]["UNIT1"]] if "UNIT1" in s["extra"] else [])
        fitted = {"T1": "T1", "T2": "T2", "PD": "M0"}
        names = [n for n, key in fitted.items() if plan.get(n) == kind and key in fit.maps]
        written = _write_fit(fit, kind, names, affine, geometry, Path(out_dir) / label)
        for name in names:
            maps[name] = written[FIT_SUFFIX[name]]["file"]
            suffixes[name] = "PDmap" if name == "PD" else FIT_SUFFIX[name]
            metadata[name] = written[FIT_SUFFIX[name]]["sidecar"]
        seconds = time.perf_counter() - start
        record["series"][kind] = _series_record(fit, signal, sources, written, seconds)
        LOG.info(
            "%s: %s fitted in %.1f s (%d voxels with signal, %d failed)",
            label,
            kind,
            seconds,
            int(signal.sum()),
            record["series"][kind]["failed_voxels"],
        )
    return {"maps": maps, "map_suffixes": suffixes, "map_metadata": metadata, "result": record}
