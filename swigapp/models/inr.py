"""Subject-specific implicit neural representation of the HR maps (``--method inr``).

After McGinnis et al., "Single-subject multi-contrast MRI super-resolution via implicit
neural representations" (MICCAI 2023), written here from the paper's description and fitted
with this package's physics: a coordinate network over position with a shared trunk and one
head per map (PD, ln T1, ln T2), fitted to one subject by the same unsupervised terms as the
SWIG model (guide consistency through the signal equations, LR consistency through the
acquisition operator: k-space truncation, or the slice profile of a 2D stack). No training
cohort: only the representation differs from SWIG.

Two position encodings:

- ``grid`` (default): multi-resolution dense feature grids (the Instant-NGP / Plenoxels
  family, without hashing), interpolated trilinearly, in plain torch. Each level is an
  ``nn.Embedding`` updated sparsely (only the nodes a step touched), so a step costs the
  same for any brain size. A total-variation term on the grid nodes under each crop keeps
  the finest levels from fitting noise.
- ``fourier``: Gaussian random Fourier features (the paper's), kept for comparison.

The network represents the correction to a base: the LR maps' upsampling (``init="lr"``)
or the SWIG prediction (``init="swig"``: the INR then refines SWIG for this subject, held
near it by a proximal term, ``anchor``: the physics loss alone, minimised, leads away from
the truth, docs/methods.md).

Each step evaluates the network on every voxel of a few random HR crops aligned to the LR
grid, so the acquisition operator of each crop lines up with the acquired LR box, as in
SWIG's training. Fitting stops when the paper's criterion, the mutual information between
the predicted maps and the guides, stops rising (``stop="mi"``), keeping the state of its
best check (the start included), or after ``max_steps`` (``stop="steps"``). By default the
fit over the LR maps runs its steps and the fit over SWIG follows the MI (docs/methods.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from swigapp import metrics
from swigapp.models.crops import collate, random_crop
from swigapp.models.features import SubjectTensors, decode, encode
from swigapp.models.inference import ADAPT_WEIGHTS
from swigapp.models.inr_choices import INITS, STOP_RULES
from swigapp.models.losses import LossWeights, masked_l1, total_loss

#: The SWIG adaptation's unsupervised terms: there is no HR truth for a real subject.
INR_WEIGHTS = ADAPT_WEIGHTS
#: Position encodings, stopping rules and bases (``INRConfig.encoding/stop/init``).
ENCODINGS = ("grid", "fourier")
#: Activations of the trunk and heads (``INRConfig.activation``).
ACTIVATIONS = ("leaky_relu", "relu")
#: Negative slope of the leaky ReLU: no unit can die. With plain ReLU, the three heads' hidden
#: units all died in one held-out fit over the LR maps (1x1x4 mm sub-01 of seed 5000: its
#: maps stayed the LR input's); with this slope none did (docs/methods.md).
LEAKY_SLOPE = 0.1
#: Weight of the proximal term over the SWIG prediction (``INRConfig.anchor``), chosen on
#: validation phantoms (seed 3000, benchmarks.inr_stopping --init swig; at the MI rule's
#: kept step): without it the fit drove the physics loss far below the truth's and GM T1 MAE
#: from 25-34 to 36-50 ms; with 1, GM T1 stayed within 0.8 ms but PD SSIM fell by up to
#: 0.0033; with 5 every score stayed within 0.1 ms / 0.0002 of SWIG's (docs/methods.md).
SWIG_ANCHOR = 5.0


@dataclass(frozen=True)
class INRConfig:
    """Representation and fitting settings (recorded in the provenance sidecars).

    Grid encoding: one dense grid of ``grid_features`` features per node spacing in
    ``grid_spacings_mm`` (never finer than the HR voxel); ``tv``: weight of the grids'
    total variation (mean |difference| of neighbouring nodes, per level, under the crops).
    Fourier encoding: ``features`` frequencies of standard deviation ``sigma`` cycles/mm.
    Both: a trunk of ``trunk_layers`` x ``width`` and one head per map, with ``activation``
    ("leaky_relu", slope :data:`LEAKY_SLOPE`, the default, or "relu").
    ``anchor``: weight of a proximal term, the L1 size of the correction in the network
    domain (PD, ln T1, ln T2) inside the mask, which keeps the fit near its base where the
    physics terms do not pull hard (``None``, the default: :data:`SWIG_ANCHOR` over SWIG,
    0 over the LR maps).
    ``crops_per_step`` crops of ``crop`` HR voxels (each axis cut to a multiple of its crop
    unit, :func:`swigapp.models.crops.crop_units`) per step, spread over the brain.
    Every ``check_every`` steps the mean mutual information (nats) between the maps and the
    guides is measured on ``check_voxels`` fixed brain voxels. ``stop="auto"`` (the default)
    becomes ``"steps"`` over the LR maps and ``"mi"`` over the SWIG prediction
    (:meth:`resolved`). With
    ``stop="mi"``, after
    ``min_steps`` the fit stops once the best MI has not risen by more than ``tol``
    (relative) over the last ``patience`` checks, and the state of the best check is kept.
    """

    encoding: str = "grid"
    init: str = "lr"
    stop: str = "auto"
    grid_spacings_mm: tuple[float, ...] = (8.0, 4.0, 2.0, 1.0)
    grid_features: int = 4
    tv: float = 0.0
    features: int = 128
    sigma: float = 0.15
    width: int = 64
    trunk_layers: int = 2
    head_layers: int = 1
    activation: str = "leaky_relu"
    anchor: float | None = None
    learning_rate: float = 1e-2
    crop: tuple[int, int, int] = (24, 24, 24)
    crops_per_step: int = 8
    max_steps: int = 600
    min_steps: int = 300
    check_every: int = 50
    patience: int = 3
    tol: float = 0.0
    check_voxels: int = 20000
    seed: int = 0
    weights: LossWeights = field(default_factory=lambda: INR_WEIGHTS)

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("encoding", self.encoding, ENCODINGS),
            ("stop", self.stop, STOP_RULES),
            ("init", self.init, INITS),
            ("activation", self.activation, ACTIVATIONS),
        ):
            if value not in allowed:
                raise ValueError(f"INR {name} must be one of {allowed}, got {value!r}")
        if self.anchor is not None and self.anchor < 0:
            raise ValueError(f"INR anchor must be >= 0, got {self.anchor}")

    def resolved(self) -> INRConfig:
        """The settings with every "auto" (and the ``None`` anchor) made concrete for this
        ``init``: what :func:`fit_inr` runs and records. Kept apart from construction so that
        ``replace(config, init=...)`` re-derives them."""
        over_lr = self.init == "lr"
        changes: dict = {}
        if self.stop == "auto":  # fixed steps over the LR maps, the MI over SWIG
            changes["stop"] = "steps" if over_lr else "mi"
        if self.anchor is None:
            changes["anchor"] = 0.0 if over_lr else SWIG_ANCHOR
        return replace(self, **changes)

    @classmethod
    def fourier(cls, **changes) -> INRConfig:
        """The paper's Fourier-feature MLP as first shipped (3 x 128 ReLU trunk, lr 5e-3,
        8 crops of 12^3, MI stopping after 500 steps)."""
        old = dict(
            encoding="fourier",
            activation="relu",
            stop="mi",
            width=128,
            trunk_layers=3,
            learning_rate=5e-3,
            crop=(12, 12, 12),
            max_steps=1500,
            min_steps=500,
            check_every=50,
            tol=0.005,
        )
        return cls(**(old | changes))

    def as_dict(self) -> dict:
        """JSON-ready dict of the settings."""
        out = asdict(self)
        out["crop"] = list(self.crop)
        out["grid_spacings_mm"] = list(self.grid_spacings_mm)
        return out


def _trunk_and_heads(model: nn.Module, c_in: int, config: INRConfig) -> None:
    """Give ``model`` a trunk and one head per map whose last layer starts near 0 (the fit
    starts at its base)."""

    def act() -> nn.Module:
        return nn.LeakyReLU(LEAKY_SLOPE) if config.activation == "leaky_relu" else nn.ReLU()

    layers: list[nn.Module] = []
    for _ in range(config.trunk_layers):
        layers += [nn.Linear(c_in, config.width), act()]
        c_in = config.width
    model.trunk = nn.Sequential(*layers)
    model.heads = nn.ModuleList()
    for _ in range(3):
        head: list[nn.Module] = []
        for _ in range(config.head_layers):
            head += [nn.Linear(c_in, config.width // 2), act()]
        last = nn.Linear(config.width // 2 if config.head_layers else c_in, 1)
        nn.init.normal_(last.weight, std=1e-3)
        nn.init.zeros_(last.bias)
        model.heads.append(nn.Sequential(*head, last))


def _decode_heads(model: nn.Module, features: torch.Tensor) -> torch.Tensor:
    h = model.trunk(features)
    return torch.cat([head(h) for head in model.heads], dim=-1)


class FourierMLP(nn.Module):
    """Voxel indices (N, 3) -> corrections (N, 3) in the network domain (PD, ln T1, ln T2).

    gamma(x) = [sin 2 pi B x, cos 2 pi B x] of the position x in mm (centred on the grid),
    B ~ N(0, sigma^2) fixed, then the trunk and heads.
    """

    def __init__(
        self, config: INRConfig, shape: Sequence[int], voxel_size: Sequence[float]
    ) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(config.seed)
        freqs = torch.randn(3, config.features, generator=gen) * config.sigma
        self.register_buffer("freqs", freqs)
        self.register_buffer("centre", (torch.tensor(shape, dtype=torch.float32) - 1) / 2)
        self.register_buffer("voxel", torch.tensor(voxel_size, dtype=torch.float32))
        _trunk_and_heads(self, 2 * config.features, config)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(N, 3) voxel indices -> (N, 3)."""
        phase = 2 * np.pi * ((idx - self.centre) * self.voxel) @ self.freqs
        return _decode_heads(self, torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1))

    def boxes(
        self, boxes: Sequence[tuple[slice, ...]], tv: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor, list]:
        """Corrections (B, x, y, z, 3) on HR boxes of equal size; no grid: no regulariser
        and no leaves."""
        device = self.freqs.device
        idx = torch.stack([_box_indices(box) for box in boxes]).to(device)
        out = self(idx.reshape(-1, 3)).reshape(*idx.shape[:4], 3)
        return out, out.new_zeros(()), []


class GridINR(nn.Module):
    """Voxel indices (N, 3) -> corrections (N, 3): multi-resolution dense feature grids,
    trilinear interpolation, then the trunk and heads.

    Level l has nodes every ``stride_l`` voxels per axis (its spacing in mm over the voxel
    size, at least 1), covering the HR grid; its features (F, nx, ny, nz) are a buffer, not
    a parameter: a fitting step cuts out the nodes under each crop as leaves
    (:meth:`boxes`) and :class:`NodeAdam` updates only those, so a step costs the same for
    any brain size.
    """

    def __init__(
        self, config: INRConfig, shape: Sequence[int], voxel_size: Sequence[float]
    ) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(config.seed)
        strides: list[tuple[float, ...]] = []
        for spacing in config.grid_spacings_mm:
            stride = tuple(max(spacing / float(v), 1.0) for v in voxel_size)
            if stride not in strides:  # levels finer than the voxel collapse onto it
                strides.append(stride)
        self.strides = strides
        self.sizes = [
            tuple(math.floor((n - 1) / s) + 2 for n, s in zip(shape, st, strict=True))
            for st in strides
        ]
        for level, size in enumerate(self.sizes):
            grid = torch.empty(config.grid_features, *size).uniform_(-1e-4, 1e-4, generator=gen)
            self.register_buffer(f"grid{level}", grid)
        _trunk_and_heads(self, len(self.sizes) * config.grid_features, config)

    @property
    def grids(self) -> list[torch.Tensor]:
        """The feature grids, coarse to fine, (F, nx, ny, nz) each."""
        return [getattr(self, f"grid{level}") for level in range(len(self.sizes))]

    def _points(self, level: int, idx: torch.Tensor) -> torch.Tensor:
        """(N, F) trilinear features of level ``level`` at voxel indices (N, 3)."""
        grid = self.grids[level]
        flat = grid.reshape(grid.shape[0], -1)
        _, sy, sz = self.sizes[level]
        pos = idx / idx.new_tensor(self.strides[level])
        base = torch.minimum(torch.floor(pos).clamp_min(0), idx.new_tensor(self.sizes[level]) - 2)
        frac = (pos - base).clamp(0.0, 1.0)
        base = base.long()
        acc = idx.new_zeros((len(idx), grid.shape[0]))
        for corner in range(8):
            bits = [(corner >> a) & 1 for a in range(3)]
            w = torch.ones_like(frac[:, 0])
            for a, bit in enumerate(bits):
                w = w * (frac[:, a] if bit else 1 - frac[:, a])
            node = ((base[:, 0] + bits[0]) * sy + base[:, 1] + bits[1]) * sz + base[:, 2] + bits[2]
            acc = acc + w[:, None] * flat[:, node].T
        return acc

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(N, 3) voxel indices -> (N, 3) (the grids are constants here: rendering)."""
        feats = torch.cat([self._points(level, idx) for level in range(len(self.sizes))], -1)
        return _decode_heads(self, feats)

    def _axis(self, level: int, axis: int, sl: slice) -> tuple[slice, torch.Tensor]:
        """Nodes under HR voxels ``sl`` along ``axis`` and the (voxels, nodes) trilinear
        weights."""
        stride, size = self.strides[level][axis], self.sizes[level][axis]
        pos = torch.arange(sl.start, sl.stop, dtype=torch.float32) / stride
        base = torch.floor(pos).clamp(0, size - 2)
        frac = (pos - base).clamp(0.0, 1.0)
        lo, hi = int(base[0]), int(base[-1]) + 1
        weights = torch.zeros(len(pos), hi - lo + 1)
        rows = torch.arange(len(pos))
        weights[rows, base.long() - lo] += 1 - frac
        weights[rows, base.long() - lo + 1] += frac
        return slice(lo, hi + 1), weights

    def boxes(
        self, boxes: Sequence[tuple[slice, ...]], tv: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, tuple[slice, ...], torch.Tensor]]]:
        """Corrections (B, x, y, z, 3) on HR boxes of equal size, the grids' total variation
        under them (mean |difference| of neighbouring nodes, averaged over levels and
        boxes; 0 when ``tv`` is 0) and the leaves (level, node box, tensor) whose gradients
        :class:`NodeAdam` applies."""
        device = self.grids[0].device
        leaves, feats, tv_terms = [], [], []
        for box in boxes:
            per_level = []
            for level, grid in enumerate(self.grids):
                axes = [self._axis(level, a, sl) for a, sl in enumerate(box)]
                cuts, mats = zip(*axes, strict=True)
                leaf = grid[(slice(None), *cuts)].detach().requires_grad_(True)
                leaves.append((level, cuts, leaf))
                wx, wy, wz = (m.to(device) for m in mats)
                per_level.append(torch.einsum("fabc,xa,yb,zc->xyzf", leaf, wx, wy, wz))
                if tv:
                    diffs = [leaf.diff(dim=a).abs().mean() for a in (1, 2, 3) if leaf.shape[a] > 1]
                    if diffs:
                        tv_terms.append(torch.stack(diffs).sum())
            feats.append(torch.cat(per_level, dim=-1))
        out = _decode_heads(self, torch.stack(feats))
        reg = torch.stack(tv_terms).mean() if tv_terms else out.new_zeros(())
        return out, reg, leaves


class NodeAdam:
    """Adam on the grid nodes a step touched (lazy, as sparse Adam): the gradients of the
    leaves of :meth:`GridINR.boxes` are summed per node, then only those nodes move; the
    bias correction counts global steps."""

    def __init__(
        self,
        model: GridINR,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.model, self.lr, self.betas, self.eps, self.t = model, lr, betas, eps, 0
        self.m = [torch.zeros_like(g) for g in model.grids]
        self.v = [torch.zeros_like(g) for g in model.grids]
        self.acc = [torch.zeros_like(g) for g in model.grids]

    @torch.no_grad()
    def step(self, leaves: Sequence[tuple[int, tuple[slice, ...], torch.Tensor]]) -> None:
        """Apply the leaves' gradients."""
        self.t += 1
        b1, b2 = self.betas
        touched: dict[int, list[torch.Tensor]] = {}
        for level, cuts, leaf in leaves:
            if leaf.grad is None:
                continue
            self.acc[level][(slice(None), *cuts)] += leaf.grad
            _, sy, sz = self.model.sizes[level]
            ax = [torch.arange(c.start, c.stop) for c in cuts]
            touched.setdefault(level, []).append(
                ((ax[0][:, None, None] * sy + ax[1][None, :, None]) * sz + ax[2]).reshape(-1)
            )
        for level, parts in touched.items():
            nodes = torch.unique(torch.cat(parts)).to(self.acc[level].device)
            grid, m, v, acc = (
                t.view(t.shape[0], -1)
                for t in (self.model.grids[level], self.m[level], self.v[level], self.acc[level])
            )
            g = acc[:, nodes]
            acc[:, nodes] = 0
            m[:, nodes] = b1 * m[:, nodes] + (1 - b1) * g
            v[:, nodes] = b2 * v[:, nodes] + (1 - b2) * g * g
            m_hat = m[:, nodes] / (1 - b1**self.t)
            v_hat = v[:, nodes] / (1 - b2**self.t)
            grid[:, nodes] -= self.lr * m_hat / (v_hat.sqrt() + self.eps)


def build_representation(
    config: INRConfig, shape: Sequence[int], voxel_size: Sequence[float]
) -> nn.Module:
    """The encoding of ``config`` for an HR grid of ``shape`` voxels of ``voxel_size`` mm."""
    cls = GridINR if config.encoding == "grid" else FourierMLP
    return cls(config, shape, voxel_size)


@dataclass
class INRFit:
    """A fitted representation, its base and how the fit went."""

    model: nn.Module
    steps: int
    stopped_by: str  # "mi_plateau" or "max_steps"
    losses: list[float]
    mi_curve: list[tuple[int, float]]
    seconds: float
    config: INRConfig
    #: the base the representation corrects (3, X, Y, Z), physical units
    base: torch.Tensor | None = None
    #: step whose state was kept (the best check when stopping early)
    kept_step: int = 0
    #: values of the fit's ``monitor`` per check (not recorded in the summary)
    monitor_curve: list[tuple[int, float]] = field(default_factory=list)

    def summary(self) -> dict:
        """JSON-ready record of the fit (for provenance)."""
        return {
            "config": self.config.as_dict(),
            "steps": self.steps,
            "kept_step": self.kept_step,
            "stopped_by": self.stopped_by,
            "final_loss": round(self.losses[-1], 6) if self.losses else None,
            "mi_curve": [[s, round(v, 5)] for s, v in self.mi_curve],
            "fit_seconds": round(self.seconds, 2),
        }


def _box_indices(box: Sequence[slice]) -> torch.Tensor:
    """(x, y, z, 3) float voxel indices of an HR box."""
    axes = [torch.arange(s.start, s.stop, dtype=torch.float32) for s in box]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


def _render(
    model: nn.Module, idx: torch.Tensor, z_base: torch.Tensor, chunk: int = 65536
) -> torch.Tensor:
    """Maps (N, 3) in physical units at voxel indices (N, 3): ``z_base`` (N, 3, the base in
    the network domain) plus the representation, ``chunk`` points at a time."""
    out = [
        decode(model(idx[i : i + chunk]) + z_base[i : i + chunk].to(idx.device), dim=-1)
        for i in range(0, len(idx), chunk)
    ]
    return torch.cat(out) if out else idx.new_zeros((0, 3))


def maps_guides_mi(maps: np.ndarray, guides: np.ndarray, bins: int = 32) -> float:
    """Mean MI (nats) over every (map, guide) pair; maps (3, N), guides (G, N)."""
    values = [
        metrics.mutual_information(m, g, bins=bins) for m in maps for g in guides if np.ptp(g) > 0
    ]
    return float(np.mean(values)) if values else 0.0


def still_improving(values: Sequence[float], patience: int, tol: float, larger: bool) -> bool:
    """True while the best of the last ``patience`` values beats the best before them by
    more than ``tol`` (relative); ``larger``: higher is better."""
    if len(values) <= patience:
        return True
    before, recent = values[:-patience], values[-patience:]
    if larger:
        return max(recent) > max(before) * (1 + tol)
    return min(recent) < min(before) * (1 - tol)


def _plateau(values: Sequence[float], cfg: INRConfig) -> bool:
    """True when the MI (higher is better) has stopped rising (see :class:`INRConfig`)."""
    return not still_improving(values, cfg.patience, cfg.tol, larger=True)


def guides_seen(subject: SubjectTensors) -> torch.Tensor:
    """(X, Y, Z) brain voxels every present guide has data for: the guide term and the MI see
    only these (outside a guide's field of view, 0 after resampling, the guide term would pull
    the maps to 0)."""
    present = subject.present > 0
    return subject.mask & (subject.raw_guides[present] > 0).all(dim=0)


def crop_batch(
    subject: SubjectTensors,
    rng: np.random.Generator,
    crop: Sequence[int],
    n: int,
    seen: torch.Tensor,
    device: torch.device | str = "cpu",
) -> tuple[list[dict], dict]:
    """``n`` random HR crops aligned to the LR grid and their collated batch for the
    unsupervised loss (no truth; the guide term restricted to ``seen``)."""
    crops = [random_crop(subject, rng, crop, perm=(0, 1, 2), guide_keep=1.0) for _ in range(n)]
    batch = collate(crops, device)
    batch["truth"] = None
    batch["guide_mask"] = torch.stack([seen[c["box"]] for c in crops]).to(device)
    return crops, batch


def _optimisers(model: nn.Module, lr: float) -> tuple[torch.optim.Adam, NodeAdam | None]:
    """Adam for the network, :class:`NodeAdam` for the grids (only touched nodes move)."""
    nodes = NodeAdam(model, lr) if isinstance(model, GridINR) else None
    return torch.optim.Adam(model.parameters(), lr=lr), nodes


@dataclass
class _Checks:
    """The fit's checks on fixed voxels (``idx``, their ``base`` maps and ``guides``): the
    mutual information between maps and guides, the best state for ``stop="mi"``, and the
    ``monitor`` of the whole volume (``render``)."""

    idx: torch.Tensor
    base: torch.Tensor
    guides: torch.Tensor
    stop: str
    monitor: Callable[[np.ndarray], float] | None
    render: Callable[[], np.ndarray]
    mi_curve: list[tuple[int, float]] = field(default_factory=list)
    monitor_curve: list[tuple[int, float]] = field(default_factory=list)
    best: tuple[float, int, dict] | None = None

    def record(self, step: int, model: nn.Module) -> None:
        """Check the representation at ``step``."""
        with torch.no_grad():
            pred = _render(model, self.idx, self.base).T.cpu()
        self.mi_curve.append((step, maps_guides_mi(pred.numpy(), self.guides.numpy())))
        if self.stop == "mi" and (self.best is None or self.mi_curve[-1][1] > self.best[0]):
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.best = (self.mi_curve[-1][1], step, state)
        if self.monitor is not None:
            self.monitor_curve.append((step, float(self.monitor(self.render()))))


def _step_loss(
    model: nn.Module,
    cfg: INRConfig,
    z_base: torch.Tensor,
    crops: Sequence[dict[str, Any]],
    batch: dict[str, Any],
    device: torch.device | str,
) -> tuple[torch.Tensor, Any]:
    """One step's loss over its crops, and the grid leaves it touched (for NodeAdam)."""
    out, reg, leaves = model.boxes([c["box"] for c in crops], cfg.tv)
    zb = torch.stack([z_base[c["box"]] for c in crops]).to(device)
    maps = decode(out + zb, dim=-1).permute(0, 4, 1, 2, 3)  # (B, 3, x, y, z)
    loss, _ = total_loss(cfg.weights, maps, batch)
    loss = loss + cfg.tv * reg
    if cfg.anchor:  # the correction's size, in the network domain
        loss = loss + cfg.anchor * masked_l1(out.permute(0, 4, 1, 2, 3), batch["mask"])
    return loss, leaves


def fit_inr(
    subject: SubjectTensors,
    voxel_size: Sequence[float],
    config: INRConfig | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
    base: np.ndarray | torch.Tensor | None = None,
    monitor: Callable[[np.ndarray], float] | None = None,
) -> INRFit:
    """Fit the representation to one subject (guides registered to the HR grid).

    ``voxel_size``: HR voxel edge lengths in mm; ``base``: maps (3, X, Y, Z; PD, T1 s,
    T2 s) the representation corrects (``config.init="swig"``: the SWIG prediction), by
    default the LR maps' upsampling. ``monitor``: called at every check with the maps
    rendered so far (3, X, Y, Z); its values make ``monitor_curve`` (benchmarks: the true
    error against the stopping measures).
    """
    cfg = (config or INRConfig()).resolved()
    if cfg.init == "swig" and base is None:
        raise ValueError("INR init 'swig' needs the SWIG prediction as its base")
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng([cfg.seed, 1])
    base_maps = subject.lr_up if base is None else torch.as_tensor(base, dtype=torch.float32)
    z_base = encode(base_maps, dim=0).permute(1, 2, 3, 0)  # (X, Y, Z, 3)
    model = build_representation(cfg, subject.hr_shape, voxel_size).to(device)
    adam, node_adam = _optimisers(model, cfg.learning_rate)
    present = subject.present > 0
    seen = guides_seen(subject)
    candidates = torch.nonzero(seen) if seen.any() else subject.brain_voxels
    check = candidates[rng.permutation(len(candidates))[: cfg.check_voxels]]
    checks = _Checks(
        check.float().to(device),
        z_base[tuple(check.T)],
        subject.raw_guides[present][:, check[:, 0], check[:, 1], check[:, 2]],
        cfg.stop,
        monitor,
        lambda: _render_volume(model, subject, base_maps, device),
    )
    # check 0 is the start, the base itself: with stop="mi" it is a candidate for the kept
    # state (the fit may not help)
    checks.record(0, model)
    losses: list[float] = []
    stopped_by, step = "max_steps", 0
    bar = tqdm(total=cfg.max_steps, desc="INR fit", disable=not progress)
    for step in range(1, cfg.max_steps + 1):
        decay = 0.1 + 0.45 * (1 + np.cos(np.pi * step / cfg.max_steps))  # cosine to 10 %
        for group in adam.param_groups:
            group["lr"] = cfg.learning_rate * decay
        if node_adam is not None:
            node_adam.lr = cfg.learning_rate * decay
        crops, batch = crop_batch(subject, rng, cfg.crop, cfg.crops_per_step, seen, device)
        loss, leaves = _step_loss(model, cfg, z_base, crops, batch, device)
        adam.zero_grad()
        loss.backward()
        adam.step()
        if node_adam is not None:
            node_adam.step(leaves)
        losses.append(float(loss.detach()))
        bar.update()
        if step % cfg.check_every:
            continue
        checks.record(step, model)
        mi = [v for _, v in checks.mi_curve]
        bar.set_postfix(loss=f"{losses[-1]:.4f}", mi=f"{mi[-1]:.4f}")
        if cfg.stop == "mi" and step >= cfg.min_steps and _plateau(mi, cfg):
            stopped_by = "mi_plateau"
            break
    bar.close()
    kept = step
    if checks.best is not None:
        model.load_state_dict(checks.best[2])
        kept = checks.best[1]
    seconds = time.perf_counter() - start
    return INRFit(
        model.eval(),
        step,
        stopped_by,
        losses,
        checks.mi_curve,
        seconds,
        cfg,
        base=base_maps,
        kept_step=kept,
        monitor_curve=checks.monitor_curve,
    )


@torch.inference_mode()
def _render_volume(
    model: nn.Module, subject: SubjectTensors, base: torch.Tensor, device: torch.device | str
) -> np.ndarray:
    """(3, X, Y, Z) maps: the representation over ``base`` inside the brain mask, the LR
    input outside it."""
    out = subject.lr_up.clone()
    inside = subject.brain_voxels
    z_base = encode(base, dim=0).permute(1, 2, 3, 0)[tuple(inside.T)]
    values = _render(model, inside.float().to(device), z_base).cpu()
    out[:, inside[:, 0], inside[:, 1], inside[:, 2]] = values.T
    return out.numpy()


def render_volume(
    fit: INRFit,
    subject: SubjectTensors,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """HR maps (3, X, Y, Z) float32 (PD a.u., T1 and T2 in s): the representation inside the
    brain mask, the LR input (its upsampling) outside it."""
    base = subject.lr_up if fit.base is None else fit.base
    return _render_volume(fit.model.to(device).eval(), subject, base, device)
