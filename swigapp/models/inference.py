"""Inference on whole volumes (slice chunks, bounded memory) and per-subject adaptation."""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from swigapp.models.data import collate, random_crop
from swigapp.models.features import SubjectTensors
from swigapp.models.losses import LossWeights, total_loss

LOG = logging.getLogger("swigapp.models")

#: Per-subject adaptation uses only the unsupervised terms.
ADAPT_WEIGHTS = LossWeights(guide=1.0, lr=5.0, supervised=0.0, edge=0.0)


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without a GPU raises a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(device)


def default_slice_axis(subject: SubjectTensors) -> int:
    """Slice along the least-downsampled axis (in-plane then holds the blurred axes); ties: last."""
    factors = np.asarray(subject.factors)
    candidates = np.flatnonzero(np.isclose(factors, factors.min()))
    return int(candidates[-1])


@torch.inference_mode()
def predict_volume(
    model: nn.Module,
    subject: SubjectTensors,
    slice_axis: int | None = None,
    chunk: int = 16,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """HR maps (3, X, Y, Z) float32 (PD a.u., T1 and T2 in s).

    Inside the brain mask the network's prediction; outside it the LR input (zero-filled
    upsampling), so that a mask slightly too small never blanks brain voxels.

    Runs ``chunk`` slices at a time (plus context) along ``slice_axis``; slices without
    brain are skipped.
    """
    model = model.to(device).eval()
    axis = default_slice_axis(subject) if slice_axis is None else slice_axis
    order = [a for a in range(3) if a != axis] + [axis]
    perm = (0, *(a + 1 for a in order))
    vols = {
        k: getattr(subject, k).permute(perm) for k in ("lr_up", "guides", "synth")
    }  # (C, H, W, S)
    mask = subject.mask.permute(order)
    present = subject.present[None].to(device)
    n_slices = mask.shape[-1]
    ctx = model.config.context
    out = vols["lr_up"].clone()
    has_brain = mask.flatten(0, 1).any(0)
    starts = range(0, n_slices, chunk)
    for s0 in tqdm(starts, desc="inference", disable=not progress, unit="chunk"):
        s1 = min(n_slices, s0 + chunk)
        if not bool(has_brain[s0:s1].any()):
            continue
        a0, a1 = max(0, s0 - ctx), min(n_slices, s1 + ctx)
        args = [vols[k][..., a0:a1][None].to(device) for k in ("lr_up", "guides", "synth")]
        pred = model(*args, present)[0].float().cpu()
        out[..., s0:s1] = pred[..., s0 - a0 : s0 - a0 + (s1 - s0)]
    out = torch.where(mask[None], out, vols["lr_up"])
    inverse = np.argsort(perm)
    return out.permute(*inverse.tolist()).numpy()


def adapt(
    model: nn.Module,
    subject: SubjectTensors,
    steps: int,
    learning_rate: float = 1e-4,
    batch_size: int = 2,
    crop: tuple[int, int, int] = (64, 64, 16),
    seed: int = 0,
    weights: LossWeights = ADAPT_WEIGHTS,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> tuple[nn.Module, list[float]]:
    """Fine-tune a copy of ``model`` on one subject with the unsupervised loss.

    Returns the adapted copy and the loss per step. The input model is not changed.
    """
    tuned = copy.deepcopy(model).to(device).train()
    optimiser = torch.optim.Adam(
        [p for p in tuned.parameters() if p.requires_grad], lr=learning_rate
    )
    losses = []
    for step in tqdm(range(steps), desc="adapting", disable=not progress):
        rng = np.random.default_rng([seed, step])
        perm = tuple(int(p) for p in rng.permutation(3))
        crops = [
            random_crop(subject, rng, crop, perm=perm, guide_keep=1.0) for _ in range(batch_size)
        ]
        batch = collate(crops, device)
        batch["truth"] = None
        maps = tuned(batch["lr_up"], batch["guides"], batch["synth"], batch["present"])
        loss, _ = total_loss(weights, maps, batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    return tuned.eval(), losses
