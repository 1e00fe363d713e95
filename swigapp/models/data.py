"""Training data: phantom subject pools, random crops and batches.

A crop is a box of the HR grid aligned to the LR grid (its start and size are multiples
of the per-axis factor), so the k-space truncation of the crop lines up with the matching
box of the acquired LR maps. Axes are randomly permuted so the network sees slices of
every orientation; the slice axis is always the last one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from tqdm import tqdm

from swigapp.models.features import GUIDE_ORDER, SubjectTensors, prepare_subject
from swigapp.phantom.subject import PhantomConfig, make_subject
from swigapp.physics.protocol import Protocol

#: Phantom defaults for training: small residual misregistration (as left after
#: registration), jittered protocols, all four guide contrasts.
TRAIN_PHANTOM = PhantomConfig(
    size="slab",
    guides=GUIDE_ORDER,
    max_rotation_deg=1.0,
    max_translation_mm=1.0,
    protocol_jitter=0.1,
)


def phantom_pool(
    n_subjects: int,
    seed: int,
    settings: Sequence[Sequence[float]] = ((2, 2, 2), (1, 1, 4)),
    config: PhantomConfig = TRAIN_PHANTOM,
    progress: bool = True,
) -> list[SubjectTensors]:
    """Generate phantom subjects, one SubjectTensors per (subject, LR setting)."""
    pool = []
    bar = tqdm(total=n_subjects * len(settings), desc="phantom pool", disable=not progress)
    for index in range(n_subjects):
        base = None
        for factors in settings:
            cfg = replace(config, lr_factors=tuple(float(f) for f in factors))
            subject = make_subject(index, seed=seed, config=cfg)
            if base is not None:  # same anatomy and guides: only the LR maps differ
                subject.guides = base.guides
            base = base or subject
            pool.append(
                prepare_subject(
                    subject.lr_maps,
                    subject.guides,
                    subject.protocols,
                    subject.truth.brain_mask,
                    truth=subject.truth.as_dict(),
                )
            )
            bar.update()
    bar.close()
    return pool


def _integer_factors(subject: SubjectTensors) -> tuple[int, ...]:
    factors = []
    for f in subject.factors:
        if abs(f - round(f)) > 1e-6:
            raise ValueError(f"crops need integer downsampling factors, got {subject.factors}")
        factors.append(round(f))
    return tuple(factors)


def random_crop(
    subject: SubjectTensors,
    rng: np.random.Generator,
    size: tuple[int, int, int] = (64, 64, 16),
    perm: Sequence[int] | None = None,
    guide_keep: float = 0.75,
) -> dict:
    """One random crop as a dict of channels-first tensors (slice axis last).

    ``size`` is (in-plane, in-plane, slices) in the orientation given by the axis
    permutation ``perm`` (random when None); each axis is cut to a multiple of its
    factor. Guides are kept with probability ``guide_keep`` each (1.0 keeps all).
    """
    factors = _integer_factors(subject)
    perm = tuple(int(p) for p in (rng.permutation(3) if perm is None else perm))
    want = [0, 0, 0]
    for pos, axis in enumerate(perm):
        want[axis] = size[pos]
    shape = subject.hr_shape
    starts, lr_starts, lens = [], [], []
    brain = torch.nonzero(subject.mask)
    centre = brain[rng.integers(len(brain))].tolist() if len(brain) else [n // 2 for n in shape]
    for axis in range(3):
        f = factors[axis]
        length = min(max(f, want[axis] // f * f), shape[axis] // f * f)
        start = int(np.clip(centre[axis] - length // 2, 0, shape[axis] - length)) // f * f
        starts.append(start)
        lens.append(length)
        lr_starts.append(start // f)
    hr = tuple(slice(s, s + n) for s, n in zip(starts, lens, strict=True))
    lr = tuple(slice(s, s + n // f) for s, n, f in zip(lr_starts, lens, factors, strict=True))
    present = subject.present.clone()
    if guide_keep < 1.0:
        keep = torch.from_numpy((rng.random(len(present)) < guide_keep).astype(np.float32))
        present = present * keep
    order = (0, *(p + 1 for p in perm))

    def cut(t: torch.Tensor, box: tuple) -> torch.Tensor:
        return t[(slice(None), *box)].permute(order).contiguous()

    gate = present[:, None, None, None]
    protocols: list[Protocol | None] = [
        p if flag else None for p, flag in zip(subject.protocols, present.tolist(), strict=True)
    ]
    return {
        "lr_up": cut(subject.lr_up, hr),
        "lr": cut(subject.lr, lr),
        "guides": cut(subject.guides, hr) * gate,
        "synth": cut(subject.synth, hr) * gate,
        "raw_guides": cut(subject.raw_guides, hr) * gate,
        "present": present,
        "protocols": protocols,
        "mask": subject.mask[hr].permute(perm).contiguous(),
        "truth": None if subject.truth is None else cut(subject.truth, hr),
    }


def collate(crops: Sequence[dict], device: torch.device | str = "cpu") -> dict:
    """Stack crops of equal size into a batch on ``device``."""
    out: dict = {"protocols": [c["protocols"] for c in crops]}
    for key in ("lr_up", "lr", "guides", "synth", "raw_guides", "present", "mask", "truth"):
        if crops[0][key] is None:
            out[key] = None
            continue
        out[key] = torch.stack([c[key] for c in crops]).to(device)
    return out


def sample_batch(
    pool: Sequence[SubjectTensors],
    rng: np.random.Generator,
    batch_size: int,
    size: tuple[int, int, int],
    guide_keep: float = 0.75,
    device: torch.device | str = "cpu",
) -> dict:
    """A batch of random crops from random subjects of ``pool``.

    One orientation and one LR setting per batch, so that all crops have equal shapes.
    """
    first = pool[int(rng.integers(len(pool)))]
    same = [s for s in pool if s.factors == first.factors and s.hr_shape == first.hr_shape]
    perm = tuple(int(p) for p in rng.permutation(3))
    crops = []
    for _ in range(batch_size):
        subject = same[int(rng.integers(len(same)))]
        crops.append(random_crop(subject, rng, size=size, perm=perm, guide_keep=guide_keep))
    # all crops of a batch must agree in size: cut to the smallest along each axis
    shapes = np.array([c["lr_up"].shape[1:] for c in crops])
    if (shapes != shapes[0]).any():
        crops = [_trim(c, shapes.min(axis=0)) for c in crops]
    return collate(crops, device)


def _trim(crop: dict, target: Sequence[int]) -> dict:
    ratio = [n // m for n, m in zip(crop["lr_up"].shape[1:], crop["lr"].shape[1:], strict=True)]
    box = tuple(slice(0, t - t % r) for t, r in zip(target, ratio, strict=True))
    lr_box = tuple(slice(0, s.stop // r) for s, r in zip(box, ratio, strict=True))
    out = dict(crop)
    for key in ("lr_up", "guides", "synth", "raw_guides", "truth"):
        if crop[key] is not None:
            out[key] = crop[key][(slice(None), *box)]
    out["lr"] = crop["lr"][(slice(None), *lr_box)]
    out["mask"] = crop["mask"][box]
    return out
