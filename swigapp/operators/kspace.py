"""k-space truncation: downsampling to a low-resolution (LR) grid and its adjoint.

Conventions (per axis, HR size N, LR size M <= N):

* Downsampling D keeps the centred band of DFT frequencies |k| < M/2. For even M the
  unpaired LR Nyquist bin receives (X[+M/2] + X[-M/2]) / sqrt(2), which keeps the output
  real and makes D D^T = (M/N) I exactly. D is scaled so that the mean intensity is kept.
* Upsampling U = (N/M) D^T is zero-filled k-space upsampling (the paper's LR baseline):
  D U = I (every LR image survives up-down), U D projects onto the band (a band-limited
  HR image survives down-up), and U keeps the mean intensity.
* DFT truncation keeps sample 0 in place: LR voxel j sits at HR voxel coordinate j N/M, so
  the LR affine is the HR affine with each voxel axis scaled by N/M, same translation
  (:mod:`swigapp.operators.grid`).

Operators act on the last ``len(out_shape)`` axes of a torch tensor (autograd-friendly,
CPU or CUDA); numpy arrays are accepted and returned as numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def downsample(x: ArrayLike, out_shape: Sequence[int]) -> ArrayLike:
    """k-space truncation of the last len(out_shape) axes of ``x`` to ``out_shape``."""
    return _apply(x, tuple(out_shape), down=True)


def upsample(y: ArrayLike, out_shape: Sequence[int]) -> ArrayLike:
    """Zero-filled k-space upsampling of the last len(out_shape) axes of ``y`` (= (N/M) D^T)."""
    return _apply(y, tuple(out_shape), down=False)


def beyond_band(x: ArrayLike, lr_shape: Sequence[int]) -> ArrayLike:
    """The part of ``x`` outside the k-space band of an LR grid ``lr_shape``: (I - U D) x,
    over the last len(lr_shape) axes."""
    return x - upsample(downsample(x, lr_shape), x.shape[-len(lr_shape) :])


def adjoint_downsample(y: ArrayLike, hr_shape: Sequence[int]) -> ArrayLike:
    """Exact adjoint D^T of :func:`downsample` (= (M/N) x zero-filled upsampling)."""
    lr = y.shape[-len(hr_shape) :]
    ratio = math.prod(m / n for m, n in zip(lr, hr_shape, strict=True))
    return upsample(y, hr_shape) * ratio


def _apply(x: ArrayLike, out_shape: tuple[int, ...], down: bool) -> ArrayLike:
    is_numpy = isinstance(x, np.ndarray)
    t = torch.as_tensor(x) if is_numpy else x
    if not torch.is_floating_point(t):
        t = t.to(torch.get_default_dtype())
    ndim = len(out_shape)
    if t.ndim < ndim:
        raise ValueError(f"input has {t.ndim} axes, out_shape has {ndim}")
    for i, m in enumerate(out_shape):
        dim = t.ndim - ndim + i
        n = t.shape[dim]
        if m == n:
            continue
        if (down and m > n) or (not down and m < n):
            kind = "downsample" if down else "upsample"
            raise ValueError(f"cannot {kind} axis {i} from {n} to {m}")
        t = _resize_axis(t, dim, m, down)
    return t.detach().cpu().numpy() if is_numpy else t


def _resize_axis(t: torch.Tensor, dim: int, m: int, down: bool) -> torch.Tensor:
    """Move one axis between sizes n and m through an orthonormal DFT, keeping the mean."""
    n = t.shape[dim]
    spec = torch.fft.fft(t, dim=dim, norm="ortho")
    spec = torch.movedim(spec, dim, -1)
    # orthonormal DFTs: sqrt(new/old) keeps the mean (DC) intensity in both directions
    out = _crop_band(spec, n, m) if down else _pad_band(spec, n, m)
    scale = math.sqrt(m / n)
    out = torch.movedim(out, -1, dim)
    return torch.fft.ifft(out, dim=dim, norm="ortho").real * scale


def _band_sizes(small: int) -> tuple[int, int, bool]:
    """(number of non-negative freqs, number of negative freqs, has Nyquist) for size small."""
    if small % 2:
        return (small + 1) // 2, small // 2, False
    return small // 2, small // 2 - 1, True


def _crop_band(spec: torch.Tensor, n: int, m: int) -> torch.Tensor:
    pos, neg, nyq = _band_sizes(m)
    parts = [spec[..., :pos]]
    if nyq:
        h = m // 2
        parts.append(((spec[..., h] + spec[..., n - h]) / math.sqrt(2.0)).unsqueeze(-1))
    if neg:
        parts.append(spec[..., n - neg :])
    return torch.cat(parts, dim=-1)


def _pad_band(spec: torch.Tensor, m: int, n: int) -> torch.Tensor:
    """Transpose of _crop_band: LR spectrum of size m into an HR spectrum of size n."""
    pos, neg, nyq = _band_sizes(m)
    out = spec.new_zeros((*spec.shape[:-1], n))
    out[..., :pos] = spec[..., :pos]
    if neg:
        out[..., n - neg :] = spec[..., m - neg :]
    if nyq:
        h = m // 2
        half = spec[..., h] / math.sqrt(2.0)
        out[..., h] = half
        out[..., n - h] = half
    return out
