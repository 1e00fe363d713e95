"""Real anatomy offline: tissue probability maps of the ICBM 2009 template shipped in nilearn.

CSF = brain mask - GM - WM (clipped), since nilearn ships no CSF map. Each subject gets a
random smooth deformation, so every generated brain is distinct.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from scipy import ndimage

from swigapp.operators import grid

Size = Literal["tiny", "slab", "full"]

#: Grid of each phantom size: template resolution (mm) and how many axial slices to keep
#: around MNI z = +10 mm, through the lateral ventricles and basal ganglia (None: whole brain).
SIZES: dict[str, dict] = {
    "tiny": {"resolution": 2, "z_slices": 40, "multiple": 4},
    "slab": {"resolution": 1, "z_slices": 64, "multiple": 4},
    "full": {"resolution": 1, "z_slices": None, "multiple": 4},
}
SLAB_CENTRE_MNI_Z = 10.0


@dataclass(frozen=True)
class Anatomy:
    """Tissue probabilities (0-1) on one grid, with its NIfTI affine (mm).

    Optional, for real individuals (:mod:`swigapp.phantom.individuals`; None for the
    template): ``deep_gm``, the part of ``gm`` in the deep nuclei (``gm`` stays all GM, so
    ``mask = gm + wm + csf`` as for the template); ``head``, fractions of the extra-cerebral
    tissues by the names of :mod:`swigapp.phantom.head` (``CSF``: extra-cerebral fluid).
    """

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    mask: np.ndarray
    affine: np.ndarray
    deep_gm: np.ndarray | None = None
    head: dict[str, np.ndarray] | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid size in voxels."""
        return self.gm.shape

    @property
    def voxel_size(self) -> tuple[float, ...]:
        """Voxel edge lengths in mm."""
        return grid.voxel_sizes(self.affine)


@functools.lru_cache(maxsize=2)
def _template(resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from nilearn import datasets  # imported lazily: slow import, only the phantom needs it

    gm_img = datasets.load_mni152_gm_template(resolution=resolution)
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=resolution).dataobj, np.float32)
    mask = np.asarray(datasets.load_mni152_brain_mask(resolution=resolution).dataobj, np.float32)
    gm = np.asarray(gm_img.dataobj, np.float32)
    return gm, wm, mask, np.asarray(gm_img.affine, dtype=float)


def load_anatomy(size: Size = "tiny", margin_mm: float = 0.0, z_extra: int = 0) -> Anatomy:
    """Template anatomy cropped to the brain, on a grid whose sizes are multiples of 4.

    ``tiny``: 2 mm voxels, 40 axial slices centred on MNI z = +10 mm (76 x 92 x 40);
    ``slab``: 1 mm voxels, 64 axial slices centred on MNI z = +10 mm (148 x 184 x 64);
    ``full``: 1 mm voxels, the whole brain (148 x 184 x 160). ``margin_mm``: room added
    around the brain box on every side (in-plane only for the slabs), e.g. for a head.
    ``z_extra``: slices added below and above (a slab's neighbouring slices, e.g. for
    guides whose field of view exceeds the maps'; the grid's z size is then no longer a
    multiple of 4).
    """
    if size not in SIZES:
        raise ValueError(f"unknown phantom size {size!r} (one of {', '.join(SIZES)})")
    spec = SIZES[size]
    gm, wm, mask, affine = _template(spec["resolution"])
    lo, hi = _brain_box(mask, spec["multiple"], round(margin_mm / spec["resolution"]))
    if spec["z_slices"] is not None:
        centre = round(float(np.linalg.solve(affine, [0.0, 0.0, SLAB_CENTRE_MNI_Z, 1.0])[2]))
        lo[2] = max(0, min(centre - spec["z_slices"] // 2, mask.shape[2] - spec["z_slices"]))
        hi[2] = lo[2] + spec["z_slices"]
    lo[2], hi[2] = lo[2] - z_extra, hi[2] + z_extra
    shift = np.eye(4)
    shift[:3, 3] = lo
    gm, wm, mask = (_crop_pad(a, lo, hi) for a in (gm, wm, mask))
    csf = np.clip(mask - gm - wm, 0.0, 1.0)
    return Anatomy(gm=gm, wm=wm, csf=csf, mask=mask, affine=affine @ shift)


def _brain_box(mask: np.ndarray, multiple: int, margin: int = 0) -> tuple[list[int], list[int]]:
    """Bounding box of the mask plus ``margin`` voxels per side, grown to a size that is a
    multiple of ``multiple``."""
    idx = np.argwhere(mask > 0)
    lo, hi = idx.min(axis=0) - margin, idx.max(axis=0) + 1 + margin
    out_lo, out_hi = [], []
    for a, b in zip(lo, hi, strict=True):
        size = int(np.ceil((b - a + 2) / multiple) * multiple)
        start = int(a - (size - (b - a)) // 2)
        out_lo.append(start)
        out_hi.append(start + size)
    return out_lo, out_hi


def _crop_pad(a: np.ndarray, lo: list[int], hi: list[int]) -> np.ndarray:
    """Crop ``a`` to [lo, hi) per axis, padding with zeros outside the array."""
    out = np.zeros([h - lo_i for lo_i, h in zip(lo, hi, strict=True)], dtype=a.dtype)
    src = tuple(slice(max(a0, 0), min(h, n)) for a0, h, n in zip(lo, hi, a.shape, strict=True))
    dst = tuple(slice(s.start - a0, s.stop - a0) for s, a0 in zip(src, lo, strict=True))
    out[dst] = a[src]
    return out


def smooth_field(shape: tuple[int, ...], rng: np.random.Generator, nodes: int = 5) -> np.ndarray:
    """Smooth random field (zero mean, unit SD) from a coarse random grid, cubic-upsampled."""
    coarse = rng.standard_normal((nodes,) * len(shape))
    field = ndimage.zoom(coarse, [n / nodes for n in shape], order=3, mode="nearest")
    field = field[tuple(slice(0, n) for n in shape)]
    field = field - field.mean()
    return (field / (field.std() + 1e-12)).astype(np.float32)


def deform(anatomy: Anatomy, rng: np.random.Generator, amplitude_mm: float = 3.0) -> Anatomy:
    """Apply a random smooth deformation (peak displacement about ``amplitude_mm``); deep GM
    and head fractions, where present, are warped with the rest."""
    if amplitude_mm <= 0:
        return anatomy
    shape = anatomy.shape
    vox = np.asarray(anatomy.voxel_size)
    index = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    coords = []
    for axis in range(3):
        disp = smooth_field(shape, rng, nodes=4)
        disp *= amplitude_mm / (np.abs(disp).max() + 1e-12) / vox[axis]
        coords.append(index[axis] + disp)

    def warp(a: np.ndarray) -> np.ndarray:
        return ndimage.map_coordinates(a, coords, order=1, mode="constant").astype(np.float32)

    gm, wm, mask = warp(anatomy.gm), warp(anatomy.wm), warp(anatomy.mask)
    csf = np.clip(mask - gm - wm, 0.0, 1.0)
    extra = {}
    if anatomy.deep_gm is not None:
        extra["deep_gm"] = np.minimum(warp(anatomy.deep_gm), gm)
    if anatomy.head is not None:
        extra["head"] = {k: warp(v) for k, v in anatomy.head.items()}
    return replace(anatomy, gm=gm, wm=wm, csf=csf, mask=mask, **extra)
