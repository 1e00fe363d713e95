"""Inference on whole volumes (slice chunks, bounded memory) and per-subject adaptation."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from swigapp.models.crops import collate, random_crop
from swigapp.models.features import SubjectTensors, decode, encode
from swigapp.models.losses import LossWeights, supervised_loss, total_loss

LOG = logging.getLogger("swigapp.models")

#: Per-subject adaptation uses only the unsupervised terms.
ADAPT_WEIGHTS = LossWeights(guide=1.0, lr=5.0, supervised=0.0, edge=0.0)
#: Weight of adaptation's proximal term (L1 to the pre-trained prediction, network domain).
#: Chosen on validation phantoms (seed 3000, benchmarks.adaptation): without it 30 steps
#: doubled GM T1 MAE in distribution (27 -> 54 ms); with it they stayed within 2 %.
ADAPT_ANCHOR = 5.0
#: Steps of linear learning-rate warm-up in adaptation: Adam's first steps move every
#: weight by about the learning rate whatever the gradient, a jolt the anchor then has to
#: undo (tiny validation phantom, 10 steps: GM T1 MAE +4.7 % without warm-up, -0.8 % with).
ADAPT_WARMUP = 10

#: 2D slices per convolution call on CPU: the activations of two 1 mm slices stay in cache
#: (2 threads, 160 x 130 slices: 27 ms per slice at 2, 40 ms at 16; benchmarks.speed).
CPU_SLICE_BATCH = 2


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without a GPU raises a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(device)


def slice_axes(subject: SubjectTensors) -> tuple[int, ...]:
    """The least-downsampled axes: slicing along any of them keeps the blurred axes in-plane
    (2 mm iso: all three; 1x1x4 mm: the two 1 mm axes). Factors within 10 % of the smallest
    count as equal: grid rounding makes 2 mm iso data 197/98, 233/116, 189/94."""
    factors = np.asarray(subject.factors)
    return tuple(int(a) for a in np.flatnonzero(factors <= 1.1 * factors.min()))


@torch.inference_mode()
def predict_volume(
    model: nn.Module,
    subject: SubjectTensors,
    slice_axis: int | Sequence[int] | None = None,
    chunk: int = 16,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """HR maps (3, X, Y, Z) float32 (PD a.u., T1 and T2 in s).

    Inside the brain mask the network's prediction; outside it the LR input (zero-filled
    upsampling), so that a mask slightly too small never blanks brain voxels.

    ``slice_axis``: one axis, or several whose predictions are averaged in the network
    domain (PD, ln T1, ln T2); by default every axis of :func:`slice_axes` (an orientation
    ensemble: each 2.5D pass sees a different through-plane context). Runs ``chunk`` slices
    at a time (plus context), each chunk cropped in-plane to its brain plus the network's
    receptive radius (``model.halo``; the same outputs inside the brain as whole slices);
    slices without brain are skipped.
    """
    maps, _ = predict_ensemble(model, subject, slice_axis, chunk, device, progress)
    return maps


@torch.inference_mode()
def predict_ensemble(
    model: nn.Module,
    subject: SubjectTensors,
    slice_axis: int | Sequence[int] | None = None,
    chunk: int = 16,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`predict_volume`'s maps and the orientation ensemble's spread (3, X, Y, Z):
    the SD over the slice axes' predictions, in map units (PD a.u., T1 and T2 in s: the
    SD of ln T times T). None with a single axis; 0 outside the brain mask."""
    if slice_axis is None:
        axes = slice_axes(subject)
    elif isinstance(slice_axis, int):
        axes = (slice_axis,)
    else:
        axes = tuple(int(a) for a in slice_axis)
    model = model.to(device).eval()
    total = sums = squares = None  # float32 sum (the maps, as before), float64 moments
    for axis in axes:
        pred = _predict_along(model, subject, axis, chunk, device, progress)
        if len(axes) == 1:
            return pred.numpy(), None
        z = encode(pred[None])[0]
        total = z if total is None else total.add_(z)
        zd = z.double()
        sums = zd.clone() if sums is None else sums.add_(zd)
        squares = zd.square() if squares is None else squares.add_(zd.square())
    mean = decode((total / len(axes))[None])[0]
    mean_z = sums / len(axes)
    spread_z = (squares / len(axes) - mean_z.square()).clamp_min(0.0).sqrt()
    # ln T -> T: d T = T d ln T; PD is predicted as is
    spread = spread_z.float() * torch.cat([torch.ones_like(mean[:1]), mean[1:]])
    inside = subject.mask[None]
    maps = torch.where(inside, mean, subject.lr_up).numpy()
    return maps, torch.where(inside, spread, torch.zeros_like(spread)).numpy()


def oriented(
    subject: SubjectTensors, axis: int
) -> tuple[dict[str, torch.Tensor], torch.Tensor, tuple[int, ...]]:
    """Views of lr_up, guides, synth (C, H, W, S) and the mask (H, W, S) with ``axis`` last,
    and the channel-first permutation that made them."""
    order = [a for a in range(3) if a != axis] + [axis]
    perm = (0, *(a + 1 for a in order))
    vols = {k: getattr(subject, k).permute(perm) for k in ("lr_up", "guides", "synth")}
    return vols, subject.mask.permute(order), perm


def brain_chunks(
    vols: dict[str, torch.Tensor],
    mask: torch.Tensor,
    chunk: int,
    context: int,
    halo: int | None = None,
) -> list[tuple[int, int, slice, tuple[slice, slice], list[torch.Tensor]]]:
    """(s0, s1, keep, box, inputs) for each run of ``chunk`` slices (along the last axis)
    holding brain. ``keep``: the chunk's slices s0:s1 within the inputs' slices; ``box``:
    the in-plane (rows, columns) the chunk's brain spans plus ``halo`` pixels each side (the
    network's receptive radius, so that its outputs inside the brain are those of the whole
    slice), the whole slice when ``halo`` is None; inputs: lr_up, guides, synth inside the
    box for slices a0:a1 (the chunk plus ``context`` slices each side), shaped
    (1, C, h, w, S)."""
    n_slices = mask.shape[-1]
    has_brain = mask.flatten(0, 1).any(0)
    out = []
    for s0 in range(0, n_slices, chunk):
        s1 = min(n_slices, s0 + chunk)
        if not bool(has_brain[s0:s1].any()):
            continue
        a0, a1 = max(0, s0 - context), min(n_slices, s1 + context)
        box = (slice(None), slice(None))
        if halo is not None:
            brain = mask[..., s0:s1].any(-1)
            box = tuple(_span(brain.any(1 - axis), halo) for axis in (0, 1))
        crop = (slice(None), *box, slice(a0, a1))
        inputs = [vols[k][crop][None] for k in ("lr_up", "guides", "synth")]
        out.append((s0, s1, slice(s0 - a0, s1 - a0), box, inputs))
    return out


def _span(present: torch.Tensor, halo: int) -> slice:
    """The indices from the first to the last True of ``present``, grown by ``halo``."""
    idx = torch.nonzero(present).flatten()
    return slice(max(0, int(idx[0]) - halo), min(len(present), int(idx[-1]) + 1 + halo))


def _predict_along(
    model: nn.Module,
    subject: SubjectTensors,
    axis: int,
    chunk: int,
    device: torch.device | str,
    progress: bool,
) -> torch.Tensor:
    """Prediction (3, X, Y, Z) with slices along ``axis`` (the LR input outside the mask)."""
    vols, mask, perm = oriented(subject, axis)
    present = subject.present[None].to(device)
    batch = None if torch.device(device).type == "cuda" else CPU_SLICE_BATCH
    out = vols["lr_up"].clone()
    chunks = brain_chunks(vols, mask, chunk, model.config.context, model.halo)
    desc = f"inference (slices along axis {axis})"
    for s0, s1, keep, box, inputs in tqdm(chunks, desc=desc, disable=not progress, unit="chunk"):
        pred = model(*(x.to(device) for x in inputs), present, keep, batch)[0].float().cpu()
        out[(slice(None), *box, slice(s0, s1))] = pred
    out = torch.where(mask[None], out, vols["lr_up"])
    inverse = np.argsort(perm)
    return out.permute(*inverse.tolist())


@dataclass(frozen=True)
class AdaptConfig:
    """How per-subject adaptation fine-tunes: Adam's ``learning_rate``, ``batch_size``
    crops of ``crop`` HR voxels per step, the loss ``weights`` (unsupervised terms only),
    ``anchor``: weight of a proximal term, the L1 distance in the network domain (PD,
    ln T1, ln T2) between the adapted and the pre-trained predictions on the same crops,
    which keeps the adapted model near the one it started from; ``warmup``: steps over
    which the learning rate ramps up linearly."""

    learning_rate: float = 1e-4
    batch_size: int = 2
    crop: tuple[int, int, int] = (64, 64, 16)
    weights: LossWeights = ADAPT_WEIGHTS
    anchor: float = ADAPT_ANCHOR
    warmup: int = ADAPT_WARMUP


def adapt(
    model: nn.Module,
    subject: SubjectTensors,
    steps: int,
    config: AdaptConfig = AdaptConfig(),
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> tuple[nn.Module, list[float]]:
    """Fine-tune a copy of ``model`` on one subject with the unsupervised loss for
    ``steps`` steps (:class:`AdaptConfig`). Returns the adapted copy and the loss per step.
    The input model is not changed.
    """
    learning_rate, anchor, weights = config.learning_rate, config.anchor, config.weights
    crop, batch_size, warmup = config.crop, config.batch_size, config.warmup
    tuned = copy.deepcopy(model).to(device).train()
    reference = copy.deepcopy(tuned).eval() if anchor else None
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
        inputs = (batch["lr_up"], batch["guides"], batch["synth"], batch["present"])
        maps = tuned(*inputs)
        loss, _ = total_loss(weights, maps, batch)
        if reference is not None:
            with torch.no_grad():
                start = reference(*inputs)
            loss = loss + anchor * supervised_loss(maps, start, batch["mask"])
        for group in optimiser.param_groups:  # linear warm-up over the first steps
            group["lr"] = learning_rate * min(1.0, (step + 1) / (warmup + 1))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    return tuned.eval(), losses
