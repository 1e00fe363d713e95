"""Training loop: deterministic, checkpointed, resumable, with loss curves (TSV + PNG)."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from swigapp._version import __version__
from swigapp.models.data import sample_batch
from swigapp.models.features import SubjectTensors
from swigapp.models.inference import resolve_device
from swigapp.models.losses import LossWeights, supervised_loss, total_loss
from swigapp.models.network import NetConfig, build_network, widen_context

LOG = logging.getLogger("swigapp.models")
CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
LOSSES = "losses.tsv"
LOSS_COLUMNS = ("guide", "lr", "supervised", "edge", "lowres", "linear", "beyond", "anchor")
#: losses.tsv names of the LOSS_COLUMNS ("lr" would clash with the learning-rate column)
TSV_LOSS_NAMES = tuple("lr_consistency" if c == "lr" else c for c in LOSS_COLUMNS)
ARCH_NAMES = {
    "resnet": "SwigNet (2.5D residual CNN)",
    "unet": "WmriUNet (2.5D U-Net, weighted images only)",
}


@dataclass
class TrainConfig:
    """Everything that determines a training run (recorded in the model card)."""

    steps: int = 2000
    batch_size: int = 4
    crop: tuple[int, int, int] = (64, 64, 16)
    learning_rate: float = 1e-3
    seed: int = 0
    guide_keep: float = 0.75
    #: probability that a crop is given a subset of the maps (models.crops.drop_maps)
    map_drop: float = 0.0
    checkpoint_every: int = 100
    net: NetConfig = field(default_factory=NetConfig)
    weights: LossWeights = field(default_factory=LossWeights)
    data: dict = field(default_factory=dict)
    #: start from these weights instead of a random initialisation (fine-tuning):
    #: {"path": model.pt, "sha256": its hash}; the network configuration must match
    init: dict | None = None

    def as_dict(self) -> dict:
        """JSON-ready dict of the configuration."""
        out = dataclasses.asdict(self)
        out["crop"] = list(self.crop)
        if not self.map_drop:  # the records of runs made before the option existed
            out.pop("map_drop")
        return out


def sha256(path: str | Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_save(obj: object, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _lr_at(config: TrainConfig, step: int) -> float:
    """Cosine decay from learning_rate to 5 % of it, after a linear warm-up (<= 50 steps)."""
    warm = min(1.0, (step + 1) / max(1, min(50, config.steps // 5)))
    progress = step / max(1, config.steps)
    return config.learning_rate * warm * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * progress)))


def _initial_model(config: TrainConfig) -> nn.Module:
    """The network to train: fresh, or the ``config.init`` weights (its context grown when
    the configuration asks for more neighbouring slices)."""
    model = build_network(config.net)
    if config.init is not None:
        start_from = load_model(config.init["path"], expected_sha256=config.init.get("sha256"))
        grows = start_from.config.context < config.net.context and config.net.arch == "resnet"
        if grows and replace(start_from.config, context=config.net.context) == config.net:
            # more neighbouring slices than the start: grow it, same predictions
            start_from = widen_context(start_from, config.net.context)
        if start_from.config != config.net:
            raise ValueError(
                f"{config.init['path']}: its network ({start_from.config}) differs from the "
                f"one to train ({config.net})"
            )
        model.load_state_dict(start_from.state_dict())
    elif config.weights.anchor:
        raise ValueError("the anchor term needs the weights to start from (init)")
    return model


def _batch_loss(
    model: nn.Module, reference: nn.Module | None, batch: dict[str, Any], weights: LossWeights
) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss of one batch and its parts, with the proximal term to the frozen
    ``reference`` when there is one."""
    maps = model(batch["lr_up"], batch["guides"], batch["synth"], batch["present"])
    loss, parts = total_loss(weights, maps, batch)
    if reference is not None:
        with torch.no_grad():
            start_maps = reference(
                batch["lr_up"], batch["guides"], batch["synth"], batch["present"]
            )
        anchor = supervised_loss(maps, start_maps, batch["mask"])
        parts["anchor"] = float(anchor.detach())
        loss = loss + weights.anchor * anchor
    return loss, parts


def _write_model(
    out: Path, model: nn.Module, config: TrainConfig, dev: torch.device, seconds: float
) -> None:
    """Write the final ``model.pt``, the loss plot and the model card into ``out``."""
    model_path = out / MODEL
    _atomic_save(
        {
            "net": config.net.as_dict(),
            "state_dict": model.cpu().state_dict(),
            "version": __version__,
        },
        model_path,
    )
    plot_losses(out / LOSSES, out / "losses.png")
    card = {
        "name": out.name,
        "swigapp_version": __version__,
        "architecture": {"type": ARCH_NAMES[config.net.arch], **config.net.as_dict()},
        "parameters": sum(p.numel() for p in model.parameters()),
        "training": config.as_dict(),
        "training_seconds": round(seconds, 1),
        "hardware": {
            "device": str(dev),
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "weights_file": MODEL,
        "sha256": sha256(model_path),
    }
    (out / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")


def train(
    config: TrainConfig,
    pool: Sequence[SubjectTensors],
    out_dir: str | Path,
    device: str = "auto",
    progress: bool = True,
) -> Path:
    """Train a network (SwigNet or WmriUNet, by ``config.net.arch``) on crops of ``pool``;
    write checkpoints, losses and the final model.

    Resumes from ``out_dir/checkpoint.pt`` when present (same configuration required).
    Returns the path of the final ``model.pt``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    torch.manual_seed(config.seed)
    model = _initial_model(config)
    reference = None
    if config.weights.anchor:  # the starting model, frozen, for the proximal term
        reference = copy.deepcopy(model).to(dev).eval().requires_grad_(False)
    model = model.to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=config.learning_rate)
    start, elapsed = 0, 0.0
    ckpt_path = out / CHECKPOINT
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=dev, weights_only=False)
        if ckpt["config"] != config.as_dict():
            raise ValueError(f"{ckpt_path}: checkpoint was made with another configuration")
        model.load_state_dict(ckpt["model"])
        optimiser.load_state_dict(ckpt["optimiser"])
        start, elapsed = ckpt["step"], ckpt["elapsed"]
        LOG.warning("resuming from %s at step %d", ckpt_path, start)
    _truncate_losses(out / LOSSES, start)
    log = (out / LOSSES).open("a")
    if start == 0:
        log.write("\t".join(("step", "lr", "total", *TSV_LOSS_NAMES, "seconds")) + "\n")
    bar = tqdm(total=config.steps, initial=start, desc="training", disable=not progress)
    t0 = time.perf_counter() - elapsed
    model.train()
    for step in range(start, config.steps):
        rng = np.random.default_rng([config.seed, step])
        batch = sample_batch(
            pool, rng, config.batch_size, config.crop, config.guide_keep, dev, config.map_drop
        )
        for group in optimiser.param_groups:
            group["lr"] = _lr_at(config, step)
        loss, parts = _batch_loss(model, reference, batch, config.weights)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        row = [step + 1, optimiser.param_groups[0]["lr"], float(loss.detach())]
        row += [parts.get(k, float("nan")) for k in LOSS_COLUMNS]
        log.write("\t".join(f"{v:.6g}" for v in row) + f"\t{time.perf_counter() - t0:.1f}\n")
        bar.update()
        bar.set_postfix(loss=f"{row[2]:.4f}")
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
            log.flush()
            _atomic_save(
                {
                    "model": model.state_dict(),
                    "optimiser": optimiser.state_dict(),
                    "step": step + 1,
                    "elapsed": time.perf_counter() - t0,
                    "config": config.as_dict(),
                },
                ckpt_path,
            )
    bar.close()
    log.close()
    _write_model(out, model, config, dev, time.perf_counter() - t0)
    return out / MODEL


def _truncate_losses(path: Path, step: int) -> None:
    """Drop loss rows after ``step`` (rows written after the last checkpoint of a killed run)."""
    if not path.exists():
        return
    if step == 0:
        path.unlink()
        return
    lines = path.read_text().splitlines()
    kept = [lines[0]] + [ln for ln in lines[1:] if int(float(ln.split("\t")[0])) <= step]
    path.write_text("\n".join(kept) + "\n")


def plot_losses(tsv: Path, png: Path) -> None:
    """Plot the loss curves of a losses.tsv (log scale, 25-step running mean)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = tsv.read_text().splitlines()
    header = lines[0].split("\t")
    data = np.array([[float(v) for v in ln.split("\t")] for ln in lines[1:]])
    if data.size == 0:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    window = min(25, len(data))
    kernel = np.ones(window) / window
    for col in ("total", *TSV_LOSS_NAMES):
        if col not in header:
            continue
        values = data[:, header.index(col)]
        if np.isnan(values).all():
            continue
        smooth = np.convolve(values, kernel, mode="valid")
        ax.plot(data[window - 1 :, 0], smooth, label=col)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def load_model(path: str | Path, expected_sha256: str | None = None) -> nn.Module:
    """Load a model.pt; with ``expected_sha256`` the file must match it (ValueError otherwise)."""
    path = Path(path)
    if expected_sha256 is not None:
        actual = sha256(path)
        if actual != expected_sha256:
            raise ValueError(
                f"{path}: sha256 {actual} does not match the model card ({expected_sha256})"
            )
    payload = torch.load(path, map_location="cpu", weights_only=True)
    model = build_network(NetConfig(**payload["net"]))
    model.load_state_dict(payload["state_dict"])
    return model.eval()
