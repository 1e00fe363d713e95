"""The grids of the maps: LR and HR shapes, affines and voxel sizes.

LR voxel j sits at HR voxel coordinate j N/M (per axis, HR size N, LR size M), the
convention of the k-space truncation (:mod:`swigapp.operators.kspace`): the LR affine is the
HR affine with each voxel axis scaled by N/M, same translation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def lr_shape(hr_shape: Sequence[int], factors: Sequence[float]) -> tuple[int, ...]:
    """LR grid size for HR ``hr_shape`` and per-axis factors (integer or fractional).

    Each axis gets M = round(N / factor), at least 1. ``factors`` of length 1 applies to
    every axis.
    """
    factors = _per_axis(factors, len(hr_shape))
    out = []
    for n, f in zip(hr_shape, factors, strict=True):
        if f < 1:
            raise ValueError(f"downsampling factor must be >= 1, got {f}")
        out.append(max(1, round(n / f)))
    return tuple(out)


def voxel_sizes(affine: np.ndarray) -> tuple[float, ...]:
    """Voxel edge lengths (mm) of an affine."""
    return tuple(float(v) for v in np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0)))


def lr_affine(
    hr_affine: np.ndarray, hr_shape: Sequence[int], out_shape: Sequence[int]
) -> np.ndarray:
    """Affine of the LR grid: HR voxel axes scaled by N/M, same translation (voxel 0 fixed)."""
    scale = np.array([n / m for n, m in zip(hr_shape, out_shape, strict=True)], dtype=float)
    affine = np.array(hr_affine, dtype=float, copy=True)
    affine[:3, :3] = affine[:3, :3] * scale[None, :]
    return affine


def _per_axis(factors: Sequence[float] | float, ndim: int) -> tuple[float, ...]:
    if isinstance(factors, int | float):
        factors = [factors]
    factors = [float(f) for f in factors]
    if len(factors) == 1:
        factors = factors * ndim
    if len(factors) != ndim:
        raise ValueError(f"need 1 or {ndim} factors, got {len(factors)}")
    return tuple(factors)


def hr_grid(
    lr_affine: np.ndarray, lr_shape: Sequence[int], voxel_size: Sequence[float]
) -> tuple[tuple[int, ...], np.ndarray]:
    """HR grid covering the LR field of view at ``voxel_size`` (mm): (shape, affine).

    N = round(M * lr_voxel / voxel) per axis; the HR affine keeps voxel 0 in place (the
    inverse of :func:`lr_affine`), so zero-filled upsampling onto it is consistent.
    """
    lr_affine = np.asarray(lr_affine, dtype=float)
    lr_vox = voxel_sizes(lr_affine)
    shape = tuple(
        max(m, round(m * lv / float(v)))
        for m, lv, v in zip(lr_shape, lr_vox, voxel_size, strict=True)
    )
    affine = lr_affine.copy()
    affine[:3, :3] = (
        lr_affine[:3, :3] * (np.asarray(lr_shape, float) / np.asarray(shape, float))[None, :]
    )
    return shape, affine


def thin_axes_cross(shape: tuple[int, ...], steps: int) -> np.ndarray:
    """The face-connected structuring element, without the axes that hold fewer than
    ``2 * steps + 1`` voxels (a single slice, a thin slab): eroding along such an axis would
    remove everything, and every voxel would touch the border there, so holes could not be
    filled. Equal to ``ndimage.generate_binary_structure(ndim, 1)`` on ordinary volumes."""
    cross = ndimage.generate_binary_structure(len(shape), 1)
    for axis, n in enumerate(shape):
        if n < 2 * steps + 1:
            keep = [slice(None)] * len(shape)
            keep[axis] = slice(1, 2)
            only = np.zeros_like(cross)
            only[tuple(keep)] = cross[tuple(keep)]
            cross = only
    return cross


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with its enclosed holes filled; along an axis of fewer than 3 voxels (a
    single slice) the array's faces are not an edge, so a slice's holes are filled in its
    plane (``ndimage.binary_fill_holes`` alone fills none there: every voxel touches the
    faces)."""
    return ndimage.binary_fill_holes(mask, thin_axes_cross(np.shape(mask), 1))
