"""Guide-to-maps registration with ANTsPy (rigid by default, mutual information).

Physics-informed, same-contrast registration: the fixed image is the guide's own contrast
synthesised from the LR maps (brought to the HR grid), so the metric compares like with
like. The moving guide is resampled onto the HR grid with the estimated transform.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

LOG = logging.getLogger("swigapp.registration")

TRANSFORMS = {"rigid": "Rigid", "affine": "Affine"}


@dataclass(frozen=True)
class Registered:
    """A guide resampled onto the fixed grid, with the ANTs transform files that did it."""

    image: np.ndarray
    transforms: tuple[str, ...]
    metric: float


def import_ants():  # noqa: ANN201 (the ants module)
    """Import ANTsPy with ITK single-threaded unless the caller chose a thread count.

    ITK reads ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` once, when first used: with one thread
    and a fixed seed, ANTs registration is bit-for-bit reproducible (with more it is not).
    """
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")
    import ants

    return ants


def ants_seed(seed: int) -> int:
    """The ANTs random seed for a swigapp seed: never 0, which ANTs treats as 'seed from the
    clock'. ANTsPy passes it as ``--random-seed`` through its (only) hook, ``ants.config``."""
    return abs(int(seed)) + 1


def _to_ants(data: np.ndarray, affine: np.ndarray):
    ants = import_ants()

    img = nib.Nifti1Image(np.asarray(data, np.float32), affine)
    img.header.set_xyzt_units("mm", "sec")
    return ants.from_nibabel_nifti(img)


#: Iterations per pyramid level, coarse to fine.
ITERATIONS = (200, 100, 50)


def pyramid(
    finest_shrink: int = 1, refine_iterations: int = 0
) -> tuple[tuple[int, ...], tuple[float, ...], tuple[int, ...]]:
    """Shrink factors, smoothing sigmas (voxels) and iterations of the pyramid: three levels
    (4f, 2f, f) of :data:`ITERATIONS`, the finest ``finest_shrink`` = f times coarser than
    the fixed grid, then, when f > 1 and ``refine_iterations``, a full-resolution level of
    that many iterations; sigma = shrink / 2 (0 at full resolution)."""
    f = max(1, int(finest_shrink))
    shrinks: tuple[int, ...] = (4 * f, 2 * f, f)
    iterations: tuple[int, ...] = ITERATIONS
    if f > 1 and refine_iterations:
        shrinks, iterations = (*shrinks, 1), (*iterations, int(refine_iterations))
    return shrinks, tuple(0.0 if s == 1 else s / 2 for s in shrinks), iterations


def finest_shrink_for(lr_voxel: Sequence[float], hr_voxel: Sequence[float]) -> int:
    """The coarsest finest level that still holds all the detail of a fixed image made from
    LR maps: the smallest LR/HR voxel ratio, rounded down (2 mm maps on a 1 mm grid: 2;
    1x1x4 mm: 1, since the in-plane detail is at full resolution)."""
    ratio = min(float(lr) / float(hr) for lr, hr in zip(lr_voxel, hr_voxel, strict=True))
    return max(1, int(np.floor(ratio + 1e-3)))


def register_guide(
    fixed: np.ndarray,
    fixed_affine: np.ndarray,
    moving: np.ndarray,
    moving_affine: np.ndarray,
    transform: str = "rigid",
    seed: int = 0,
    save_prefix: str | Path | None = None,
    finest_shrink: int = 1,
    refine_iterations: int = 0,
    sampling_rate: float = 0.2,
    fixed_mask: np.ndarray | None = None,
) -> Registered:
    """Register ``moving`` (an acquired guide) to ``fixed`` (its contrast synthesised from maps).

    Mattes mutual information, 3-level pyramid (:func:`pyramid`) ending ``finest_shrink``
    times coarser than the fixed grid (the fixed image carries no detail finer than the LR
    maps, :func:`finest_shrink_for`); ``transform`` is 'rigid' or 'affine'. Returns the
    moving image resampled on the fixed grid (B-spline, clipped at 0) and the transform
    files (copied to ``save_prefix``* when given). Deterministic for a ``seed`` when ITK
    runs single-threaded (see :func:`import_ants`).
    """
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown transform {transform!r} (rigid or affine)")
    ants = import_ants()
    ants.config._random_seed = ants_seed(seed)
    fixed_img = _to_ants(fixed, fixed_affine)
    moving_img = _to_ants(moving, moving_affine)
    shrinks, sigmas, iterations = pyramid(finest_shrink, refine_iterations)
    result = ants.registration(
        fixed_img,
        moving_img,
        type_of_transform=TRANSFORMS[transform],
        aff_metric="mattes",
        aff_iterations=iterations,
        aff_random_sampling_rate=sampling_rate,
        mask=None if fixed_mask is None else _to_ants(fixed_mask.astype(np.float32), fixed_affine),
        aff_shrink_factors=shrinks,
        aff_smoothing_sigmas=sigmas,
    )
    warped = ants.apply_transforms(
        fixed_img, moving_img, transformlist=result["fwdtransforms"], interpolator="bSpline"
    )
    image = np.clip(warped.numpy(), 0.0, None).astype(np.float32)
    metric = float(ants.image_similarity(fixed_img, warped, metric_type="MattesMutualInformation"))
    files = tuple(result["fwdtransforms"])
    if save_prefix is not None:
        saved = []
        for i, src in enumerate(files):
            dst = Path(f"{save_prefix}{i}{''.join(Path(src).suffixes)}")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            saved.append(str(dst))
        files = tuple(saved)
    return Registered(image=image, transforms=files, metric=metric)
