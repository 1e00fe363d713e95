"""Units of quantitative maps: BIDS stores T1/T2 in seconds and R1/R2 in 1/s.

A map's unit comes from the ``Units`` of its sidecar when that is given and recognised,
otherwise from its head median (maps in milliseconds, rates in 1/ms are detected);
R1map/R2map are inverted to T1/T2.
"""

from __future__ import annotations

import logging

import numpy as np

LOG = logging.getLogger("swigapp.physics")

#: A brain median above this (in the map's own unit) means the map is in milliseconds.
#: Brain T1 in s is ~0.8-1.5 and T2 ~0.05-0.2 (CSF up to ~4.5 s and ~2 s).
MS_THRESHOLD = {"T1map": 50.0, "T2map": 10.0}
#: A relaxation-rate median below this (1/s) means the rate is in 1/ms.
RATE_PER_MS_THRESHOLD = {"R1map": 0.05, "R2map": 0.5}

SUFFIXES = ("T1map", "T2map", "PDmap", "R1map", "R2map")

#: Sidecar ``Units`` of relaxation times -> factor to seconds.
TIME_UNITS = {
    "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
    "ms": 1e-3, "msec": 1e-3, "millisecond": 1e-3, "milliseconds": 1e-3,
}  # fmt: skip
#: Sidecar ``Units`` of relaxation rates -> factor to 1/s.
RATE_UNITS = {
    "1/s": 1.0, "/s": 1.0, "s-1": 1.0, "s^-1": 1.0, "hz": 1.0, "1/sec": 1.0,
    "1/ms": 1e3, "/ms": 1e3, "ms-1": 1e3, "ms^-1": 1e3, "khz": 1e3,
}  # fmt: skip


def _brain_median(data: np.ndarray, mask: np.ndarray | None) -> float:
    values = data[mask.astype(bool)] if mask is not None else data
    values = values[np.isfinite(values) & (values > 0)]
    return float(np.median(values)) if values.size else 0.0


def unit_factor(suffix: str, units: str | None) -> float | None:
    """Factor from a sidecar ``Units`` string to BIDS units (s for T1map/T2map, 1/s for
    R1map/R2map); None when ``units`` is absent or not recognised for that suffix."""
    if not units or not isinstance(units, str):
        return None
    key = units.strip().lower().replace(" ", "")
    table = TIME_UNITS if suffix in ("T1map", "T2map") else RATE_UNITS
    return table.get(key) if suffix in MS_THRESHOLD or suffix in RATE_PER_MS_THRESHOLD else None


def convert(
    data: np.ndarray, suffix: str, mask: np.ndarray | None = None, units: str | None = None
) -> tuple[np.ndarray, str, str]:
    """A relaxation map in BIDS units: (T1 or T2 in s, or PD as is), its suffix, and the
    decision in words (e.g. ``"ms -> s (sidecar Units)"``).

    ``units``: the sidecar's ``Units``; when recognised it is used as given, otherwise the
    unit is detected from the median of ``data`` in ``mask`` (the head; positive finite
    voxels). R1/R2 maps are inverted (non-positive rates become 0). Nothing is logged.
    """
    if suffix not in SUFFIXES:
        raise ValueError(f"unsupported map suffix {suffix!r} (one of {SUFFIXES})")
    data = np.asarray(data, dtype=np.float32)
    if suffix == "PDmap":
        return data, suffix, "as is"
    factor = unit_factor(suffix, units)
    how = "sidecar Units"
    if factor is None:
        median = _brain_median(data, mask)
        how = f"detected: head median {median:.4g}"
        if units:
            how += f"; sidecar Units {units!r} not recognised"
        if suffix in MS_THRESHOLD:
            factor = 1e-3 if median > MS_THRESHOLD[suffix] else 1.0
        else:
            factor = 1e3 if 0 < median < RATE_PER_MS_THRESHOLD[suffix] else 1.0
    if suffix in MS_THRESHOLD:
        if factor == 1.0:
            return data, suffix, f"s ({how})"
        return data / np.float32(1000.0), suffix, f"ms -> s ({how})"
    rate = data * np.float32(factor) if factor != 1.0 else data
    out = np.zeros_like(rate)
    positive = rate > 0
    out[positive] = 1.0 / rate[positive]
    target = "T1map" if suffix == "R1map" else "T2map"
    unit = "1/s" if factor == 1.0 else "1/ms"
    return out, target, f"{unit} -> s ({suffix} inverted to {target}; {how})"


def to_seconds(
    data: np.ndarray,
    suffix: str,
    mask: np.ndarray | None = None,
    source: str = "<map>",
    units: str | None = None,
) -> tuple[np.ndarray, str]:
    """Return a map in BIDS units for the model: (T1 or T2 in s, or PD as is), and its suffix.

    ``suffix`` is the BIDS suffix of the input (T1map, T2map, PDmap, R1map, R2map); ``mask``
    the head (the unit is detected from the median inside it), ``units`` the sidecar's
    ``Units`` if any (see :func:`convert`). The returned suffix is T1map/T2map for rate
    inputs. Conversions are logged as warnings naming ``source``.
    """
    if suffix not in SUFFIXES:
        raise ValueError(f"{source}: unsupported map suffix {suffix!r} (one of {SUFFIXES})")
    out, target, decision = convert(data, suffix, mask, units)
    if "->" in decision and suffix in MS_THRESHOLD:
        LOG.warning(
            "%s: %s in milliseconds (%s); converting to seconds", source, suffix[:2], decision
        )
    elif suffix in RATE_PER_MS_THRESHOLD:
        if decision.startswith("1/ms"):
            LOG.warning("%s: %s looks like 1/ms; converting to 1/s", source, suffix)
        LOG.info("%s: converted %s (1/s) to %s (s)", source, suffix, target)
    return out, target
