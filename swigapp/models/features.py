"""Network inputs for one subject: LR maps on the HR grid, normalised guides, physics features.

Everything here works on whole volumes (channels first) and is shared by training,
adaptation and inference, so the network always sees the same kind of input.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from swigapp.maps import MAP_ORDER
from swigapp.physics.protocol import Protocol

if TYPE_CHECKING:
    from swigapp.operators.acquisition import Acquisition

#: Guide slots of the network, in channel order; absent guides are zero with presence 0.
GUIDE_ORDER: tuple[str, ...] = ("T1w", "T2w", "FLAIR", "PDw")
#: Relaxation times are floored here (s) before taking logs (background, ringing).
T_FLOOR = 0.02
#: Physical upper limits used to bound the network's outputs (PD a.u., T1 and T2 in s).
T1_MAX, T2_MAX = 6.0, 4.0


@dataclass
class SubjectTensors:
    """One subject on the HR grid, channels first, float32.

    ``lr_up``: LR maps (PD a.u., T1 s, T2 s) by zero-filled k-space upsampling, (3, X, Y, Z);
    ``lr``: acquired LR maps (3, x, y, z); ``guides``: robustly normalised guides (G, X, Y, Z);
    ``synth``: each guide's contrast synthesised from ``lr_up`` by its protocol, normalised
    the same way (G, X, Y, Z); ``present``: (G,) 0/1; ``mask``: brain mask (X, Y, Z) bool;
    ``truth``: HR maps when known (phantoms), else None; ``lr_valid``: (3, x, y, z) float
    0/1 on the LR grid, 0 where the input map's voxel was invalid (NaN, Inf, negative;
    left out of the LR-consistency term), or None when every voxel is valid;
    ``acquisition``: the LR acquisition model from this HR grid to the LR grid (the
    LR-consistency operator; crops restrict it).
    """

    lr_up: torch.Tensor
    lr: torch.Tensor
    guides: torch.Tensor
    synth: torch.Tensor
    present: torch.Tensor
    protocols: list[Protocol | None]
    mask: torch.Tensor
    raw_guides: torch.Tensor
    acquisition: Acquisition
    truth: torch.Tensor | None = None
    lr_valid: torch.Tensor | None = None

    @functools.cached_property
    def brain_voxels(self) -> torch.Tensor:
        """(N, 3) indices of the mask's voxels (computed once: crops sample them)."""
        return torch.nonzero(self.mask)

    @property
    def hr_shape(self) -> tuple[int, int, int]:
        """HR grid size."""
        return tuple(self.lr_up.shape[1:])

    @property
    def factors(self) -> tuple[float, ...]:
        """Per-axis downsampling factors N/M."""
        return tuple(n / m for n, m in zip(self.hr_shape, self.lr.shape[1:], strict=True))

    def with_guides(self, names: Sequence[str]) -> SubjectTensors:
        """Copy that keeps only the named guides (the others become absent)."""
        keep = torch.tensor([float(g in names) for g in GUIDE_ORDER])
        present = self.present * keep
        return SubjectTensors(
            lr_up=self.lr_up,
            lr=self.lr,
            guides=self.guides * present[:, None, None, None],
            synth=self.synth * present[:, None, None, None],
            present=present,
            protocols=[
                p if k else None for p, k in zip(self.protocols, keep.tolist(), strict=True)
            ],
            mask=self.mask,
            raw_guides=self.raw_guides * present[:, None, None, None],
            truth=self.truth,
            lr_valid=self.lr_valid,
            acquisition=self.acquisition,
        )


def robust_scale(image: np.ndarray, mask: np.ndarray) -> float:
    """Median of the positive image values inside the mask (1.0 if there are none)."""
    values = image[mask & (image > 0)]
    return float(np.median(values)) if values.size else 1.0


def physical_maps(maps: np.ndarray) -> np.ndarray:
    """Clip maps (3, ...) to physical ranges: PD >= 0, T_FLOOR <= T1, T2 <= their maxima."""
    out = np.array(maps, dtype=np.float32, copy=True)
    out[0] = np.clip(out[0], 0.0, None)
    out[1] = np.clip(out[1], T_FLOOR, T1_MAX)
    out[2] = np.clip(out[2], T_FLOOR, T2_MAX)
    return out


def upsample_maps(lr_maps: Mapping[str, np.ndarray], acquisition: Acquisition) -> np.ndarray:
    """LR maps (PD, T1 s, T2 s) -> (3, *acquisition.hr_shape) by the initial upsampling of
    ``acquisition``, clipped to physical ranges (:func:`physical_maps`)."""
    lr = np.stack([np.asarray(lr_maps[m], dtype=np.float64) for m in MAP_ORDER])
    return physical_maps(np.asarray(acquisition.upsample(lr), dtype=np.float32))


def prepare_subject(
    lr_maps: Mapping[str, np.ndarray],
    guides: Mapping[str, np.ndarray],
    protocols: Mapping[str, Protocol],
    mask: np.ndarray,
    truth: Mapping[str, np.ndarray] | None = None,
    lr_up: np.ndarray | None = None,
    lr_valid: np.ndarray | None = None,
    acquisition: Acquisition | None = None,
) -> SubjectTensors:
    """Build network inputs from LR maps (PD a.u., T1/T2 s), HR guides on the HR grid, a mask.

    The HR grid is the guides' (and mask's) grid. ``acquisition``: the LR maps'
    acquisition model onto it (default: 3D k-space truncation between the two grids); the
    LR maps are brought onto the grid by its initial upsampling (pass ``lr_up`` from
    :func:`upsample_maps` if already computed). Guides not in :data:`GUIDE_ORDER` are
    ignored. ``lr_valid``: (3, x, y, z) validity of the LR voxels (None: all valid).
    """
    from swigapp.operators.acquisition import KSpace3D

    hr_shape = tuple(mask.shape)
    mask = np.asarray(mask, dtype=bool)
    lr = np.stack([np.asarray(lr_maps[m], dtype=np.float32) for m in MAP_ORDER])
    if acquisition is None:
        acquisition = KSpace3D(hr_shape, lr.shape[1:])
    up = upsample_maps(lr_maps, acquisition) if lr_up is None else lr_up
    n = len(GUIDE_ORDER)
    norm = np.zeros((n, *hr_shape), np.float32)
    raw = np.zeros((n, *hr_shape), np.float32)
    synth = np.zeros((n, *hr_shape), np.float32)
    present = np.zeros(n, np.float32)
    protos: list[Protocol | None] = [None] * n
    for i, name in enumerate(GUIDE_ORDER):
        if name not in guides:
            continue
        image = np.asarray(guides[name], dtype=np.float32)
        if image.shape != hr_shape:
            raise ValueError(f"guide {name} has shape {image.shape}, HR grid is {hr_shape}")
        s = protocols[name].signal_np(up[0], up[1], up[2]).astype(np.float32) * mask
        raw[i] = image
        norm[i] = image / robust_scale(image, mask)
        synth[i] = s / robust_scale(s, mask)
        present[i] = 1.0
        protos[i] = protocols[name]
    true = None
    if truth is not None:
        true = torch.from_numpy(np.stack([np.asarray(truth[m], np.float32) for m in MAP_ORDER]))
    return SubjectTensors(
        lr_up=torch.from_numpy(up),
        lr=torch.from_numpy(lr),
        guides=torch.from_numpy(norm),
        synth=torch.from_numpy(synth),
        present=torch.from_numpy(present),
        protocols=protos,
        mask=torch.from_numpy(mask),
        raw_guides=torch.from_numpy(raw),
        truth=true,
        lr_valid=None if lr_valid is None else torch.from_numpy(np.asarray(lr_valid, np.float32)),
        acquisition=acquisition,
    )


def encode(maps: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Maps (PD, T1 s, T2 s) along ``dim`` -> network domain (PD, ln T1, ln T2)."""
    pd, t1, t2 = maps.unbind(dim)
    return torch.stack(
        [pd, torch.log(t1.clamp(T_FLOOR, T1_MAX)), torch.log(t2.clamp(T_FLOOR, T2_MAX))], dim
    )


def decode(z: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Network domain -> maps with physical ranges: PD >= 0, T1 and T2 in (T_FLOOR/2, max]."""
    zp, z1, z2 = z.unbind(dim)
    pd = torch.nn.functional.softplus(zp, beta=50.0)
    lo = np.log(T_FLOOR / 2)
    t1 = torch.exp(lo + torch.nn.functional.softplus(z1 - lo, beta=5.0)).clamp_max(T1_MAX)
    t2 = torch.exp(lo + torch.nn.functional.softplus(z2 - lo, beta=5.0)).clamp_max(T2_MAX)
    return torch.stack([pd, t1, t2], dim)
