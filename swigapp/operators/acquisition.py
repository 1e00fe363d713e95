"""The LR acquisition as one object: forward operator, exact adjoint, initial upsampling.

Two models, one interface (:class:`Acquisition`), built from the maps' metadata by
:func:`from_metadata`:

* :class:`KSpace3D`: 3D k-space truncation (:mod:`swigapp.operators.kspace`), bit-identical
  to calling ``kspace.downsample``, ``kspace.adjoint_downsample`` and ``kspace.upsample``
  directly.
* :class:`SliceStack2D`: a 2D multi-slice stack. In-plane k-space truncation of the two
  in-plane axes; through-plane, the object is convolved with the slice profile (Gaussian of
  FWHM = ``SliceThickness`` by default, or rect) and sampled at the slice centres, which sit
  ``SpacingBetweenSlices`` apart (a gap, spacing > thickness, leaves tissue unsampled).

Geometry (as :func:`swigapp.operators.grid.hr_grid`): the HR grid keeps the LR axes (the LR field of
view at the HR voxel size), so along the slice axis (HR size N, LR size M) slice k is centred
at HR voxel coordinate k N/M, the position of LR voxel k in the LR affine. The profile is
expressed in HR voxels of that axis (FWHM = thickness / HR voxel size) and integrated over
each HR voxel (the HR image is piecewise constant), so fractional centres and thin profiles
are exact. The grid is periodic along the slice axis, as the DFT makes it along every axis:
HR voxels past N - N/(2M) lie below slice 0. Rows are normalised to unit sum (the mean
intensity is kept, as k-space truncation keeps it).

Initial upsampling of :class:`SliceStack2D` (network input, registration targets): in-plane
zero-filled k-space (the exact inverse on the band); through-plane, per in-plane column, the
regularised least-squares inverse of the profile operator A (M x N):
x = (A^T A + lam D^T D)^-1 A^T y, D the periodic first difference, lam = 0.1 (``"lsq"``).
Chosen by measurement on the phantom (``slab``: 1 mm template, 148x184x64, axial stack of
the HR field of view, in-plane 1x, truth T1 in s, LR + 2 % relative noise as the phantom's
fitting noise). NRMSE: vs the truth over the brain mask; overshoot: peak over/undershoot of
a unit step along the slice axis (worst over sub-slice step positions, % of the step);
ringing: largest error farther than 1.5 slice spacings from the step's edges (the Gibbs
tail, %); DC: data consistency ||A x - y|| / ||y|| (%, includes the 2 % noise). Each cell:
NRMSE / overshoot / ringing / DC; slices "thickness/gap" in mm (spacing 4 mm for 4/0, else
5.8 mm: 11 slices across 64 mm)::

    profile, slices  zerofill          spline            tikhonov 1e-2     lsq 0.1 (chosen)
    gaussian 3/0     8.8/6.3/4.3/4.0   8.9/4.4/1.5/4.2   10.0/11.7/9.2/3.0 8.3/7.8/1.9/2.7
    gaussian 4/0     10.8/5.3/4.0/4.5  11.1/4.0/2.2/4.9  12.0/10.2/10/4.0  10.2/7.8/3.2/2.6
    gaussian 4/2     14.7/10.1/6.9/3.7 14.4/8.0/2.9/4.2  29.3/23.7/42/5.2  14.2/10.4/2.6/1.9
    gaussian 6/0     14.8/3.6/3.2/5.3  15.0/3.9/2.4/5.7  15.7/10.5/11/5.7  13.7/9.4/3.5/2.4
    rect 4/0         10.4/11.3/6.6/3.1 10.4/8.5/2.8/3.7  12.6/6.1/4.3/3.9  10.2/11.4/2.6/2.2
    rect 4/2         15.6/16.1/9.9/2.2 14.8/10.7/2.8/2.7 51.8/8.8/100/4.2  14.7/9.3/1.8/1.7
    rect 6/0         14.2/13.1/7.1/3.8 14.1/10.1/2.7/4.4 18.0/10.6/9.3/5.5 13.8/13.8/3.1/1.9

``lsq`` has the lowest NRMSE in every case, fits the data to the noise level (zero-filled
and spline do not deconvolve the profile: 3-6 % off), and its Gibbs tail is below
zero-filled's except for the thick Gaussian (3.5 vs 3.2 %, where the profile has already
removed the frequencies that ring). Its peak overshoot next to an edge is the price of fitting
the data (the step is sharpened back): without a gap it is above zero-filled's for Gaussian
profiles (7.8-9.4 vs 3.6-6.3 %) and about equal for rect; with a gap it is lower. The spline
rings least but blurs; Tikhonov (A^T A + lam I) pulls unsampled voxels to zero (NRMSE 29-52 %
with a gap). lam 1e-3 fits the data exactly but rings more (tail up to 6 %); lam 0.3 blurs
(NRMSE above zero-filled's for Gaussian slices without a gap).

Operators act on the last three axes of torch tensors (float32/float64, CPU or CUDA, any
leading batch axes, autograd through everything); numpy arrays are accepted and returned as
numpy, as in :mod:`swigapp.operators.kspace`.

Calling convention for the app: ``acq = from_metadata(lr.shape, lr_affine, hr_voxel_mm,
sidecar)``; ``acq.upsample(lr)`` replaces ``kspace.upsample(lr, hr_shape)``,
``acq.forward(hr)`` replaces ``kspace.downsample(hr, lr_shape)``.
"""

from __future__ import annotations

import abc
import functools
import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from scipy import ndimage, special

from swigapp.operators import grid, kspace
from swigapp.operators.interp import upsample_interp
from swigapp.text import dims

ArrayLike = np.ndarray | torch.Tensor
Profile = Literal["gaussian", "rect"]
UpsampleMethod = Literal["lsq", "tikhonov", "spline", "zerofill"]

LOG = logging.getLogger("swigapp.operators.acquisition")

#: Auto rule: a stack whose slice thickness (or largest LR voxel) exceeds this many times the
#: in-plane voxel size is treated as 2D multi-slice when the sidecar does not say.
ANISOTROPY_2D = 1.5
#: Default weight of the first-difference penalty of the "lsq" upsampling (A rows sum to 1).
LSQ_LAMBDA = 0.1
#: Default weight of the "tikhonov" upsampling.
TIKHONOV_LAMBDA = 1e-2

_GAUSS_SIGMA_PER_FWHM = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


class Acquisition(abc.ABC):
    """An LR acquisition of an HR image: ``forward`` (HR -> LR), its exact ``adjoint`` and
    an initial HR estimate ``upsample`` (LR -> HR), on the last three axes."""

    hr_shape: tuple[int, int, int]
    lr_shape: tuple[int, int, int]
    #: Grids (4x4, mm) when built by :func:`from_metadata`, else None.
    hr_affine: np.ndarray | None = None
    lr_affine: np.ndarray | None = None

    @property
    def factors(self) -> tuple[float, float, float]:
        """Per-axis ratio N/M of HR to LR sizes (the LR voxel in HR voxels)."""
        return tuple(n / m for n, m in zip(self.hr_shape, self.lr_shape, strict=True))

    def forward(self, x: ArrayLike) -> ArrayLike:
        """HR (..., *hr_shape) -> LR (..., *lr_shape)."""
        t, is_numpy = _tensor(x, self.hr_shape, "HR")
        return _back(self._forward(t), is_numpy)

    def adjoint(self, y: ArrayLike) -> ArrayLike:
        """Exact adjoint of :meth:`forward`: LR (..., *lr_shape) -> HR (..., *hr_shape)."""
        t, is_numpy = _tensor(y, self.lr_shape, "LR")
        return _back(self._adjoint(t), is_numpy)

    def upsample(self, y: ArrayLike) -> ArrayLike:
        """Initial HR estimate from LR data: LR (..., *lr_shape) -> HR (..., *hr_shape)."""
        t, is_numpy = _tensor(y, self.lr_shape, "LR")
        return _back(self._upsample(t), is_numpy)

    def interpolate(self, y: ArrayLike) -> np.ndarray:
        """The best measured interpolation of LR data for this acquisition (the fallback
        where super-resolution is not trusted; :func:`swigapp.consistency.fallback_maps`):
        LR (..., *lr_shape) -> HR (..., *hr_shape), numpy."""
        return np.asarray(self.upsample(y))

    @abc.abstractmethod
    def restrict(self, hr_shape: Sequence[int], lr_shape: Sequence[int]) -> Acquisition:
        """The same acquisition from an HR box to its LR box (crops cut along whole LR
        voxels, :func:`swigapp.models.crops.random_crop`): periodic within the box, as the
        k-space operator is (both sides of an LR loss go through it, so the wrap cancels
        where prediction and data agree)."""

    @abc.abstractmethod
    def permuted(self, perm: Sequence[int]) -> Acquisition:
        """The same acquisition after the axes are permuted (new axis i = old ``perm[i]``);
        the grids' affines are dropped."""

    @abc.abstractmethod
    def to_record(self) -> dict[str, Any]:
        """JSON-ready record (model, shapes, factors, geometry) for methods text, sidecars
        and the workflow's traits; :meth:`from_record` rebuilds the operator from it."""

    @staticmethod
    def from_record(record: Mapping[str, Any]) -> Acquisition:
        """The acquisition that :meth:`to_record` recorded."""
        model = record.get("model")
        if model not in _MODELS:
            raise ValueError(
                f"unknown acquisition model {model!r} in record (one of {', '.join(_MODELS)})"
            )
        return _MODELS[model]._from_record(record)

    @property
    @abc.abstractmethod
    def upsampling_name(self) -> str:
        """Short name of the initial upsampling, e.g. 'zero-filled k-space'."""

    @abc.abstractmethod
    def summary(self) -> str:
        """One line for the report, e.g. '3D k-space truncation'."""

    @abc.abstractmethod
    def methods_sentence(self, hr_voxel_mm: Sequence[float], lr_model: str) -> str:
        """The methods-text sentence on how the LR maps were modelled (``lr_model``: the
        ``--lr-model`` option; ``hr_voxel_mm``: the HR voxel size)."""

    @abc.abstractmethod
    def _key(self) -> tuple[Any, ...]: ...

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._key() == self._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._key())

    @abc.abstractmethod
    def _forward(self, t: torch.Tensor) -> torch.Tensor: ...

    @abc.abstractmethod
    def _adjoint(self, t: torch.Tensor) -> torch.Tensor: ...

    @abc.abstractmethod
    def _upsample(self, t: torch.Tensor) -> torch.Tensor: ...

    def _common(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "hr_shape": list(self.hr_shape),
            "lr_shape": list(self.lr_shape),
            "factors": [round(f, 6) for f in self.factors],
        }
        if self.lr_affine is not None:
            out["lr_voxel_size_mm"] = [round(v, 6) for v in grid.voxel_sizes(self.lr_affine)]
        if self.hr_affine is not None:
            out["hr_voxel_size_mm"] = [round(v, 6) for v in grid.voxel_sizes(self.hr_affine)]
        return out


class KSpace3D(Acquisition):
    """3D k-space truncation to ``lr_shape`` (:mod:`swigapp.operators.kspace`); upsampling
    zero-filled."""

    def __init__(
        self,
        hr_shape: Sequence[int],
        lr_shape: Sequence[int],
        hr_affine: np.ndarray | None = None,
        lr_affine: np.ndarray | None = None,
    ) -> None:
        self.hr_shape, self.lr_shape = _shapes(hr_shape, lr_shape)
        self.hr_affine, self.lr_affine = hr_affine, lr_affine

    # numpy in, numpy out exactly as kspace does: no conversion here, bit-identical results
    def forward(self, x: ArrayLike) -> ArrayLike:
        _check_tail(x, self.hr_shape, "HR")
        return kspace.downsample(x, self.lr_shape)

    def adjoint(self, y: ArrayLike) -> ArrayLike:
        _check_tail(y, self.lr_shape, "LR")
        return kspace.adjoint_downsample(y, self.hr_shape)

    def upsample(self, y: ArrayLike) -> ArrayLike:
        _check_tail(y, self.lr_shape, "LR")
        return kspace.upsample(y, self.hr_shape)

    def _forward(self, t: torch.Tensor) -> torch.Tensor:
        return kspace.downsample(t, self.lr_shape)

    def _adjoint(self, t: torch.Tensor) -> torch.Tensor:
        return kspace.adjoint_downsample(t, self.hr_shape)

    def _upsample(self, t: torch.Tensor) -> torch.Tensor:
        return kspace.upsample(t, self.hr_shape)

    def interpolate(self, y: ArrayLike) -> np.ndarray:
        """Cubic spline of each LR volume (best measured for 3D k-space: module docstring of
        :mod:`swigapp.consistency`)."""
        y = np.asarray(y)
        _check_tail(y, self.lr_shape, "LR")
        flat = y.reshape(-1, *self.lr_shape)
        out = np.stack([upsample_interp(v, self.hr_shape, order=3) for v in flat])
        return out.reshape(*y.shape[:-3], *self.hr_shape)

    def restrict(self, hr_shape: Sequence[int], lr_shape: Sequence[int]) -> KSpace3D:
        """k-space truncation from the HR box to the LR box."""
        return KSpace3D(tuple(hr_shape)[-3:], tuple(lr_shape)[-3:])

    def permuted(self, perm: Sequence[int]) -> KSpace3D:
        """The truncation with its axes permuted."""
        perm = [int(p) for p in perm]
        return KSpace3D([self.hr_shape[p] for p in perm], [self.lr_shape[p] for p in perm])

    @classmethod
    def _from_record(cls, record: Mapping[str, Any]) -> KSpace3D:
        return cls(record["hr_shape"], record["lr_shape"])

    def _key(self) -> tuple[Any, ...]:
        return ("kspace", self.hr_shape, self.lr_shape)

    @property
    def upsampling_name(self) -> str:
        """'zero-filled k-space'."""
        return "zero-filled k-space"

    def summary(self) -> str:
        """The report's line."""
        return "3D k-space truncation"

    def methods_sentence(self, hr_voxel_mm: Sequence[float], lr_model: str) -> str:
        """The methods-text sentence (``lr_model`` is not named: 3D is the default)."""
        return (
            "Their acquisition was modelled as truncation of k-space (a 3D acquisition): the "
            f"low-resolution maps are the central {dims(self.lr_shape)} k-space samples of "
            f"maps on a {dims(self.hr_shape)} grid of {dims(hr_voxel_mm, '.3g')} mm voxels "
            "covering the same field of view (downsampling factors "
            f"{dims(self.factors, '.3g')}), and the network input is their zero-filled "
            "upsampling to that grid"
        )

    def to_record(self) -> dict[str, Any]:
        """Model name, shapes and factors (and voxel sizes in mm when the grids are known)."""
        return {
            "model": "kspace",
            "description": "3D k-space truncation (centred band of DFT frequencies kept)",
            **self._common(),
            "upsampling": "zero-filled k-space",
        }


class SliceStack2D(Acquisition):
    """2D multi-slice stack: in-plane k-space truncation, through-plane slice profile.

    ``slice_spacing``: distance between slice centres in mm (the LR voxel size along the
    slice axis); ``slice_thickness``: profile FWHM in mm (default: the spacing);
    ``slice_axis``: 0, 1 or 2 of the last three axes (default: the largest factor N/M,
    the last one on ties); ``profile``: "gaussian" or "rect"; ``upsampling`` and ``lam``:
    through-plane initial upsampling (see the module docstring).
    """

    def __init__(
        self,
        hr_shape: Sequence[int],
        lr_shape: Sequence[int],
        slice_spacing: float,
        slice_thickness: float | None = None,
        slice_axis: int | None = None,
        profile: Profile = "gaussian",
        upsampling: UpsampleMethod = "lsq",
        lam: float | None = None,
        hr_affine: np.ndarray | None = None,
        lr_affine: np.ndarray | None = None,
    ) -> None:
        self.hr_shape, self.lr_shape = _shapes(hr_shape, lr_shape)
        self.hr_affine, self.lr_affine = hr_affine, lr_affine
        if slice_axis is None:
            ratios = self.factors
            slice_axis = max(range(3), key=lambda a: (ratios[a], a))
        if slice_axis not in (0, 1, 2):
            raise ValueError(f"slice_axis must be 0, 1 or 2, got {slice_axis}")
        if profile not in ("gaussian", "rect"):
            raise ValueError(f"unknown slice profile {profile!r} (gaussian or rect)")
        if slice_spacing <= 0 or (slice_thickness is not None and slice_thickness <= 0):
            raise ValueError("slice spacing and thickness must be positive (mm)")
        self.slice_axis = int(slice_axis)
        self.slice_spacing = float(slice_spacing)
        self.slice_thickness = float(slice_spacing if slice_thickness is None else slice_thickness)
        self.profile = profile
        self.upsampling = upsampling
        n, m = self.hr_shape[self.slice_axis], self.lr_shape[self.slice_axis]
        #: HR voxel size (mm) along the slice axis, slice step and FWHM in HR voxels.
        self.hr_slice_voxel = self.slice_spacing * m / n
        self.step = n / m
        self.fwhm = self.slice_thickness / self.hr_slice_voxel
        if lam is None:
            lam = {"lsq": LSQ_LAMBDA, "tikhonov": TIKHONOV_LAMBDA}.get(upsampling, 0.0)
        self.lam = float(lam)
        self._cache: dict[tuple[Any, Any, str], torch.Tensor] = {}

    @functools.cached_property
    def matrix(self) -> np.ndarray:
        """Through-plane operator (M, N) (:func:`slice_matrix`), built on first use."""
        n, m = self.hr_shape[self.slice_axis], self.lr_shape[self.slice_axis]
        return slice_matrix(n, m, self.fwhm, self.profile)

    @functools.cached_property
    def inverse(self) -> np.ndarray:
        """Through-plane upsampling (N, M) (:func:`through_plane_inverse`), built on first use."""
        return through_plane_inverse(self.matrix, self.upsampling, self.lam)

    @property
    def slice_gap(self) -> float:
        """Gap between slices in mm (negative: slices overlap)."""
        return self.slice_spacing - self.slice_thickness

    def interpolate(self, y: ArrayLike) -> np.ndarray:
        """In-plane cubic spline, then the stack's own least-squares upsampling through the
        plane, in float64 (best measured: module docstring of :mod:`swigapp.consistency`).
        In the plane the stack is a k-space truncation, as 3D k-space is, for which cubic
        spline rings 4-10x less than the zero-filling of :meth:`upsample`; with in-plane
        factors of 1 the two are the same."""
        y = np.asarray(y, np.float64)
        _check_tail(y, self.lr_shape, "LR")
        if all(self.factors[a] == 1 for a in range(3) if a != self.slice_axis):
            return np.asarray(self.upsample(y))
        mid = list(self.hr_shape)
        mid[self.slice_axis] = self.lr_shape[self.slice_axis]
        flat = y.reshape(-1, *self.lr_shape)
        in_plane = np.stack([upsample_interp(v, mid, order=3) for v in flat]).astype(np.float64)
        through = np.moveaxis(
            np.tensordot(self.inverse, in_plane, axes=([1], [1 + self.slice_axis])),
            0,
            1 + self.slice_axis,
        )
        return through.reshape(*y.shape[:-3], *self.hr_shape)

    def restrict(self, hr_shape: Sequence[int], lr_shape: Sequence[int]) -> SliceStack2D:
        """The stack's operator from an HR box to its LR box (cached per shape)."""
        return _crop_operator(
            tuple(int(v) for v in hr_shape[-3:]),
            tuple(int(v) for v in lr_shape[-3:]),
            self.slice_axis,
            self.slice_spacing,
            self.slice_thickness,
            self.profile,
        )

    def permuted(self, perm: Sequence[int]) -> SliceStack2D:
        """The stack with its axes permuted (the slice axis moves with them)."""
        perm = [int(p) for p in perm]
        return SliceStack2D(
            [self.hr_shape[p] for p in perm],
            [self.lr_shape[p] for p in perm],
            self.slice_spacing,
            self.slice_thickness,
            slice_axis=perm.index(self.slice_axis),
            profile=self.profile,
            upsampling=self.upsampling,
            lam=self.lam,
        )

    @classmethod
    def _from_record(cls, record: Mapping[str, Any]) -> SliceStack2D:
        text = str(record.get("upsampling", ""))
        method = next((k for k, v in _UPSAMPLING_TEXT.items() if v in text), "lsq")
        lam = re.search(r"\(lambda ([^)]+)\)", text)
        return cls(
            record["hr_shape"],
            record["lr_shape"],
            slice_spacing=record["slice_spacing_mm"],
            slice_thickness=record["slice_thickness_mm"],
            slice_axis=record["slice_axis"],
            profile=record["profile"],
            upsampling=method,  # type: ignore[arg-type]
            lam=float(lam.group(1)) if lam else None,
        )

    def _key(self) -> tuple[Any, ...]:
        return (
            "slice-profile", self.hr_shape, self.lr_shape, self.slice_axis, self.slice_spacing,
            self.slice_thickness, self.profile, self.upsampling, self.lam,
        )  # fmt: skip

    @property
    def upsampling_name(self) -> str:
        """E.g. 'zero-filled in-plane, lsq through-plane'."""
        return f"zero-filled in-plane, {self.upsampling} through-plane"

    def summary(self) -> str:
        """The report's line: profile, thickness, spacing and gap in mm."""
        return (
            f"2D multi-slice: {self.profile} slice profile, {self.slice_thickness:.3g} mm "
            f"thick every {self.slice_spacing:.3g} mm (gap {self.slice_gap:.3g} mm)"
        )

    def methods_sentence(self, hr_voxel_mm: Sequence[float], lr_model: str) -> str:
        """The methods-text sentence, naming ``--lr-model``."""
        in_plane = [self.factors[a] for a in range(3) if a != self.slice_axis]
        return (
            f"Their acquisition was modelled as a 2D multi-slice stack (--lr-model {lr_model}): "
            f"in-plane truncation of k-space (factors {dims(in_plane, '.3g')}) and, along the "
            f"{'xyz'[self.slice_axis]} axis, a {self.profile} slice profile of "
            f"{self.slice_thickness:.3g} mm FWHM sampled every {self.slice_spacing:.3g} mm "
            f"(gap {self.slice_gap:.3g} mm), onto a {dims(self.hr_shape)} grid of "
            f"{dims(hr_voxel_mm, '.3g')} mm voxels covering the same field of view; the "
            "network input is their upsampling to that grid by zero-filled k-space in-plane "
            "and a regularised least-squares inverse of the slice profile through-plane"
        )

    def _mat(self, name: str, like: torch.Tensor) -> torch.Tensor:
        key = (like.dtype, like.device, name)
        if key not in self._cache:
            src = self.matrix if name == "A" else self.inverse
            self._cache[key] = torch.as_tensor(src, dtype=like.dtype, device=like.device)
        return self._cache[key]

    def _forward(self, t: torch.Tensor) -> torch.Tensor:
        t = _along(t, self._mat("A", t), self.slice_axis - 3)
        return kspace.downsample(t, self.lr_shape)  # the slice axis is already at size M

    def _adjoint(self, t: torch.Tensor) -> torch.Tensor:
        mid = list(self.hr_shape)
        mid[self.slice_axis] = self.lr_shape[self.slice_axis]
        t = kspace.adjoint_downsample(t, tuple(mid))
        return _along(t, self._mat("A", t).T, self.slice_axis - 3)

    def _upsample(self, t: torch.Tensor) -> torch.Tensor:
        mid = list(self.hr_shape)
        mid[self.slice_axis] = self.lr_shape[self.slice_axis]
        t = kspace.upsample(t, tuple(mid))
        return _along(t, self._mat("R", t), self.slice_axis - 3)

    def to_record(self) -> dict[str, Any]:
        """Model name, factors and slice geometry in mm (thickness, spacing, gap, profile)."""
        in_plane = [a for a in range(3) if a != self.slice_axis]
        return {
            "model": "slice-profile",
            "description": (
                "2D multi-slice: in-plane k-space truncation; through-plane "
                f"{self.profile} slice profile sampled at the slice centres"
            ),
            **self._common(),
            "slice_axis": self.slice_axis,
            "in_plane_factors": [round(self.factors[a], 6) for a in in_plane],
            "slice_thickness_mm": round(self.slice_thickness, 6),
            "slice_spacing_mm": round(self.slice_spacing, 6),
            "slice_gap_mm": round(self.slice_gap, 6),
            "profile": self.profile,
            "profile_fwhm_hr_voxels": round(self.fwhm, 6),
            "upsampling": (
                f"in-plane zero-filled k-space; through-plane {_UPSAMPLING_TEXT[self.upsampling]}"
                + (f" (lambda {self.lam:g})" if self.upsampling in ("lsq", "tikhonov") else "")
            ),
        }


@functools.lru_cache(maxsize=64)
def _crop_operator(
    hr_shape: tuple[int, ...],
    lr_shape: tuple[int, ...],
    axis: int,
    spacing: float,
    thickness: float,
    profile: str,
) -> SliceStack2D:
    return SliceStack2D(
        hr_shape, lr_shape, spacing, thickness, slice_axis=axis, profile=profile,  # type: ignore[arg-type]
        upsampling="zerofill",
    )  # fmt: skip


_UPSAMPLING_TEXT = {
    "lsq": "least-squares inverse of the slice profile with a first-difference penalty",
    "tikhonov": "Tikhonov-regularised least-squares inverse of the slice profile",
    "spline": "periodic cubic B-spline interpolation between slice centres",
    "zerofill": "zero-filled k-space",
}


def slice_matrix(n: int, m: int, fwhm: float, profile: Profile = "gaussian") -> np.ndarray:
    """Through-plane operator (m, n): slice k = HR column weighted by the profile centred at
    HR coordinate k n/m, integrated over each HR voxel, periodic, rows summing to 1.

    ``fwhm`` in HR voxels.
    """
    if m > n or m < 1:
        raise ValueError(f"cannot take {m} slices from {n} HR voxels")
    if fwhm <= 0:
        raise ValueError(f"profile FWHM must be positive, got {fwhm}")
    if profile == "gaussian":
        sigma = fwhm * _GAUSS_SIGMA_PER_FWHM
        radius = 10.0 * sigma

        def cdf(t: np.ndarray) -> np.ndarray:
            return 0.5 * special.erfc(-t / (sigma * math.sqrt(2.0)))

    elif profile == "rect":
        radius = fwhm / 2.0

        def cdf(t: np.ndarray) -> np.ndarray:
            return np.clip(t / fwhm + 0.5, 0.0, 1.0)

    else:
        raise ValueError(f"unknown slice profile {profile!r} (gaussian or rect)")
    centres = np.arange(m) * (n / m)
    offset = np.arange(n)[None, :] - centres[:, None]
    wraps = math.ceil((radius + 1.0) / n) + 1
    out = np.zeros((m, n))
    for j in range(-wraps, wraps + 1):
        d = offset + j * n
        out += cdf(d + 0.5) - cdf(d - 0.5)
    return out / out.sum(axis=1, keepdims=True)


def through_plane_inverse(
    matrix: np.ndarray, method: UpsampleMethod = "lsq", lam: float = LSQ_LAMBDA
) -> np.ndarray:
    """Through-plane upsampling matrix (n, m) for the profile operator ``matrix`` (m, n).

    lsq: (A^T A + lam D^T D)^-1 A^T, D the periodic first difference; tikhonov:
    (A^T A + lam I)^-1 A^T; spline: periodic cubic B-spline through the slice centres;
    zerofill: zero-filled k-space.
    """
    m, n = matrix.shape
    if method in ("lsq", "tikhonov"):
        if method == "lsq":
            dif = np.roll(np.eye(n), 1, axis=1) - np.eye(n)
            reg = dif.T @ dif
        else:
            reg = np.eye(n)
        return np.linalg.solve(matrix.T @ matrix + lam * reg, matrix.T)
    if method == "spline":
        coords = np.arange(n) * (m / n)
        cols = [ndimage.map_coordinates(e, [coords], order=3, mode="grid-wrap") for e in np.eye(m)]
        return np.stack(cols, axis=1)
    if method == "zerofill":
        return np.asarray(kspace.upsample(np.eye(m), (n,))).T
    raise ValueError(f"unknown upsampling {method!r} (lsq, tikhonov, spline, zerofill)")


def from_metadata(
    lr_shape: Sequence[int],
    lr_affine: np.ndarray,
    hr_voxel_size: Sequence[float] | float,
    sidecar: Mapping[str, Any] | None = None,
    model: Literal["auto", "kspace", "slice-profile"] = "auto",
    slice_axis: int | None = None,
    profile: Profile = "gaussian",
) -> Acquisition:
    """The acquisition of LR maps (``lr_shape``, ``lr_affine`` in mm) onto the HR grid of
    :func:`swigapp.operators.grid.hr_grid` at ``hr_voxel_size`` (mm), from the maps' BIDS sidecar.

    ``model="auto"``: the sidecar's ``MRAcquisitionType`` decides when present ("2D":
    slice-profile, "3D": kspace); without it, slice-profile when the slice thickness
    (``SliceThickness``, else the largest LR voxel) exceeds 1.5x the in-plane voxel size
    (the larger of the other two), else kspace. Slice axis: ``slice_axis``, else the
    sidecar's ``SliceEncodingDirection`` (i/j/k), else the axis of the largest LR voxel (the
    last one on ties). Slice spacing: the LR voxel size along that axis (the affine is where
    the slices are; a disagreeing ``SpacingBetweenSlices`` is logged); thickness:
    ``SliceThickness``, else the spacing.
    """
    sidecar = dict(sidecar or {})
    lr_shape = tuple(int(v) for v in lr_shape)
    lr_affine = np.asarray(lr_affine, dtype=float)
    if isinstance(hr_voxel_size, int | float):
        hr_voxel_size = (float(hr_voxel_size),) * 3
    hr_shape, hr_affine = grid.hr_grid(lr_affine, lr_shape, hr_voxel_size)
    lr_vox = grid.voxel_sizes(lr_affine)
    axis = slice_axis if slice_axis is not None else _slice_axis(lr_vox, sidecar)
    if model == "auto":
        model = choose_model(lr_vox, sidecar, axis)
    if model == "kspace":
        return KSpace3D(hr_shape, lr_shape, hr_affine=hr_affine, lr_affine=lr_affine)
    if model != "slice-profile":
        raise ValueError(f"unknown acquisition model {model!r} (auto, kspace, slice-profile)")
    spacing = lr_vox[axis]
    stated = sidecar.get("SpacingBetweenSlices")
    if stated is not None and abs(float(stated) - spacing) > 0.01 * spacing:
        LOG.warning(
            "SpacingBetweenSlices %.3g mm differs from the LR voxel size %.3g mm along the "
            "slice axis; the affine's spacing is used",
            float(stated),
            spacing,
        )
    thickness = float(sidecar.get("SliceThickness") or spacing)
    return SliceStack2D(
        hr_shape,
        lr_shape,
        slice_spacing=spacing,
        slice_thickness=thickness,
        slice_axis=axis,
        profile=profile,
        hr_affine=hr_affine,
        lr_affine=lr_affine,
    )


def choose_model(
    lr_voxel_size: Sequence[float], sidecar: Mapping[str, Any], slice_axis: int | None = None
) -> Literal["kspace", "slice-profile"]:
    """The auto rule of :func:`from_metadata` (voxel sizes in mm)."""
    kind = str(sidecar.get("MRAcquisitionType", "")).upper()
    if kind == "2D":
        return "slice-profile"
    if kind == "3D":
        return "kspace"
    axis = _slice_axis(lr_voxel_size, sidecar) if slice_axis is None else slice_axis
    in_plane = max(v for a, v in enumerate(lr_voxel_size) if a != axis)
    thickness = float(sidecar.get("SliceThickness") or lr_voxel_size[axis])
    return "slice-profile" if thickness > ANISOTROPY_2D * in_plane else "kspace"


def _slice_axis(lr_voxel_size: Sequence[float], sidecar: Mapping[str, Any]) -> int:
    direction = str(sidecar.get("SliceEncodingDirection", "")).strip("-")
    if direction in ("i", "j", "k"):
        return "ijk".index(direction)
    return max(range(3), key=lambda a: (round(lr_voxel_size[a], 6), a))


def _shapes(
    hr_shape: Sequence[int], lr_shape: Sequence[int]
) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    hr, lr = tuple(int(v) for v in hr_shape), tuple(int(v) for v in lr_shape)
    if len(hr) != 3 or len(lr) != 3:
        raise ValueError(f"need 3D shapes, got HR {hr} and LR {lr}")
    if any(m < 1 or m > n for n, m in zip(hr, lr, strict=True)):
        raise ValueError(f"LR shape {lr} must be positive and no larger than HR shape {hr}")
    return hr, lr  # type: ignore[return-value]


_MODELS: dict[str, type[KSpace3D] | type[SliceStack2D]] = {
    "kspace": KSpace3D,
    "slice-profile": SliceStack2D,
}


def _check_tail(x: ArrayLike, shape: tuple[int, ...], what: str) -> None:
    if tuple(x.shape[-3:]) != shape:
        raise ValueError(f"{what} input must end in {shape}, got {tuple(x.shape)}")


def _tensor(x: ArrayLike, shape: tuple[int, ...], what: str) -> tuple[torch.Tensor, bool]:
    _check_tail(x, shape, what)
    is_numpy = isinstance(x, np.ndarray)
    t = torch.as_tensor(x) if is_numpy else x
    if not torch.is_floating_point(t):
        t = t.to(torch.get_default_dtype())
    return t, is_numpy


def _back(t: torch.Tensor, is_numpy: bool) -> ArrayLike:
    return t.detach().cpu().numpy() if is_numpy else t


def _along(t: torch.Tensor, mat: torch.Tensor, dim: int) -> torch.Tensor:
    """Apply ``mat`` (out, in) to axis ``dim`` of ``t``."""
    t = torch.movedim(t, dim, -1)
    return torch.movedim(t @ mat.T, -1, dim)
