"""Contrast synthesis: any weighted image from PD/T1/T2 maps and a protocol."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from swigapp.physics.protocol import Protocol


def synthesize(maps: Mapping[str, np.ndarray], protocol: Protocol) -> np.ndarray:
    """Weighted image (float32, PD units) of ``protocol`` from maps PD (a.u.), T1 and T2 (s).

    Non-finite or negative map values are treated as background (signal 0).
    """
    pd, t1, t2 = (np.nan_to_num(np.asarray(maps[k], dtype=np.float64)) for k in ("PD", "T1", "T2"))
    valid = (pd > 0) & (t1 > 0) & (t2 > 0)
    out = protocol.signal_np(
        np.where(valid, pd, 0.0), np.where(valid, t1, 1.0), np.where(valid, t2, 1.0)
    )
    return np.where(valid, out, 0.0).astype(np.float32)
