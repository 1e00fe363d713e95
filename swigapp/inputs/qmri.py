"""LR qMRI maps as fitted in practice: head region, invalid voxels, units, PD scale.

Fitted maps carry background noise, NaN where a fit failed, PD in any scale and T1/T2 in
ms. These are processed: a voxel that is NaN, infinite, negative or beyond a physical bound
(:data:`PHYSICAL_MAX`, after unit handling: a failed fit's sentinel such as 3e38) is
*invalid* (missing data); invalid voxels are counted per map (inside the head and in
total), filled from
their valid neighbours inside the head (normalised convolution) and set to 0 outside it,
and excluded from the LR-consistency terms through the validity mask. What cannot be a map
is refused (:class:`~swigapp.io.bids.InputError`): a map NaN, negative or zero throughout,
more than :data:`MAX_INVALID_FRACTION` of the head invalid, a T1/T2 head median outside
:data:`MEDIAN_RANGE` after unit handling, a sidecar ``Units`` that contradicts the data.

PD is normalised internally to a water fraction (see :func:`pd_scale`); the SR PD map is
written back in the input's scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from swigapp.estimate import driver, tissue_prior
from swigapp.io.images import MAP_ORDER, InputError, load_image
from swigapp.operators.grid import fill_holes
from swigapp.physics.units import convert

#: A map with more than this fraction of its head voxels invalid is refused.
MAX_INVALID_FRACTION = 0.2
#: LR voxels around the head region kept as data (the edge's partial volume and ringing);
#: beyond them a noisy background (more than :data:`NOISY_BACKGROUND` of it invalid: the
#: negative half of fitting noise) is set to 0. A clean background (skull-stripped maps,
#: exactly 0 or ringing clipped at 0) is left as it is.
HEAD_MARGIN = 1
NOISY_BACKGROUND = 0.01
#: Largest value a map can hold after unit handling (T1/T2 in s, PD as a water fraction):
#: beyond it a voxel is a failed fit (fitting software writes sentinels such as 3e38 or
#: clamps at its bound), invalid like NaN. Pure water at 3T has T1 of about 3.5-4.5 s and
#: T2 of about 2-3 s; PD is at most about 1 (water) plus noise.
PHYSICAL_MAX = {"PD": 3.0, "T1": 10.0, "T2": 10.0}
#: Plausible head medians (s) of T1 and T2 after unit handling.
MEDIAN_RANGE = {"T1": (0.1, 5.0), "T2": (0.01, 3.0)}
#: Typical head medians (s): a sidecar ``Units`` contradicts the data when the median is
#: out of range with it and typical with a factor of 1000.
TYPICAL_MEDIAN = {"T1": (0.3, 3.0), "T2": (0.03, 1.0)}
#: PD reference: the median PD of head voxels whose T1 (s) is in this WM-like range ...
PD_WM_T1 = (0.5, 1.1)
#: ... scaled to this water fraction (WM ~0.65-0.70) ...
PD_WM_TARGET = 0.69
#: ... unless fewer than this many voxels are WM-like: then the 95th percentile of PD in
#: the head is the reference, scaled to 1.0 (CSF, free water).
PD_MIN_WM_VOXELS = 50
#: A reference in this range is already a fraction: PD is used as is (factor exactly 1).
PD_PLAUSIBLE = {"wm": (0.4, 1.2), "p95": (0.6, 1.5)}
#: A reference 10^k times a value in this range is a decimal scale (percent: k = 2): the
#: factor is 10^-k exactly, so a x100 dataset gives the x1 dataset's numbers.
PD_DECIMAL = {"wm": (0.55, 0.9), "p95": (0.8, 1.25)}
#: Sidecar ``Units`` of PD that fix its scale (percent of water).
PD_PERCENT = ("percent", "%", "pct", "percentofwater")


@dataclass
class LRMaps:
    """LR maps of one participant, checked and ready for the network.

    ``maps``: PD (internal water-fraction scale), T1 and T2 (s), float32, invalid voxels
    filled, a noisy background 0 beyond the head (:data:`HEAD_MARGIN`); ``valid``: per
    map, True where the input voxel was finite and non-negative; ``head``: the head region
    on the LR grid; ``quality``, ``units``, ``pd_scale``: what was counted and decided
    (JSON-ready, see :func:`prepare_lr_maps`); ``notes``: the
    notable findings in words (empty when there is nothing to warn about).
    """

    maps: dict[str, np.ndarray]
    valid: dict[str, np.ndarray]
    head: np.ndarray
    affine: np.ndarray
    quality: dict[str, dict[str, Any]]
    units: dict[str, str]
    pd_scale: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    #: The maps that were acquired (the others are estimates: :mod:`swigapp.estimate`).
    acquired: list[str] = field(default_factory=lambda: list(MAP_ORDER))

    def valid_stack(self) -> np.ndarray:
        """Validity (3, x, y, z) uint8 in MAP_ORDER."""
        return np.stack([self.valid[m] for m in MAP_ORDER]).astype(np.uint8)


#: The PD scale record when PD was not acquired (its estimate is a water fraction).
NO_PD_SCALE: dict[str, Any] = {
    "reference": "none (PD not acquired)", "reference_value": 1.0, "target": 1.0,
    "factor": 1.0, "rule": "PD not acquired", "input_units": "none", "output_units": "arbitrary",
}  # fmt: skip


#: The share of its 99th percentile above which a map holds signal (:func:`head_candidates`):
#: 10 % for PD and T1, whose tissue values lie within 2-7x of CSF's; 1 % for T2, whose
#: range spans 20-40x (WM 45-80 ms at 7-1.5T against CSF's 1.5-2 s): at 10 % a T2 map alone
#: kept only CSF (an in-vivo slice given as a T2 map: a head of 383 LR voxels, not 5512).
SIGNAL_SHARE = {"PD": 0.1, "T1": 0.1, "T2": 0.01}


def head_region(
    pd: np.ndarray | None, t1: np.ndarray | None, t2: np.ndarray | None = None
) -> np.ndarray:
    """The head on the LR grid from raw (any unit) PD, T1 and T2 maps.

    Voxels above :data:`SIGNAL_SHARE` of the 99th percentile of the positive PD (of T1 where
    PD is NaN or infinite, of T2 where both are; a negative PD is background noise), their
    connected pieces of at least :data:`MIN_ISLAND_VOXELS` (and the largest), holes filled:
    enclosed invalid voxels count as head. Works on skull-stripped maps (background exactly
    0) and on noisy backgrounds (the noise's specks are smaller). Any map may be None (not
    acquired: the others decide).
    """
    cand = head_candidates(pd, t1, t2)
    if not cand.any():
        return cand
    # every piece of signal, not the largest alone: a phantom's spheres whose surrounding
    # fluid failed to fit (the NIST phantom's MESE, whose spheres were set to 0 while the
    # region was the largest piece), a temporal lobe below a slab's other slices
    labels, _ = ndimage.label(cand)
    sizes = np.bincount(labels.ravel())[1:]
    keep = (sizes >= MIN_ISLAND_VOXELS) | (sizes == sizes.max())
    return fill_holes(np.isin(labels, 1 + np.flatnonzero(keep)))


def head_candidates(
    pd: np.ndarray | None, t1: np.ndarray | None, t2: np.ndarray | None = None
) -> np.ndarray:
    """The voxels with signal that :func:`head_region` connects: above
    :data:`SIGNAL_SHARE` of the 99th percentile of the positive PD (of T1 where PD is not
    finite, of T2 where neither is)."""
    given = [(n, m) for n, m in (("PD", pd), ("T1", t1), ("T2", t2)) if m is not None]
    assert given, "head_region needs a map"
    shape = given[0][1].shape
    cand = np.zeros(shape, bool)
    undecided = np.ones(shape, bool)  # no earlier map is finite here
    for name, data in given:
        with np.errstate(invalid="ignore"):
            pos = np.isfinite(data) & (data > 0)
        if pos.any():
            thr = SIGNAL_SHARE[name] * float(np.percentile(data[pos], 99))
            cand |= undecided & pos & (np.where(pos, data, 0) > thr)
        undecided &= ~np.isfinite(data)
    return cand


#: A connected piece of signal of at least this many LR voxels is part of the head region
#: (smaller ones are a noisy background's specks).
MIN_ISLAND_VOXELS = 27


def fill_invalid(
    data: np.ndarray, valid: np.ndarray, head: np.ndarray, sigma: float = 1.0
) -> np.ndarray:
    """``data`` with its invalid voxels replaced: inside ``head`` by the Gaussian-weighted
    mean of valid neighbours (normalised convolution, repeated until every hole is
    filled), outside it by 0. Valid voxels are returned unchanged."""
    out = np.where(valid, data, 0).astype(np.float32)
    todo = ~valid & head
    if not todo.any():
        return out
    known = valid & head
    if not known.any():
        known = valid
    values = np.where(known, out, 0).astype(np.float64)
    for _ in range(100):
        num = ndimage.gaussian_filter(values, sigma)
        den = ndimage.gaussian_filter(known.astype(np.float64), sigma)
        new = todo & (den > 1e-3)
        values[new] = num[new] / den[new]
        known, todo = known | new, todo & ~new
        if not todo.any():
            break
    if todo.any():  # unreachable in practice: a hole far from every valid voxel
        values[todo] = float(np.median(out[valid & head])) if (valid & head).any() else 0.0
    fill = ~valid & head
    out[fill] = values[fill].astype(np.float32)
    return out


def _median_in(data: np.ndarray, where: np.ndarray) -> float:
    values = data[where & (data > 0)]
    return float(np.median(values)) if values.size else 0.0


def pd_scale(
    pd: np.ndarray,
    t1: np.ndarray | None,
    head: np.ndarray,
    valid: np.ndarray,
    units: str | None = None,
    source: str = "<PD map>",
) -> dict[str, Any]:
    """How PD in any scale becomes the water fraction the network was trained on.

    The reference is the median PD in head voxels whose T1 (s) is WM-like
    (:data:`PD_WM_T1`), scaled to :data:`PD_WM_TARGET`; with fewer than
    :data:`PD_MIN_WM_VOXELS` such voxels, the 95th percentile of PD in the head, scaled to
    1.0. A reference already plausible for a fraction gives factor 1 exactly; a sidecar
    ``Units`` of percent gives 0.01; a decimal scale (10^k times a typical fraction) gives
    10^-k exactly; anything else reference -> target. Returns ``reference`` (words),
    ``reference_value`` (input units), ``target``, ``factor`` (internal / input), ``rule``
    (words), ``input_units`` (the sidecar's, else "arbitrary") and ``output_units`` (the
    ``Units`` of the SR PD map, written in the input's scale: "arbitrary", or the sidecar's
    percent). Without T1 (not acquired) the 95th-percentile rule applies.
    """
    ok = head & valid & (pd > 0)
    wm = np.zeros(ok.shape, bool) if t1 is None else ok & (t1 >= PD_WM_T1[0]) & (t1 <= PD_WM_T1[1])
    if int(wm.sum()) >= PD_MIN_WM_VOXELS:
        kind, target = "wm", PD_WM_TARGET
        words = f"median PD in WM-like head voxels (T1 {PD_WM_T1[0]}-{PD_WM_T1[1]} s)"
        ref = float(np.median(pd[wm]))
    else:
        kind, target = "p95", 1.0
        words = "95th percentile of PD in the head (too few WM-like voxels)"
        ref = float(np.percentile(pd[ok], 95)) if ok.any() else 0.0
    if ref <= 0:
        raise InputError(f"{source}: no positive PD inside the head")
    lo, hi = PD_PLAUSIBLE[kind]
    unit = str(units).strip() if units else "arbitrary"
    if unit.lower().replace(" ", "") in PD_PERCENT:
        if not lo <= ref / 100 <= hi:
            raise InputError(
                f"{source}: sidecar Units {unit!r} contradicts the data "
                f"(reference PD {ref:.4g}: {words})"
            )
        factor, rule = 0.01, "sidecar Units percent"
    elif lo <= ref <= hi:
        factor, rule = 1.0, "already a water fraction"
    else:
        factor, rule = target / ref, f"reference scaled to {target}"
        k = int(np.floor(np.log10(ref)))
        for power in (k - 1, k, k + 1):
            if PD_DECIMAL[kind][0] <= ref / 10.0**power <= PD_DECIMAL[kind][1]:
                factor, rule = 10.0**-power, f"decimal scale 1e{power}"
                break
    return {
        "reference": words,
        "reference_value": ref,
        "target": target,
        "factor": factor,
        "rule": rule,
        "input_units": unit,
        "output_units": unit if rule == "sidecar Units percent" else "arbitrary",
    }


def _check_whole(data: np.ndarray, path: str) -> None:
    finite = np.isfinite(data)
    if not finite.any():
        raise InputError(f"{path}: every voxel is NaN or infinite")
    if not (data[finite] > 0).any():
        what = "negative" if (data[finite] < 0).any() else "zero"
        raise InputError(f"{path}: no positive voxel (the map is {what} throughout)")


def prepare_lr_maps(
    map_files: Mapping[str, str],
    map_suffixes: Mapping[str, str],
    metadata: Mapping[str, Mapping[str, Any]] | None = None,
    where: str = "",
) -> LRMaps:
    """Load, check, convert, normalise and fill the LR maps of one participant.

    ``map_files``/``map_suffixes``: map name (PD, T1, T2) -> path / BIDS suffix;
    ``metadata``: map name -> sidecar (its ``Units`` is honoured). InputError names the
    file and the problem. The result's ``quality`` holds per map ``file``,
    ``head_voxels``, ``invalid_in_head``, ``invalid_total``, ``nonfinite_total``,
    ``negative_total``, ``invalid_fraction_in_head``; ``units`` per map the unit decision
    in words; ``pd_scale`` see :func:`pd_scale`.
    """
    metadata = metadata or {}
    acquired = [m for m in MAP_ORDER if m in map_files]
    if not acquired:
        raise InputError(f"{where}: no qMRI map (PD, T1 or T2) to process")
    raw, affine = _load_maps(map_files, acquired, where)
    with np.errstate(invalid="ignore"):
        valid = {m: np.isfinite(d) & (d >= 0) for m, d in raw.items()}
    head = head_region(raw.get("PD"), raw.get("T1"), raw.get("T2"))
    n_head = int(head.sum())
    if n_head < 27:
        raise InputError(f"{map_files[acquired[0]]}: no head region found in the qMRI maps")
    quality = {m: _quality(raw[m], valid[m], head, map_files[m]) for m in acquired}
    maps: dict[str, np.ndarray] = {}
    units: dict[str, str] = {}
    for name in acquired:
        path, suffix = str(map_files[name]), map_suffixes[name]
        clean = raw[name]
        if not valid[name].all():
            clean = np.where(valid[name], clean, np.float32(0))
        sidecar_units = (metadata.get(name) or {}).get("Units")
        data, _, units[name] = convert(clean, suffix, head & valid[name], sidecar_units)
        if name in MEDIAN_RANGE:
            _check_median(data, head & valid[name], name, units[name], sidecar_units, path)
        maps[name] = data
    scale = NO_PD_SCALE
    if "PD" in maps:
        scale = pd_scale(
            maps["PD"], maps.get("T1"), head, valid["PD"], (metadata.get("PD") or {}).get("Units"),
            str(map_files["PD"]),
        )  # fmt: skip
        units["PD"] = _pd_units(scale)
    _mark_out_of_range(maps, valid, head, scale["factor"], quality, map_files)
    support = ndimage.binary_dilation(head, iterations=HEAD_MARGIN)
    background = ~support
    for name in acquired:
        maps[name] = fill_invalid(maps[name], valid[name], head)
        noisy = background.any() and (~valid[name][background]).mean() > NOISY_BACKGROUND
        if noisy:  # fitted noise beyond the head is not data: 0
            maps[name] = np.where(support, maps[name], np.float32(0)).astype(np.float32)
    if scale["factor"] != 1.0:
        maps["PD"] = (maps["PD"] * np.float32(scale["factor"])).astype(np.float32)
    estimated = [m for m in MAP_ORDER if m not in acquired]
    if estimated:
        maps = tissue_prior(maps, acquired, head)
        for name in estimated:
            valid[name] = np.zeros(head.shape, bool)
            maps[name] = np.where(support, maps[name], np.float32(0)).astype(np.float32)
            units[name] = f"not acquired: estimated from {driver(acquired)} (tissue prior)"
    notes = _notes(quality, units, map_files, acquired, scale)
    return LRMaps(maps, valid, head, affine, quality, units, scale, notes, acquired)


def _load_maps(
    map_files: Mapping[str, str], acquired: Sequence[str], where: str
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The acquired maps as read (NaN kept) and their shared affine; InputError when a
    map's grid differs from the first's or a map is invalid as a whole."""
    raw: dict[str, np.ndarray] = {}
    affine = None
    for name in acquired:
        path = str(map_files[name])
        data, aff = load_image(path, finite=False)
        if affine is None:
            affine = aff
        elif data.shape != raw[acquired[0]].shape or not np.allclose(aff, affine, atol=1e-3):
            raise InputError(f"{path}: grid differs from the other qMRI maps of {where}")
        _check_whole(data, path)
        raw[name] = data
    assert affine is not None  # at least one map
    return raw, affine


def _quality(data: np.ndarray, valid: np.ndarray, head: np.ndarray, path: str) -> dict[str, Any]:
    """A map's invalid voxels counted (in the head and in all); InputError when too many
    of the head's are."""
    bad = ~valid
    finite = np.isfinite(data)
    n_head = int(head.sum())
    out = {
        "file": Path(path).name,
        "head_voxels": n_head,
        "invalid_in_head": int((bad & head).sum()),
        "invalid_total": int(bad.sum()),
        "nonfinite_total": int((~finite).sum()),
        "negative_total": int(bad.sum() - (~finite).sum()),
        "out_of_range_total": 0,
        "invalid_fraction_in_head": float((bad & head).sum() / n_head),
    }
    _check_invalid_fraction(out, path)
    return out


def _pd_units(scale: Mapping[str, Any]) -> str:
    """The PD unit decision in words, e.g. 'percent x 0.01 -> water fraction (sidecar Units
    percent)', or '... : already a water fraction, not rescaled'."""
    if scale["factor"] == 1.0:
        return f"{scale['input_units']}: {scale['rule']}, not rescaled"
    return f"{scale['input_units']} x {scale['factor']:.6g} -> water fraction ({scale['rule']})"


def _notes(
    quality: Mapping[str, Mapping[str, Any]],
    units: Mapping[str, str],
    map_files: Mapping[str, str],
    acquired: Sequence[str],
    scale: Mapping[str, Any],
) -> list[str]:
    """What was accepted although imperfect, one line each: invalid voxels, units detected
    from the values, a rescaled PD."""
    notes = [
        f"{q['file']}: {q['invalid_in_head']} invalid voxels in the head "
        f"({100 * q['invalid_fraction_in_head']:.2g} % of {q['head_voxels']}), "
        f"{q['invalid_total']} in total ({q['nonfinite_total']} NaN/Inf, "
        f"{q['negative_total']} negative, {q['out_of_range_total']} beyond the physical range)"
        for q in quality.values()
        if q["invalid_total"]
    ]
    notes += [
        f"{Path(map_files[m]).name}: {units[m]}"
        for m in ("T1", "T2")
        if m in acquired and "->" in units[m] and "detected" in units[m]
    ]
    if scale["factor"] != 1.0:
        notes.append(f"{Path(map_files['PD']).name}: PD {units['PD']}")
    return notes


def _check_invalid_fraction(q: Mapping[str, Any], path: str) -> None:
    """InputError when more than :data:`MAX_INVALID_FRACTION` of the head is invalid."""
    if q["invalid_fraction_in_head"] > MAX_INVALID_FRACTION:
        raise InputError(
            f"{path}: {100 * q['invalid_fraction_in_head']:.0f} % of the head voxels are "
            f"invalid (NaN, infinite, negative or beyond the physical range; "
            f"{q['invalid_in_head']} of {q['head_voxels']}); at most "
            f"{100 * MAX_INVALID_FRACTION:.0f} % is accepted"
        )


def _mark_out_of_range(
    maps: Mapping[str, np.ndarray],
    valid: dict[str, np.ndarray],
    head: np.ndarray,
    pd_factor: float,
    quality: dict[str, dict[str, Any]],
    map_files: Mapping[str, str],
) -> None:
    """Voxels beyond :data:`PHYSICAL_MAX` (T1/T2 in s, PD after ``pd_factor``) become
    invalid, in ``valid`` and in the counts of ``quality``; refuses a map whose head is
    then more than :data:`MAX_INVALID_FRACTION` invalid."""
    for name, data in maps.items():
        scale = pd_factor if name == "PD" else 1.0
        with np.errstate(invalid="ignore", over="ignore"):
            beyond = valid[name] & (data * np.float32(scale) > PHYSICAL_MAX[name])
        count = int(beyond.sum())
        if not count:
            continue
        valid[name] = valid[name] & ~beyond
        q = quality[name]
        q["out_of_range_total"] = count
        q["invalid_total"] += count
        q["invalid_in_head"] += int((beyond & head).sum())
        q["invalid_fraction_in_head"] = q["invalid_in_head"] / q["head_voxels"]
        _check_invalid_fraction(q, map_files[name])


def _check_median(
    data: np.ndarray, where: np.ndarray, name: str, decision: str, units: Any, path: str
) -> None:
    """InputError when the head median of T1/T2 (s) is outside :data:`MEDIAN_RANGE`."""
    lo, hi = MEDIAN_RANGE[name]
    median = _median_in(data, where)
    if lo <= median <= hi:
        return
    from_sidecar = decision.endswith("(sidecar Units)") or "; sidecar Units)" in decision
    typical = TYPICAL_MEDIAN[name]
    if from_sidecar and any(typical[0] <= median * f <= typical[1] for f in (1e3, 1e-3)):
        raise InputError(
            f"{path}: sidecar Units {units!r} contradicts the data: with it the {name} head "
            f"median is {median:.4g} s, a factor of 1000 from typical values"
        )
    raise InputError(
        f"{path}: {name} head median {median:.4g} s is outside the physical range "
        f"{lo}-{hi} s after unit handling ({decision})"
    )
