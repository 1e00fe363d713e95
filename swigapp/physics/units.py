"""Units of quantitative maps: BIDS stores T1/T2 in seconds and R1/R2 in 1/s.

Maps stored in milliseconds are detected from their brain median and converted with a
logged warning; R1map/R2map are inverted to T1/T2.
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


def _brain_median(data: np.ndarray, mask: np.ndarray | None) -> float:
    values = data[mask.astype(bool)] if mask is not None else data
    values = values[np.isfinite(values) & (values > 0)]
    return float(np.median(values)) if values.size else 0.0


def to_seconds(
    data: np.ndarray, suffix: str, mask: np.ndarray | None = None, source: str = "<map>"
) -> tuple[np.ndarray, str]:
    """Return a map in BIDS units for the model: (T1 or T2 in s, or PD as is), and its suffix.

    ``suffix`` is the BIDS suffix of the input (T1map, T2map, PDmap, R1map, R2map). R1/R2
    maps are inverted (non-positive rates become 0, i.e. background). The returned suffix
    is T1map/T2map for rate inputs. Conversions are logged as warnings naming ``source``.
    """
    if suffix not in SUFFIXES:
        raise ValueError(f"{source}: unsupported map suffix {suffix!r} (one of {SUFFIXES})")
    data = np.asarray(data, dtype=np.float32)
    if suffix == "PDmap":
        return data, suffix
    median = _brain_median(data, mask)
    if suffix in MS_THRESHOLD:
        if median > MS_THRESHOLD[suffix]:
            LOG.warning(
                "%s: brain median %s = %.4g looks like milliseconds; converting to seconds",
                source,
                suffix[:2],
                median,
            )
            data = data / 1000.0
        return data, suffix
    rate = data
    if 0 < median < RATE_PER_MS_THRESHOLD[suffix]:
        LOG.warning(
            "%s: brain median %s = %.4g looks like 1/ms; converting to 1/s", source, suffix, median
        )
        rate = rate * 1000.0
    out = np.zeros_like(rate)
    positive = rate > 0
    out[positive] = 1.0 / rate[positive]
    target = "T1map" if suffix == "R1map" else "T2map"
    LOG.info("%s: converted %s (1/s) to %s (s)", source, suffix, target)
    return out, target
