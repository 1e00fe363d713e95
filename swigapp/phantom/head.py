"""A head around the template brain: extra-cerebral CSF, skull (tables and marrow), scalp.

Layers are shells at a distance d (mm) outside the brain mask (mask >= 0.5), each boundary
jittered per subject by a smooth random field (``JITTER`` relative SD), with a linear
partial-volume ramp one voxel wide. Nominal boundaries (mm from the brain), after adult
head anatomy (skull 5-7 mm thick, scalp 5-7 mm)::

    0.0 - 1.5  extra-cerebral CSF (subarachnoid space)
    1.5 - 3.5  inner table of the skull (cortical bone)
    3.5 - 5.5  diploe (fatty marrow)
    5.5 - 7.5  outer table (cortical bone)
    7.5 - 9.0  galea and temporal muscle
    9.0 - 13.0 subcutaneous fat
   13.0 - 14.5 skin (muscle-like values)

The layers share the voxel with the brain's own fractions: they fill 1 - max(mask, GM + WM).
Tissue values at 3T (PD water = 1, T1/T2 in s), drawn per subject within these ranges:
cortical bone as fitted maps show it (PD 0.05-0.10, T1 0.25-0.45 s, T2 5-15 ms: its real
T2* of about 0.5 ms is invisible to clinical echo times), fat and marrow (PD 0.85-0.95,
T1 0.35-0.42 s, T2 0.07-0.13 s; Gold et al. 2004, de Bazelaire et al. 2004), muscle and
skin (PD 0.70-0.78, T1 1.3-1.5 s, T2 0.03-0.05 s; Stanisz et al. 2005).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from swigapp.phantom.anatomy import Anatomy, smooth_field

#: Outer boundary (mm from the brain) of each layer, inside out; the CSF layer starts at 0.
LAYERS: tuple[tuple[str, float], ...] = (
    ("CSF", 1.5),
    ("bone", 3.5),
    ("marrow", 5.5),
    ("bone", 7.5),
    ("muscle", 9.0),
    ("fat", 13.0),
    ("muscle", 14.5),
)
#: Relative SD of the smooth per-subject jitter of each boundary.
JITTER = 0.12
#: Thickness (mm) of the whole head outside the brain: the grid margin it needs.
HEAD_MARGIN_MM = 18.0
#: (low, high) per head tissue: PD (water = 1), T1 (s), T2 (s).
HEAD_TISSUE_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "bone": {"PD": (0.05, 0.10), "T1": (0.25, 0.45), "T2": (0.005, 0.015)},
    "marrow": {"PD": (0.85, 0.95), "T1": (0.35, 0.42), "T2": (0.07, 0.13)},
    "muscle": {"PD": (0.70, 0.78), "T1": (1.30, 1.50), "T2": (0.030, 0.050)},
    "fat": {"PD": (0.85, 0.95), "T1": (0.35, 0.42), "T2": (0.07, 0.13)},
}
HEAD_TISSUES = tuple(HEAD_TISSUE_RANGES)


def head_fractions(anatomy: Anatomy, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Fractions (0-1) of extra-cerebral CSF ("CSF") and the head tissues outside the brain.

    Each voxel's fractions, with the brain's own (GM + WM + CSF = mask), sum to 1 inside
    the head and to 0 in the air beyond the skin.
    """
    vox = np.asarray(anatomy.voxel_size, dtype=float)
    brain = anatomy.mask >= 0.5
    dist = ndimage.distance_transform_edt(~brain, sampling=vox).astype(np.float32)
    width = float(vox.mean())
    field = smooth_field(anatomy.shape, rng, nodes=4)  # one field: the head is thicker or
    scale = np.clip(1.0 + JITTER * field, 0.6, 1.4)  # thinner as a whole, region by region
    # the template's GM/WM probabilities reach a little past its brain mask
    outside = np.clip(1.0 - np.maximum(anatomy.mask, anatomy.gm + anatomy.wm), 0.0, 1.0)
    out: dict[str, np.ndarray] = {}
    inner = np.ones(anatomy.shape, np.float32)  # ramp of the previous boundary (1 at d = 0)
    for name, radius in LAYERS:
        ramp = np.clip((dist - radius * scale) / width + 0.5, 0.0, 1.0)
        layer = (inner - ramp) * outside
        out[name] = out.get(name, 0.0) + layer
        inner = ramp
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


def background_noise(
    lr_maps: dict[str, np.ndarray], rng: np.random.Generator, sd: dict[str, float] | None = None
) -> dict[str, np.ndarray]:
    """LR maps with fitted-map background: zero-mean Gaussian noise (half of it negative) in
    the air (PD below 2 % of water), SD ``sd`` per map (default PD 0.015, T1 0.2 s, T2
    0.02 s)."""
    sd = sd or {"PD": 0.015, "T1": 0.2, "T2": 0.02}
    air = lr_maps["PD"] < 0.02
    out = {}
    for name, data in lr_maps.items():
        noise = sd.get(name, 0.0) * rng.standard_normal(data.shape)
        out[name] = np.where(air, noise, data).astype(np.float32)
    return out
