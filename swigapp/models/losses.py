"""Loss terms of the SWIG MAP objective (and the hybrid edge loss of Qiu et al., 2022).

All terms take maps (B, 3, X, Y, Z) in physical units (PD a.u., T1 and T2 in s) and
brain masks (B, X, Y, Z), and return scalar tensors. Weights are combined in
:class:`LossWeights`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
from torch.nn import functional as nnf

from swigapp.models.features import encode
from swigapp.operators import kspace
from swigapp.physics.protocol import Protocol

if TYPE_CHECKING:
    from swigapp.operators.acquisition import Acquisition

#: Scales (PD a.u., T1 s, T2 s) that bring LR-consistency residuals to comparable size.
LR_SCALES = (0.8, 1.3, 0.3)
EPS = 1e-8


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms; 0 switches a term off."""

    guide: float = 1.0
    lr: float = 5.0
    supervised: float = 1.0
    edge: float = 0.0
    #: L1 to the LR maps on the HR grid as labels (wmri2q's low-resolution labels)
    lowres: float = 0.0
    #: supervised L1 in physical units (PD, T1 s, T2 s) scaled by LR_SCALES: weighs the
    #: long-T1/T2 CSF edges that the log-domain term treats like any other relative error
    linear: float = 0.0
    #: supervised L1 of the error outside the LR k-space band: weighs the detail the LR
    #: maps lack, which the plain term lets the LR input's band dominate
    beyond: float = 0.0
    #: proximal L1, in the network domain inside the mask, to the predictions of the
    #: weights training started from (fine-tuning with ``--init``): keeps a self-supervised
    #: fine-tune near the model it refines
    anchor: float = 0.0

    def as_dict(self) -> dict:
        """Plain dict of the weights."""
        return asdict(self)


def closed_form_scale(
    synth: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """a = argmin_a ||m (a s - t)||^2 = <s, t>_m / <s, s>_m (no gradient through a)."""
    with torch.no_grad():
        num = (synth * target * mask).sum()
        den = (synth * synth * mask).sum()
        return num / (den + EPS)


def closed_form_bias(synth: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Smooth scale field a(x) = c0 + c . x (x: voxel coordinates scaled to [-1, 1]).

    Least squares of ||m (a s - t)||^2 over the 1 + ndim coefficients, in closed form (no
    gradient); models an unknown intensity scale times a linear receive bias.
    """
    with torch.no_grad():
        axes = [
            torch.linspace(-1.0, 1.0, n, dtype=synth.dtype, device=synth.device)
            for n in synth.shape
        ]
        coords = torch.meshgrid(*axes, indexing="ij")
        basis = torch.stack([torch.ones_like(synth), *coords])  # (K, ...)
        design = (basis * synth).reshape(len(basis), -1)
        w = mask.reshape(-1)
        gram = (design * w) @ design.T
        rhs = (design * w) @ target.reshape(-1)
        gram = (
            gram + 1e-6 * torch.eye(len(basis), dtype=gram.dtype, device=gram.device) * gram.trace()
        )
        coef = torch.linalg.solve(gram, rhs)
        return torch.tensordot(coef, basis, dims=1)


def _present_guides(
    maps: torch.Tensor,
    guides: torch.Tensor,
    protocols: Sequence[Sequence[Protocol | None]],
    mask: torch.Tensor,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(mask, guide synthesised from maps, acquired guide) for every present guide of a batch."""
    for b, row in enumerate(protocols):
        m = mask[b].to(maps.dtype)
        if m.sum() < 1:
            continue
        for g, protocol in enumerate(row):
            if protocol is not None:
                yield m, protocol.signal(maps[b, 0], maps[b, 1], maps[b, 2]), guides[b, g]


def _map_scales(like: torch.Tensor) -> torch.Tensor:
    """LR_SCALES as a (1, 3, 1, 1, 1) tensor on ``like``'s dtype and device."""
    return torch.tensor(LR_SCALES, dtype=like.dtype, device=like.device)[None, :, None, None, None]


def _relative_l1(pred: torch.Tensor, target: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """||m (pred - target)||_1 / ||m target||_1."""
    return ((pred - target).abs() * m).sum() / ((target.abs() * m).sum() + EPS)


def _mean(terms: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    return torch.stack(terms).mean() if terms else like.new_zeros(())


def guide_loss(
    maps: torch.Tensor,
    guides: torch.Tensor,
    protocols: Sequence[Sequence[Protocol | None]],
    mask: torch.Tensor,
    bias: bool = True,
) -> torch.Tensor:
    """Guide consistency: mean over present guides of ||a f_p(maps) - W||_1 / ||W||_1 in the mask.

    ``guides``: (B, G, X, Y, Z) acquired guides (any scale); ``protocols[b][g]`` is the
    protocol of guide g of sample b, or None when absent. The scale a is solved in closed
    form per image: a constant, or with ``bias`` a linear field (scale x smooth receive
    bias) over the crop.
    """
    fit = closed_form_bias if bias else closed_form_scale
    terms = [
        _relative_l1(fit(synth, target, m) * synth, target, m)
        for m, synth, target in _present_guides(maps, guides, protocols, mask)
    ]
    return _mean(terms, maps)


def lr_loss(
    maps: torch.Tensor,
    lr_up: torch.Tensor,
    lr: torch.Tensor,
    mask: torch.Tensor,
    acquisition: Acquisition,
    lr_valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """LR consistency: mean squared error between the acquisition D of the prediction and
    the LR data (Gaussian noise on the LR maps: the MAP data term), per-map scaled. D is
    ``acquisition`` restricted to the box
    (:meth:`~swigapp.operators.acquisition.Acquisition.restrict`: k-space truncation, or a
    2D stack's in-plane truncation and slice profile).

    The LR data enter as ``lr_up`` = U(LR maps) on the HR grid, compared through the same
    operator: ||D(pred) - D(lr_up)||, which equals ||D(pred) - LR|| on whole volumes
    (D U = I) and, on crops, cancels the periodic-boundary error of truncating a crop.
    ``lr`` only gives the LR size of the box. Outside the brain mask the prediction is
    replaced by the LR input, so skull or background in real LR maps do not count.
    ``lr_valid`` (B, 3, x, y, z), 0/1 on the LR box: invalid input voxels (NaN, negative:
    filled, not data) are left out; the mean is still over every LR voxel.
    """
    m = mask[:, None].to(maps.dtype)
    full = m * maps + (1 - m) * lr_up
    small = tuple(lr.shape[2:])
    op = acquisition.restrict(full.shape, small)
    down, target = op.forward(full), op.forward(lr_up)
    err = ((down - target) / _map_scales(maps)) ** 2
    if lr_valid is not None:
        err = err * lr_valid.to(err.dtype)
    return err.mean()


def masked_l1(err: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |err| of (B, 3, X, Y, Z) maps over the (B, X, Y, Z) mask and the 3 maps."""
    m = mask[:, None].to(err.dtype)
    return (err.abs() * m).sum() / (3 * m.sum() + EPS)


def supervised_loss(maps: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L1 in the network domain (PD, ln T1, ln T2) inside the mask: relative errors for T1, T2."""
    return masked_l1(encode(maps) - encode(truth), mask)


def supervised_linear_loss(
    maps: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """L1 in physical units inside the mask, each map divided by its LR_SCALES entry."""
    return masked_l1((maps - truth) / _map_scales(maps), mask)


def supervised_beyond_band_loss(
    maps: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor, lr_shape: Sequence[int]
) -> torch.Tensor:
    """L1, in the network domain inside the mask, of the part of the error outside the
    k-space band of an LR grid of size ``lr_shape`` (the crop's LR box)."""
    err = (encode(maps) - encode(truth)) * mask[:, None].to(maps.dtype)
    return masked_l1(kspace.beyond_band(err, lr_shape), mask)


def sobel(image: torch.Tensor) -> torch.Tensor:
    """In-plane Sobel gradient magnitude of (N, X, Y) slices (the first two of each volume)."""
    kx = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]], dtype=image.dtype)
    kernels = torch.stack([kx, kx.T])[:, None].to(image.device)
    grad = nnf.conv2d(image[:, None], kernels, padding=1)
    return torch.sqrt((grad**2).sum(1) + EPS)


def edge_loss(
    maps: torch.Tensor,
    guides: torch.Tensor,
    protocols: Sequence[Sequence[Protocol | None]],
    mask: torch.Tensor,
) -> torch.Tensor:
    """Scale-invariant Sobel edge loss L1(a S(i_hat), S(i)), a = argmin ||a S(i_hat) - S(i)||^2.

    i_hat is the guide synthesised from the predicted maps, i the acquired guide; Sobel
    runs in-plane on every slice along the last axis (Qiu et al., ISMRM 2022).
    """
    terms = []
    for m, synth, target in _present_guides(maps, guides, protocols, mask):
        m = m.permute(2, 0, 1)
        s_hat, s_ref = sobel(synth.permute(2, 0, 1)), sobel(target.permute(2, 0, 1))
        terms.append(_relative_l1(closed_form_scale(s_hat, s_ref, m) * s_hat, s_ref, m))
    return _mean(terms, maps)


def total_loss(
    weights: LossWeights,
    maps: torch.Tensor,
    batch: dict,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the active terms for a batch dict (see models.crops.collate); an
    optional ``guide_mask`` (B, X, Y, Z) restricts the guide term (e.g. to where the guides
    have data)."""
    parts: dict[str, torch.Tensor] = {}
    mask = batch["mask"]
    if weights.guide:
        guide_mask = mask if batch.get("guide_mask") is None else batch["guide_mask"]
        parts["guide"] = guide_loss(maps, batch["raw_guides"], batch["protocols"], guide_mask)
    if weights.lr:
        parts["lr"] = lr_loss(
            maps, batch["lr_up"], batch["lr"], mask, batch["acquisition"], batch.get("lr_valid")
        )
    if weights.supervised and batch.get("truth") is not None:
        parts["supervised"] = supervised_loss(maps, batch["truth"], mask)
    if weights.linear and batch.get("truth") is not None:
        parts["linear"] = supervised_linear_loss(maps, batch["truth"], mask)
    if weights.beyond and batch.get("truth") is not None:
        lr_shape = tuple(batch["lr"].shape[2:])
        parts["beyond"] = supervised_beyond_band_loss(maps, batch["truth"], mask, lr_shape)
    if weights.edge:
        parts["edge"] = edge_loss(maps, batch["raw_guides"], batch["protocols"], mask)
    if weights.lowres:
        parts["lowres"] = supervised_loss(maps, batch["lr_up"], mask)
    total = sum(getattr(weights, k) * v for k, v in parts.items())
    return total, {k: float(v.detach()) for k, v in parts.items()}
