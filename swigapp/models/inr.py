"""Subject-specific implicit neural representation of the HR maps (``--method inr``).

After McGinnis et al., "Single-subject multi-contrast MRI super-resolution via implicit
neural representations" (MICCAI 2023), written here from the paper's description and fitted
with this package's physics: a coordinate MLP over position (mm) with Gaussian random
Fourier features, a shared trunk and one head per map (PD, ln T1, ln T2), fitted to one
subject by the same unsupervised terms as the SWIG model (guide consistency through the
signal equations, LR consistency through k-space truncation). No training cohort: only the
representation differs from SWIG.

Each step evaluates the MLP on every voxel of a few random HR crops aligned to the LR grid
(so the k-space truncation of each crop lines up with the acquired LR box, as in SWIG's
training). Fitting stops when the mutual information between the predicted maps and the
guides stops rising (the paper's early-stopping criterion), or at ``max_steps``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from swigapp import metrics
from swigapp.models.data import collate, random_crop
from swigapp.models.features import SubjectTensors, decode, encode
from swigapp.models.inference import ADAPT_WEIGHTS
from swigapp.models.losses import LossWeights, total_loss

#: The SWIG adaptation's unsupervised terms: there is no HR truth for a real subject.
INR_WEIGHTS = ADAPT_WEIGHTS


@dataclass(frozen=True)
class INRConfig:
    """Representation and fitting settings (recorded in the provenance sidecars).

    ``sigma``: standard deviation of the Fourier feature frequencies in cycles/mm;
    ``crops_per_step`` crops of ``crop`` HR voxels (each axis cut to a multiple of its crop
    unit, :func:`swigapp.models.data.crop_units`) per step, spread over the brain: a few
    small crops fit faster than one big one (the MLP is shared by the whole brain);
    early stopping: every ``mi_every`` steps the MI (nats) between maps and guides is
    measured on a fixed sample of ``mi_voxels`` brain voxels, and fitting stops after
    ``min_steps`` once the best MI has not risen by more than ``mi_tol`` (relative) over
    the last ``mi_patience`` measurements.
    """

    features: int = 128
    sigma: float = 0.15
    width: int = 128
    trunk_layers: int = 3
    head_layers: int = 1
    learning_rate: float = 5e-3
    crop: tuple[int, int, int] = (12, 12, 12)
    crops_per_step: int = 8
    max_steps: int = 1500
    min_steps: int = 500
    mi_every: int = 50
    mi_patience: int = 3
    mi_tol: float = 0.005
    mi_voxels: int = 20000
    seed: int = 0
    #: represent the correction to the LR maps' zero-filled upsampling (a global skip, as
    #: in SWIG) instead of the maps themselves: the fit starts at the LR input
    residual: bool = True
    weights: LossWeights = field(default_factory=lambda: INR_WEIGHTS)

    def as_dict(self) -> dict:
        """JSON-ready dict of the settings."""
        out = asdict(self)
        out["crop"] = list(self.crop)
        return out


class FourierMLP(nn.Module):
    """Coordinates (N, 3) in mm -> maps in the network domain (N, 3): PD, ln T1, ln T2.

    gamma(x) = [sin 2 pi B x, cos 2 pi B x], B ~ N(0, sigma^2) (fixed), then a ReLU trunk
    shared by the maps and one small head per map.
    """

    def __init__(self, config: INRConfig, base: Sequence[float]) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(config.seed)
        freqs = torch.randn(3, config.features, generator=gen) * config.sigma
        self.register_buffer("freqs", freqs)
        layers: list[nn.Module] = []
        c_in = 2 * config.features
        for _ in range(config.trunk_layers):
            layers += [nn.Linear(c_in, config.width), nn.ReLU()]
            c_in = config.width
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.ModuleList()
        for value in base:
            head: list[nn.Module] = []
            for _ in range(config.head_layers):
                head += [nn.Linear(config.width, config.width // 2), nn.ReLU()]
            last = nn.Linear(config.width // 2 if config.head_layers else config.width, 1)
            nn.init.normal_(last.weight, std=1e-3)
            nn.init.constant_(last.bias, float(value))
            self.heads.append(nn.Sequential(*head, last))

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """(N, 3) mm -> (N, 3) network-domain values."""
        phase = 2 * np.pi * coords @ self.freqs
        h = self.trunk(torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1))
        return torch.cat([head(h) for head in self.heads], dim=-1)


@dataclass
class INRFit:
    """A fitted representation and how the fit went."""

    model: FourierMLP
    steps: int
    stopped_by: str  # "mi_plateau" or "max_steps"
    losses: list[float]
    mi_curve: list[tuple[int, float]]
    seconds: float
    config: INRConfig

    def summary(self) -> dict:
        """JSON-ready record of the fit (for provenance)."""
        return {
            "config": self.config.as_dict(),
            "steps": self.steps,
            "stopped_by": self.stopped_by,
            "final_loss": round(self.losses[-1], 6) if self.losses else None,
            "mi_curve": [[s, round(v, 5)] for s, v in self.mi_curve],
            "fit_seconds": round(self.seconds, 2),
        }


def voxel_grid(shape: Sequence[int], voxel_size: Sequence[float]) -> torch.Tensor:
    """Voxel centres (X, Y, Z, 3) in mm, centred on the grid's middle."""
    axes = [
        (torch.arange(n, dtype=torch.float32) - (n - 1) / 2) * float(v)
        for n, v in zip(shape, voxel_size, strict=True)
    ]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


def _render(
    model: FourierMLP, coords: torch.Tensor, z_base: torch.Tensor | None, chunk: int = 65536
) -> torch.Tensor:
    """Maps (N, 3) in physical units at coordinates (N, 3), ``chunk`` points at a time;
    ``z_base`` (N, 3): network-domain values the MLP output is added to (residual mode)."""
    out = []
    for i in range(0, len(coords), chunk):
        z = model(coords[i : i + chunk])
        if z_base is not None:
            z = z + z_base[i : i + chunk].to(z.device)
        out.append(decode(z, dim=-1))
    return torch.cat(out) if out else coords.new_zeros((0, 3))


def maps_guides_mi(maps: np.ndarray, guides: np.ndarray, bins: int = 32) -> float:
    """Mean MI (nats) over every (map, guide) pair; maps (3, N), guides (G, N)."""
    values = [
        metrics.mutual_information(m, g, bins=bins) for m in maps for g in guides if np.ptp(g) > 0
    ]
    return float(np.mean(values)) if values else 0.0


def fit_inr(
    subject: SubjectTensors,
    voxel_size: Sequence[float],
    config: INRConfig | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> INRFit:
    """Fit the representation to one subject (guides registered to the HR grid).

    ``voxel_size``: HR voxel edge lengths in mm.
    """
    cfg = config or INRConfig()
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng([cfg.seed, 1])
    mask = subject.mask
    z_lr = encode(subject.lr_up, dim=0).permute(1, 2, 3, 0)  # (X, Y, Z, 3)
    base = [0.0] * 3 if cfg.residual else z_lr[mask].median(dim=0).values.tolist()
    model = FourierMLP(cfg, base).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    grid = voxel_grid(subject.hr_shape, voxel_size)
    # fixed MI sample: brain voxels, with the guides that are present
    brain = subject.brain_voxels
    pick = brain[rng.permutation(len(brain))[: cfg.mi_voxels]]
    mi_coords = grid[tuple(pick.T)].to(device)
    mi_base = z_lr[tuple(pick.T)] if cfg.residual else None
    present = [g for g in range(len(subject.present)) if subject.present[g] > 0]
    mi_guides = subject.raw_guides[present][:, pick[:, 0], pick[:, 1], pick[:, 2]].numpy()
    losses: list[float] = []
    curve: list[tuple[int, float]] = []
    stopped_by, step = "max_steps", 0
    bar = tqdm(total=cfg.max_steps, desc="INR fit", disable=not progress)
    for step in range(1, cfg.max_steps + 1):
        decay = 0.1 + 0.45 * (1 + np.cos(np.pi * step / cfg.max_steps))  # cosine to 10 %
        for group in optimiser.param_groups:
            group["lr"] = cfg.learning_rate * decay
        crops = [
            random_crop(subject, rng, cfg.crop, perm=(0, 1, 2), guide_keep=1.0)
            for _ in range(cfg.crops_per_step)
        ]
        batch = collate(crops, device)
        batch["truth"] = None
        coords = torch.stack([grid[c["box"]] for c in crops]).to(device)  # (B, x, y, z, 3)
        z = model(coords.reshape(-1, 3))
        if cfg.residual:
            z = z + torch.stack([z_lr[c["box"]] for c in crops]).reshape(-1, 3).to(device)
        maps = decode(z, dim=-1).T.reshape(3, *coords.shape[:4]).transpose(0, 1)
        loss, _ = total_loss(cfg.weights, maps, batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
        bar.update()
        if step % cfg.mi_every == 0:
            with torch.no_grad():
                pred = _render(model, mi_coords, mi_base).T.cpu().numpy()
            curve.append((step, maps_guides_mi(pred, mi_guides)))
            bar.set_postfix(loss=f"{losses[-1]:.4f}", mi=f"{curve[-1][1]:.4f}")
            if step >= cfg.min_steps and _plateau([v for _, v in curve], cfg):
                stopped_by = "mi_plateau"
                break
    bar.close()
    seconds = time.perf_counter() - start
    return INRFit(model.eval(), step, stopped_by, losses, curve, seconds, cfg)


def _plateau(values: Sequence[float], cfg: INRConfig) -> bool:
    """True when the best of the last ``mi_patience`` values is not ``mi_tol`` above the best
    value before them."""
    if len(values) <= cfg.mi_patience:
        return False
    before = max(values[: -cfg.mi_patience])
    recent = max(values[-cfg.mi_patience :])
    return recent <= before * (1 + cfg.mi_tol)


@torch.inference_mode()
def render_volume(
    fit: INRFit,
    subject: SubjectTensors,
    voxel_size: Sequence[float],
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """HR maps (3, X, Y, Z) float32 (PD a.u., T1 and T2 in s): the representation inside the
    brain mask, the LR input (zero-filled upsampling) outside it."""
    model = fit.model.to(device).eval()
    grid = voxel_grid(subject.hr_shape, voxel_size)
    out = subject.lr_up.clone()
    inside = subject.brain_voxels
    z_base = None
    if fit.config.residual:
        z_base = encode(subject.lr_up, dim=0).permute(1, 2, 3, 0)[tuple(inside.T)]
    values = _render(model, grid[tuple(inside.T)].to(device), z_base).cpu()
    out[:, inside[:, 0], inside[:, 1], inside[:, 2]] = values.T
    return out.numpy()
