"""Image-quality metrics for 2D/3D quantitative maps, restricted to a (brain) mask.

Conventions:

* ``x_hat`` is the estimate, ``x`` the reference; both are real arrays of the same shape,
  computed in float64. ``mask`` is a boolean array of the same shape (``None``: all voxels);
  an empty mask is an error.
* Filter-based metrics (SSIM, HFEN) filter the *full* images (scipy.ndimage, ``reflect``
  boundary) and only then average over the mask; no border is cropped.
* Intensity units follow the maps: PD is dimensionless, T1/T2 are in seconds.
  :data:`DATA_RANGE` holds the default dynamic range per map for SSIM and PSNR.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal, overload

import numpy as np
from scipy import ndimage

__all__ = [
    "DATA_RANGE",
    "LOG_TRUNCATE",
    "hfen",
    "hfen_beyond_band",
    "mpe",
    "mutual_information",
    "nrmse",
    "psnr",
    "ssim",
    "tissue_mae_ms",
]

#: Default dynamic range per map, in map units (PD dimensionless, T1/T2 in seconds).
DATA_RANGE: dict[str, float] = {"PD": 1.2, "T1": 4.5, "T2": 2.0}

#: Gaussian truncation (in sigmas) of the SSIM window: radius int(3.5 * 1.5 + 0.5) = 5.
SSIM_TRUNCATE = 3.5

#: LoG truncation (in sigmas) for HFEN: with sigma 1.5 the radius is int(6.5 + 0.5) = 7,
#: i.e. a 15-tap kernel along each axis.
LOG_TRUNCATE = (7 - 0.5) / 1.5


# --------------------------------------------------------------------------- validation


def _as_float(a: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real-valued, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def _check_pair(
    x_hat: np.ndarray, x: np.ndarray, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float64 copies of ``x_hat``/``x`` and a boolean mask (all True when ``None``)."""
    x_hat = _as_float(x_hat, "x_hat")
    x = _as_float(x, "x")
    if x_hat.shape != x.shape:
        raise ValueError(f"shape mismatch: x_hat has shape {x_hat.shape}, x has shape {x.shape}")
    return x_hat, x, _check_mask(mask, x.shape, "x")


def _check_mask(mask: np.ndarray | None, shape: tuple[int, ...], ref: str) -> np.ndarray:
    if mask is None:
        m = np.ones(shape, dtype=bool)
    else:
        m = np.asarray(mask).astype(bool, copy=False)
        if m.shape != shape:
            raise ValueError(f"shape mismatch: mask has shape {m.shape}, {ref} has shape {shape}")
    if not m.any():
        raise ValueError("mask is empty (no True voxel)")
    return m


def _check_data_range(data_range: float) -> float:
    if data_range is None:
        raise ValueError("data_range is required (e.g. metrics.DATA_RANGE['T1'])")
    r = float(data_range)
    if not math.isfinite(r) or r <= 0:
        raise ValueError(f"data_range must be a finite positive number, got {data_range!r}")
    return r


def _check_ndim(a: np.ndarray, func: str) -> None:
    if a.ndim not in (2, 3):
        raise ValueError(f"{func} expects a 2D or 3D image, got shape {a.shape}")


def _norm_ratio(num: np.ndarray, den: np.ndarray) -> float:
    """||num||_2 / ||den||_2; 0 when both vanish, inf when only the denominator does."""
    n = float(np.sqrt(np.sum(num * num)))
    d = float(np.sqrt(np.sum(den * den)))
    if d == 0.0:
        return 0.0 if n == 0.0 else math.inf
    return n / d


# --------------------------------------------------------------------------- SSIM


@overload
def ssim(
    x_hat: np.ndarray,
    x: np.ndarray,
    data_range: float,
    mask: np.ndarray | None = ...,
    sigma: float = ...,
    k1: float = ...,
    k2: float = ...,
    full: Literal[False] = ...,
) -> float: ...


@overload
def ssim(
    x_hat: np.ndarray,
    x: np.ndarray,
    data_range: float,
    mask: np.ndarray | None = ...,
    sigma: float = ...,
    k1: float = ...,
    k2: float = ...,
    *,
    full: Literal[True],
) -> tuple[float, np.ndarray]: ...


@overload
def ssim(
    x_hat: np.ndarray,
    x: np.ndarray,
    data_range: float,
    mask: np.ndarray | None = ...,
    sigma: float = ...,
    k1: float = ...,
    k2: float = ...,
    full: bool = ...,
) -> float | tuple[float, np.ndarray]: ...


def ssim(
    x_hat: np.ndarray,
    x: np.ndarray,
    data_range: float,
    mask: np.ndarray | None = None,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    full: bool = False,
) -> float | tuple[float, np.ndarray]:
    """Structural similarity (dimensionless, <= 1) with a Gaussian window, averaged over mask.

    Local statistics use ``scipy.ndimage.gaussian_filter`` (``sigma`` in voxels,
    truncate 3.5, reflect boundary) and population covariances, i.e. the SSIM map of
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)``. Inputs are not clipped and no border is cropped.

    Args:
        x_hat, x: estimate and reference (2D or 3D, same shape, map units).
        data_range: dynamic range L of the maps in map units (required, > 0); sets the
            stabilisers C1 = (k1 L)^2 and C2 = (k2 L)^2.
        mask: boolean voxels to average over (all voxels if None).
        full: also return the full-size SSIM map.

    Returns:
        Mean SSIM over the mask, or ``(mean, ssim_map)`` when ``full``.
    """
    r = _check_data_range(data_range)
    x_hat, x, m = _check_pair(x_hat, x, mask)
    _check_ndim(x, "ssim")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")

    def smooth(a: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(a, sigma=sigma, truncate=SSIM_TRUNCATE, mode="reflect")

    ux = smooth(x_hat)
    uy = smooth(x)
    vx = smooth(x_hat * x_hat) - ux * ux
    vy = smooth(x * x) - uy * uy
    vxy = smooth(x_hat * x) - ux * uy
    c1 = (k1 * r) ** 2
    c2 = (k2 * r) ** 2
    ssim_map = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    mean = float(np.mean(ssim_map[m]))
    if full:
        return mean, ssim_map
    return mean


# --------------------------------------------------------------------------- HFEN


def _log(a: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_laplace(a, sigma=sigma, truncate=LOG_TRUNCATE, mode="reflect")


def hfen(
    x_hat: np.ndarray,
    x: np.ndarray,
    mask: np.ndarray | None = None,
    sigma: float = 1.5,
    mode: Literal["3d", "2d"] = "3d",
    axis: int = -1,
) -> float:
    """High-frequency error norm ||LoG(x_hat) - LoG(x)||_2 / ||LoG(x)||_2 (dimensionless).

    The Laplacian of Gaussian (``sigma`` in voxels, truncate :data:`LOG_TRUNCATE`: 15 taps
    for sigma 1.5) is applied to the full images, then both norms are taken over ``mask``.
    ``mode="3d"`` filters the whole image; ``mode="2d"`` applies a 2D in-plane LoG to each
    slice along ``axis`` and pools the norms over all slices (one number). A 2D image is a
    single plane, so both modes agree for it (``axis`` is then ignored).

    Returns 0 when both LoG images vanish on the mask and inf when only the reference does.
    """
    x_hat, x, m = _check_pair(x_hat, x, mask)
    _check_ndim(x, "hfen")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    if mode not in ("3d", "2d"):
        raise ValueError(f"mode must be '3d' or '2d', got {mode!r}")

    if mode == "3d" or x.ndim == 2:
        log_hat, log_ref = _log(x_hat, sigma), _log(x, sigma)
    else:
        ax = axis % x.ndim if -x.ndim <= axis < x.ndim else None
        if ax is None:
            raise ValueError(f"axis {axis} out of range for a {x.ndim}D image")

        def log_slices(a: np.ndarray) -> np.ndarray:
            moved = np.moveaxis(a, ax, 0)
            out = np.stack([_log(s, sigma) for s in moved], axis=0)
            return np.moveaxis(out, 0, ax)

        log_hat, log_ref = log_slices(x_hat), log_slices(x)
    return _norm_ratio(log_hat[m] - log_ref[m], log_ref[m])


def hfen_beyond_band(
    x_hat: np.ndarray,
    x: np.ndarray,
    lr_shape: tuple[int, ...],
    mask: np.ndarray | None = None,
    sigma: float = 1.5,
) -> float:
    """HFEN of the detail the LR acquisition never sampled (dimensionless, 3D LoG as in HFEN).

    ||LoG(P(x_hat - x))||_2 / ||LoG(P x)||_2 over ``mask``, with P = I - U D the projection
    onto the k-space frequencies outside the band of an LR grid of size ``lr_shape``
    (:mod:`swigapp.operators.kspace` truncation). Errors inside the band do not count. 1:
    none of the reference's detail beyond the band recovered (zero-filled upsampling scores 1
    up to its noise); 0: all of it; above 1: more wrong detail added than was missing.
    """
    from swigapp.operators import kspace  # torch-based; only this metric needs it

    x_hat, x, m = _check_pair(x_hat, x, mask)
    if len(lr_shape) != x.ndim:
        raise ValueError(f"lr_shape {tuple(lr_shape)} does not match a {x.ndim}D image")
    err, ref = kspace.beyond_band(x_hat - x, lr_shape), kspace.beyond_band(x, lr_shape)
    return _norm_ratio(_log(err, sigma)[m], _log(ref, sigma)[m])


# --------------------------------------------------------------------------- voxelwise


def psnr(
    x_hat: np.ndarray, x: np.ndarray, data_range: float, mask: np.ndarray | None = None
) -> float:
    """Peak signal-to-noise ratio 20 log10(data_range / RMSE) over mask, in dB.

    ``data_range`` is in map units (> 0). Returns inf when the images agree on the mask.
    """
    r = _check_data_range(data_range)
    x_hat, x, m = _check_pair(x_hat, x, mask)
    d = x_hat[m] - x[m]
    mse = float(np.mean(d * d))
    if mse == 0.0:
        return math.inf
    return 20.0 * math.log10(r) - 10.0 * math.log10(mse)


def nrmse(x_hat: np.ndarray, x: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Normalised RMSE ||x_hat - x||_2 / ||x||_2 over mask (dimensionless).

    Returns 0 when both vanish and inf when only the reference is zero on the mask.
    """
    x_hat, x, m = _check_pair(x_hat, x, mask)
    return _norm_ratio(x_hat[m] - x[m], x[m])


def mpe(
    x_hat: np.ndarray,
    x: np.ndarray,
    mask: np.ndarray | None = None,
    absolute: bool = False,
    eps: float = 1e-6,
) -> float:
    """Mean percentage error, in percent, over mask voxels where |x| > eps.

    Signed: 100/N sum (x_hat - x)/x; ``absolute``: 100/N sum |x_hat - x|/|x|. ``eps`` is in
    map units. Returns NaN when no mask voxel has |x| > eps.
    """
    x_hat, x, m = _check_pair(x_hat, x, mask)
    sel = m & (np.abs(x) > eps)
    if not sel.any():
        return math.nan
    rel = (x_hat[sel] - x[sel]) / x[sel]
    if absolute:
        rel = np.abs(rel)
    return 100.0 * float(np.mean(rel))


def tissue_mae_ms(
    x_hat: np.ndarray, x: np.ndarray, tissue_masks: Mapping[str, np.ndarray]
) -> dict[str, float]:
    """Mean absolute error per tissue, in milliseconds, for maps given in seconds.

    Returns ``{name: mean |x_hat - x| * 1000 over tissue_masks[name]}``; NaN for an
    empty tissue mask.
    """
    x_hat, x, _ = _check_pair(x_hat, x, None)
    abs_err = np.abs(x_hat - x)
    out: dict[str, float] = {}
    for name, tmask in tissue_masks.items():
        tm = np.asarray(tmask).astype(bool, copy=False)
        if tm.shape != x.shape:
            raise ValueError(
                f"shape mismatch: tissue mask {name!r} has shape {tm.shape}, x has shape {x.shape}"
            )
        out[name] = 1000.0 * float(np.mean(abs_err[tm])) if tm.any() else math.nan
    return out


# --------------------------------------------------------------------------- MI


def _bin_index(v: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bin index in [0, bins) over v.min()..v.max() (all 0 for a constant v)."""
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return np.zeros(v.shape, dtype=np.intp)
    idx = np.floor((v - lo) * (bins / (hi - lo))).astype(np.intp)
    return np.clip(idx, 0, bins - 1)


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-np.sum(p * np.log(p)))


def mutual_information(
    a: np.ndarray,
    b: np.ndarray,
    mask: np.ndarray | None = None,
    bins: int = 64,
    normalized: bool = False,
) -> float:
    """Histogram estimate of the mutual information between two images over mask, in nats.

    The joint histogram has ``bins`` equal-width bins spanning each image's masked
    min..max. MI = H(A) + H(B) - H(A, B) (>= 0, 0 when either image is constant).
    ``normalized=True`` returns (H(A) + H(B)) / H(A, B) instead (dimensionless: 1 for
    independent images, 2 for identical ones; 1 when both are constant).
    """
    a_f, b_f, m = _check_pair(a, b, mask)
    if int(bins) != bins or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    bins = int(bins)
    ia = _bin_index(a_f[m], bins)
    ib = _bin_index(b_f[m], bins)
    joint = np.bincount(ia * bins + ib, minlength=bins * bins).reshape(bins, bins)
    h_a = _entropy(joint.sum(axis=1))
    h_b = _entropy(joint.sum(axis=0))
    h_ab = _entropy(joint.ravel())
    if normalized:
        return 1.0 if h_ab == 0.0 else (h_a + h_b) / h_ab
    return max(0.0, h_a + h_b - h_ab)


def ls_scale(synth: np.ndarray, acquired: np.ndarray, mask: np.ndarray) -> float:
    """Least-squares intensity scale a minimising ||a synth - acquired|| inside ``mask``
    (1 when ``synth`` is zero there): weighted images are in arbitrary units."""
    s, g = synth[mask].astype(np.float64), acquired[mask].astype(np.float64)
    return float(s @ g / (s @ s)) if (s @ s) > 0 else 1.0


def _guide_ssim(synth: np.ndarray, acquired: np.ndarray, mask: np.ndarray) -> tuple:
    data_range = float(np.percentile(acquired[mask].astype(np.float64), 99.9)) or 1.0
    scaled = synth * ls_scale(synth, acquired, mask)
    return ssim(scaled, acquired, data_range, mask=mask, full=True)


def guide_ssim(synth: np.ndarray, acquired: np.ndarray, mask: np.ndarray) -> float:
    """SSIM of a synthesised image (scaled by :func:`ls_scale`) vs the acquired guide, inside
    ``mask``; data range = 99.9th percentile of the guide in the mask."""
    return float(_guide_ssim(synth, acquired, mask)[0])


def guide_ssim_map(synth: np.ndarray, acquired: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The SSIM map of :func:`guide_ssim` (its mean over ``mask`` is the score)."""
    return _guide_ssim(synth, acquired, mask)[1]
