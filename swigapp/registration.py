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
from typing import Any

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
    #: Fraction (0-1) of each fixed voxel inside the moving image's field of view.
    coverage: np.ndarray | None = None


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


def to_ants(data: np.ndarray, affine: np.ndarray) -> Any:
    """An ANTs image of ``data`` on ``affine`` (mm), with its units stated (ITK warns about
    images whose units are unknown)."""
    ants = import_ants()

    img = nib.Nifti1Image(np.asarray(data, np.float32), affine)
    img.header.set_xyzt_units("mm", "sec")
    return ants.from_nibabel_nifti(img)


#: Fraction of the fixed grid's voxels the Mattes metric samples at random: the app's
#: default (docs/benchmarks.md, "Registration": as accurate on validation phantoms as
#: swigapp 0.1.0's 0.2, in less time), and 0.1.0's.
DEFAULT_SAMPLING, SAMPLING_0_1_0 = 0.1, 0.2


def _pyramid(shrink: int, sampling: float) -> dict[str, Any]:
    """The app's ANTs settings: Mattes MI sampling ``sampling`` of the fixed voxels, 3
    levels (shrink 4, 2, 1 at ``shrink`` 1, else 2s, s, s; smoothing 2, 1, 0 voxels)."""
    return {
        "aff_metric": "mattes",
        "aff_iterations": (200, 100, 50),
        "aff_shrink_factors": (4, 2, 1) if shrink == 1 else (2 * shrink, shrink, shrink),
        "aff_smoothing_sigmas": (2, 1, 0),
        "aff_random_sampling_rate": float(sampling),
    }


def final_shrink(detail_mm: Sequence[float], voxel_mm: Sequence[float]) -> int:
    """Shrink factor of the registration pyramid's last level: 2 where the fixed image holds
    nothing finer than twice its voxel (the LR maps' voxels, ``detail_mm``, at least twice
    the HR grid's, ``voxel_mm``, along every axis), else 1 (full resolution)."""
    return 2 if min(detail_mm) >= 2.0 * max(voxel_mm) - 1e-3 else 1


@dataclass(frozen=True)
class RegistrationSettings:
    """How a guide is registered: ``transform`` (rigid or affine), ``seed``, ``sampling``
    (the fraction of the target's voxels the metric samples, 0 < f <= 1:
    :data:`DEFAULT_SAMPLING` the app's default, :data:`SAMPLING_0_1_0` swigapp 0.1.0's) and
    ``full_resolution`` (the last level on the full HR grid, as swigapp 0.2.0; by default
    at the resolution the target holds, that of the LR maps, :func:`final_shrink`)."""

    transform: str = "rigid"
    seed: int = 0
    sampling: float = DEFAULT_SAMPLING
    full_resolution: bool = False


def register_guide(
    fixed: np.ndarray,
    fixed_affine: np.ndarray,
    moving: np.ndarray,
    moving_affine: np.ndarray,
    settings: RegistrationSettings = RegistrationSettings(),
    save_prefix: str | Path | None = None,
    shrink: int = 1,
) -> Registered:
    """Register ``moving`` (an acquired guide) to ``fixed`` (its contrast synthesised from maps).

    Mattes mutual information, 3-level pyramid, as ``settings`` say (``full_resolution``
    is the caller's: it chooses ``shrink``); ``shrink``: the last level's shrink factor
    (:func:`final_shrink`; levels 4, 2, 1 at 1, else 2s, s, s). Returns the moving
    image resampled on the fixed grid (B-spline, clipped at 0), its field-of-view coverage
    there (0-1, linear: where the guide saw nothing, its resampled value is 0, not tissue)
    and the transform files
    (copied to ``save_prefix``* when given). Deterministic for a ``seed`` when ITK runs
    single-threaded (see :func:`import_ants`).
    """
    transform, sampling = settings.transform, settings.sampling
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown transform {transform!r} (rigid or affine)")
    ants = import_ants()
    ants.config._random_seed = ants_seed(settings.seed)
    fixed_img = to_ants(fixed, fixed_affine)
    moving_img = to_ants(moving, moving_affine)
    if not 0 < sampling <= 1:
        raise ValueError(f"metric sampling {sampling} must be a fraction in (0, 1]")
    if shrink < 1:
        raise ValueError(f"shrink factor {shrink} must be >= 1")
    if min(fixed.shape) < MIN_AXIS_VOXELS:
        return _register_in_plane(
            fixed_img, moving_img, TRANSFORMS[transform], sampling, save_prefix
        )
    result = ants.registration(
        fixed_img,
        moving_img,
        type_of_transform=TRANSFORMS[transform],
        **_pyramid(shrink, sampling),
    )
    warped = ants.apply_transforms(
        fixed_img, moving_img, transformlist=result["fwdtransforms"], interpolator="bSpline"
    )
    image = np.clip(warped.numpy(), 0.0, None).astype(np.float32)
    fov = ants.apply_transforms(
        fixed_img,
        moving_img.new_image_like(np.ones(moving_img.shape, np.float32)),
        transformlist=result["fwdtransforms"],
        interpolator="linear",
    )
    coverage = np.clip(fov.numpy(), 0.0, 1.0).astype(np.float32)
    metric = float(ants.image_similarity(fixed_img, warped, metric_type="MattesMutualInformation"))
    files = tuple(result["fwdtransforms"])
    return Registered(image=image, transforms=_saved(files, save_prefix), metric=metric,
                      coverage=coverage)  # fmt: skip


#: ITK's Gaussian smoothing (the registration pyramid, the metric) needs this many voxels
#: along every axis; a grid with fewer along one axis (a single slice, a thin slab) is
#: registered in its plane (:func:`_register_in_plane`).
MIN_AXIS_VOXELS = 4


def _saved(files: Sequence[str], save_prefix: str | Path | None) -> tuple[str, ...]:
    """The transform files, copied to ``save_prefix``<i><suffixes> when given."""
    if save_prefix is None:
        return tuple(files)
    saved = []
    for i, src in enumerate(files):
        dst = Path(f"{save_prefix}{i}{''.join(Path(src).suffixes)}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        saved.append(str(dst))
    return tuple(saved)


def _register_in_plane(
    fixed_img: object,
    moving_img: object,
    ants_transform: str,
    sampling: float,
    save_prefix: str | Path | None,
) -> Registered:
    """Registration of a guide to a fixed grid thinner than :data:`MIN_AXIS_VOXELS` along one
    axis (one slice or a few): the guide is first resampled onto the fixed grid by scanner
    coordinates, then a 2D transform of the fixed grid's plane (its other two axes, in mm of
    its voxel frame), estimated on the mean along the thin axis, is applied to every slice.
    Out-of-plane motion cannot be estimated from so few slices and is left uncorrected; the
    transform file is 2D (fixed voxel frame)."""
    ants = import_ants()
    shape = fixed_img.shape
    thin = [a for a, n in enumerate(shape) if n < MIN_AXIS_VOXELS]
    if len(thin) > 1:
        raise ValueError(f"cannot register onto a grid of {shape} voxels: thin along 2 axes")
    axis = thin[0]
    plane = [a for a in range(3) if a != axis]
    spacing = tuple(float(fixed_img.spacing[a]) for a in plane)
    on_grid = ants.resample_image_to_target(moving_img, fixed_img, interp_type="linear")
    seen = ants.resample_image_to_target(
        moving_img.new_image_like(np.ones(moving_img.shape, np.float32)), fixed_img, "linear"
    )

    def image2d(volume: np.ndarray) -> object:
        return ants.from_numpy(np.ascontiguousarray(volume, dtype=np.float32), spacing=spacing)

    fixed2d = image2d(fixed_img.numpy().mean(axis=axis))
    moving2d = image2d(on_grid.numpy().mean(axis=axis))
    # the guide already sits where its scanner coordinates put it: start from there, not
    # from ANTs' default centre-of-mass alignment (a brain-masked target against a whole
    # head moved a real slice's guide by 18 mm)
    result = ants.registration(
        fixed2d, moving2d, type_of_transform=ants_transform, initial_transform="Identity",
        **_pyramid(1, sampling),
    )  # fmt: skip
    xfm = result["fwdtransforms"]

    def moved(volume: np.ndarray, interpolator: str) -> np.ndarray:
        slices = [
            ants.apply_transforms(fixed2d, image2d(np.take(volume, k, axis=axis)), xfm,
                                  interpolator=interpolator).numpy()
            for k in range(volume.shape[axis])
        ]  # fmt: skip
        return np.stack(slices, axis=axis)

    image = np.clip(moved(on_grid.numpy(), "bSpline"), 0.0, None).astype(np.float32)
    coverage = np.clip(moved(seen.numpy(), "linear"), 0.0, 1.0).astype(np.float32)
    metric = float(ants.image_similarity(fixed2d, image2d(image.mean(axis=axis)),
                                         metric_type="MattesMutualInformation"))  # fmt: skip
    LOG.warning(
        "the maps hold %d voxel(s) along axis %d: the guide was registered in that plane "
        "only (2D %s); motion out of it is not corrected",
        shape[axis], axis, ants_transform.lower(),
    )  # fmt: skip
    return Registered(image=image, transforms=_saved(xfm, save_prefix), metric=metric,
                      coverage=coverage)  # fmt: skip
