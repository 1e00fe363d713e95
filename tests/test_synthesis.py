"""Contrast synthesis from maps."""

import numpy as np

from swigapp.physics import DEFAULT_PROTOCOLS
from swigapp.synthesis import synthesize


def test_synthesis_matches_protocol_and_masks_background():
    maps = {
        "PD": np.array([0.68, 0.8, 1.0, 0.0, np.nan]),
        "T1": np.array([0.83, 1.33, 4.0, 0.0, 1.0]),
        "T2": np.array([0.079, 0.11, 1.5, 0.0, 0.1]),
    }
    flair = synthesize(maps, DEFAULT_PROTOCOLS["FLAIR"])
    assert flair.dtype == np.float32 and flair.shape == (5,)
    expected = DEFAULT_PROTOCOLS["FLAIR"].signal_np(maps["PD"][:3], maps["T1"][:3], maps["T2"][:3])
    np.testing.assert_allclose(flair[:3], expected, rtol=1e-6)
    assert flair[3] == 0.0 and flair[4] == 0.0
    assert flair[1] > flair[0] > flair[2]  # T2-FLAIR: GM > WM > CSF (nulled)
