"""Crops of a subject's tensors and their batches, for training and per-subject fits.

A crop is a box of the HR grid aligned to the LR grid (its start and size are multiples
of the per-axis factor), so the k-space truncation of the crop lines up with the matching
box of the acquired LR maps. Axes are randomly permuted so the network sees slices of
every orientation; the slice axis is always the last one. Nothing here imports the phantom
generator: inference and adaptation use these crops on a user's data.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torch

from swigapp.models.features import MAP_ORDER, SubjectTensors
from swigapp.physics.protocol import Protocol

#: Largest crop unit (HR voxels) used as is; see :func:`crop_units`.
MAX_UNIT = 16


def crop_units(hr_shape: Sequence[int], lr_shape: Sequence[int]) -> list[tuple[int, int]]:
    """Per axis, the smallest box that lines up with the LR grid: (HR voxels, LR voxels).

    The factor N/M in lowest terms p/q: a crop of k p HR voxels starting at a multiple of p
    covers exactly k q LR voxels (factor 2: (2, 1); 1.5: (3, 2)). When p would exceed
    :data:`MAX_UNIT` (N/M = 197/98, or 122/81 from rounding the HR grid), the nearest
    fraction with q <= 4 is used instead (2/1, 3/2): the crop's LR band is then off by
    well under 1 %, which the LR-consistency term tolerates (it compares the prediction and
    the upsampled LR data through the same truncation).
    """
    units = []
    for n, m in zip(hr_shape, lr_shape, strict=True):
        ratio = Fraction(int(n), int(m))
        if ratio.numerator > MAX_UNIT:
            ratio = ratio.limit_denominator(4)
        units.append((ratio.numerator, ratio.denominator))
    return units


#: The subsets of the maps a crop may be given when maps are dropped (``map_drop``): the
#: protocols sites have (MP2RAGE: T1; multi-echo spin echo: T2 and PD; IR or VFA: T1 and PD).
MAP_SUBSETS: tuple[tuple[str, ...], ...] = (("T1",), ("PD", "T2"), ("PD", "T1"))


def drop_maps(crop: dict, acquired: Sequence[str]) -> dict:
    """A crop given only the ``acquired`` maps, as the app sees such a participant: the
    others' LR and upsampled inputs replaced by their tissue-prior estimates
    (:func:`swigapp.estimate.tissue_prior`), left out of the LR term (``lr_valid`` 0), and
    each present guide's synthesised contrast rescaled voxel by voxel to those inputs (the
    subject-level normalisation kept)."""
    from swigapp.estimate import tissue_prior

    out = dict(crop)
    for key in ("lr", "lr_up"):
        maps = dict(zip(MAP_ORDER, crop[key].numpy(), strict=True))
        filled = tissue_prior(maps, acquired)
        out[key] = torch.from_numpy(np.stack([filled[m] for m in MAP_ORDER]))
    valid = torch.ones_like(crop["lr"]) if crop["lr_valid"] is None else crop["lr_valid"].clone()
    for i, name in enumerate(MAP_ORDER):
        if name not in acquired:
            valid[i] = 0.0
    out["lr_valid"] = valid
    old, new = crop["lr_up"].numpy().astype(np.float64), out["lr_up"].numpy().astype(np.float64)
    synth = crop["synth"].clone()
    for g, protocol in enumerate(crop["protocols"]):
        if protocol is None:
            continue
        before = protocol.signal_np(old[0], old[1], old[2])
        after = protocol.signal_np(new[0], new[1], new[2])
        ratio = np.where(np.abs(before) > 1e-12, after / np.where(before == 0, 1, before), 0.0)
        synth[g] = synth[g] * torch.from_numpy(ratio.astype(np.float32))
    out["synth"] = synth
    return out


def random_crop(
    subject: SubjectTensors,
    rng: np.random.Generator,
    size: tuple[int, int, int] = (64, 64, 16),
    perm: Sequence[int] | None = None,
    guide_keep: float = 0.75,
    map_drop: float = 0.0,
) -> dict:
    """One random crop as a dict of channels-first tensors (slice axis last).

    ``size`` is (in-plane, in-plane, slices) in the orientation given by the axis
    permutation ``perm`` (random when None); each axis is cut to a multiple of its crop unit
    (:func:`crop_units`). Guides are kept with probability ``guide_keep`` each (1.0 keeps
    all). With probability ``map_drop`` the crop is given one of :data:`MAP_SUBSETS` only
    (:func:`drop_maps`). ``box`` holds the crop's slices of the HR grid (before the
    permutation).
    """
    units = crop_units(subject.hr_shape, subject.lr.shape[1:])
    perm = tuple(int(p) for p in (rng.permutation(3) if perm is None else perm))
    want = [0, 0, 0]
    for pos, axis in enumerate(perm):
        want[axis] = size[pos]
    shape = subject.hr_shape
    starts, lr_starts, lens = [], [], []
    brain = subject.brain_voxels
    centre = brain[rng.integers(len(brain))].tolist() if len(brain) else [n // 2 for n in shape]
    lr_lens = []
    for axis in range(3):
        p, q = units[axis]
        lr_size = subject.lr.shape[axis + 1]
        length = min(max(p, want[axis] // p * p), shape[axis] // p * p, lr_size // q * p)
        start = int(np.clip(centre[axis] - length // 2, 0, shape[axis] - length)) // p * p
        starts.append(start)
        lens.append(length)
        lr_lens.append(length // p * q)
        lr_starts.append(min(start // p * q, lr_size - lr_lens[-1]))
    hr = tuple(slice(s, s + n) for s, n in zip(starts, lens, strict=True))
    lr = tuple(slice(s, s + n) for s, n in zip(lr_starts, lr_lens, strict=True))
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
    crop = {
        "lr_up": cut(subject.lr_up, hr),
        "lr": cut(subject.lr, lr),
        "guides": cut(subject.guides, hr) * gate,
        "synth": cut(subject.synth, hr) * gate,
        "raw_guides": cut(subject.raw_guides, hr) * gate,
        "present": present,
        "protocols": protocols,
        "mask": subject.mask[hr].permute(perm).contiguous(),
        "truth": None if subject.truth is None else cut(subject.truth, hr),
        "lr_valid": None if subject.lr_valid is None else cut(subject.lr_valid, lr),
        # the crop's own LR operator: the subject's acquisition restricted to the boxes
        "acquisition": subject.acquisition.permuted(perm).restrict(
            [lens[p] for p in perm], [lr_lens[p] for p in perm]
        ),
        "box": hr,  # the crop's HR slices in the subject's own orientation
    }
    if map_drop > 0 and rng.random() < map_drop:
        crop = drop_maps(crop, MAP_SUBSETS[int(rng.integers(len(MAP_SUBSETS)))])
    return crop


def collate(crops: Sequence[dict], device: torch.device | str = "cpu") -> dict:
    """Stack crops of equal size into a batch on ``device``."""
    out: dict = {"protocols": [c["protocols"] for c in crops]}
    models = {c["acquisition"] for c in crops}
    if len(models) > 1:
        raise ValueError("crops of one batch must share their acquisition model")
    out["acquisition"] = models.pop()
    keys = ("lr_up", "lr", "guides", "synth", "raw_guides", "present", "mask", "truth")
    for key in (*keys, "lr_valid"):
        if any(c.get(key) is None for c in crops):
            out[key] = None
            continue
        out[key] = torch.stack([c[key] for c in crops]).to(device)
    return out
