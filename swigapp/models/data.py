"""Training data: phantom subject pools and batches of random crops
(:mod:`swigapp.models.crops`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from tqdm import tqdm

from swigapp.models.crops import collate, crop_units, random_crop
from swigapp.models.features import (
    GUIDE_ORDER,
    SubjectTensors,
    prepare_subject,
    upsample_maps,
)
from swigapp.operators import grid
from swigapp.phantom.shift import random_shift
from swigapp.phantom.subject import PhantomConfig, PhantomSubject, make_subject

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
    head_motion: tuple[float, float] | None = None,
    randomise: bool = False,
    anatomies: Sequence[str | None] = (None,),
) -> list[SubjectTensors]:
    """Generate phantom subjects, one SubjectTensors per (subject, LR setting).

    By default each guide is moved by up to ``config``'s rotation (deg) and translation (mm)
    and used as is. With ``head_motion`` (deg, mm), the head moves by up to that much and
    each guide is resampled back by its motion perturbed by up to ``config``'s limits: the
    guides then go through a registration's resampling, as in the app. A 2D phantom
    (``config.acquisition``) gets its stack's upsampling and LR operator. With ``randomise``,
    each subject draws its own shift and deformation (:func:`randomised`). ``anatomies``:
    subject ``i`` is made from ``anatomies[i % len(anatomies)]`` (None: the ICBM template;
    else a real individual, :func:`swigapp.phantom.individuals.load_individual`).
    """
    if config.tilt_deg or config.guide_margin_mm:
        raise ValueError(
            "training phantoms cannot be tilted or have a guide margin: their guides lie on "
            "the truth grid"
        )
    pool = []
    bar = tqdm(total=n_subjects * len(settings), desc="phantom pool", disable=not progress)
    if head_motion is not None:
        residual = (config.max_rotation_deg, config.max_translation_mm)
        config = replace(config, max_rotation_deg=head_motion[0], max_translation_mm=head_motion[1])
    for index in range(n_subjects):
        base = None
        subject_config = randomised(config, seed, index) if randomise else config
        subject_config = replace(subject_config, anatomy=anatomies[index % len(anatomies)])
        for factors in settings:
            cfg = replace(subject_config, lr_factors=tuple(float(f) for f in factors))
            subject = make_subject(index, seed=seed, config=cfg)
            if base is not None:  # same anatomy and guides: only the LR maps differ
                subject.guides = base.guides
            elif head_motion is not None:
                subject.guides = realigned(
                    subject, np.random.default_rng([seed, index, 1]), *residual
                )
            base = base or subject
            acquisition = subject.acquisition
            pool.append(
                prepare_subject(
                    subject.lr_maps,
                    subject.guides,
                    subject.protocols,
                    subject.truth.brain_mask,
                    truth=subject.truth.as_dict(),
                    lr_up=upsample_maps(subject.lr_maps, acquisition),
                    acquisition=acquisition,
                )
            )
            bar.update()
    bar.close()
    return pool


#: Range of the deformation strength (mm) of randomised training subjects; the shift
#: benchmark's 8 mm stays beyond it.
RANDOM_DEFORMATION_MM = (2.0, 6.0)


def randomised(config: PhantomConfig, seed: int, index: int) -> PhantomConfig:
    """``config`` with subject ``index``'s domain randomisation: a random shift
    (:func:`swigapp.phantom.shift.random_shift`) and deformation strength
    (:data:`RANDOM_DEFORMATION_MM`), from a random stream of their own."""
    rng = np.random.default_rng([seed, index, 61])
    return replace(
        config,
        shift=random_shift(rng),
        deformation_mm=float(rng.uniform(*RANDOM_DEFORMATION_MM)),
    )


def realigned(
    subject: PhantomSubject, rng: np.random.Generator, max_deg: float, max_mm: float
) -> dict[str, np.ndarray]:
    """The subject's guides resampled back onto the maps' grid by their motion, estimated
    with an error of up to ``max_deg`` and ``max_mm`` per axis (clipped at 0, as after
    registration)."""
    voxel_size = grid.voxel_sizes(subject.affine)
    out = {}
    for name, image in subject.guides.items():
        estimate = subject.motion[name].perturbed(rng, max_deg, max_mm)
        out[name] = np.clip(estimate.undo(image, voxel_size), 0.0, None)
    return out


def sample_batch(
    pool: Sequence[SubjectTensors],
    rng: np.random.Generator,
    batch_size: int,
    size: tuple[int, int, int],
    guide_keep: float = 0.75,
    device: torch.device | str = "cpu",
    map_drop: float = 0.0,
) -> dict:
    """A batch of random crops from random subjects of ``pool`` (``map_drop``: see
    :func:`random_crop`).

    One orientation and one LR setting per batch, so that all crops have equal shapes.
    """
    first = pool[int(rng.integers(len(pool)))]
    same = [s for s in pool if s.factors == first.factors and s.hr_shape == first.hr_shape]
    perm = tuple(int(p) for p in rng.permutation(3))
    crops = []
    for _ in range(batch_size):
        subject = same[int(rng.integers(len(same)))]
        crops.append(
            random_crop(subject, rng, size, perm, guide_keep=guide_keep, map_drop=map_drop)
        )
    # all crops of a batch must agree in size: cut to the smallest along each axis
    shapes = np.array([c["lr_up"].shape[1:] for c in crops])
    if (shapes != shapes[0]).any():
        crops = [_trim(c, shapes.min(axis=0)) for c in crops]
    return collate(crops, device)


def _trim(crop: dict, target: Sequence[int]) -> dict:
    units = crop_units(crop["lr_up"].shape[1:], crop["lr"].shape[1:])
    box = tuple(slice(0, t - t % p) for t, (p, _) in zip(target, units, strict=True))
    lr_box = tuple(slice(0, s.stop // p * q) for s, (p, q) in zip(box, units, strict=True))
    out = dict(crop)
    for key in ("lr_up", "guides", "synth", "raw_guides", "truth"):
        if crop[key] is not None:
            out[key] = crop[key][(slice(None), *box)]
    out["lr"] = crop["lr"][(slice(None), *lr_box)]
    if crop.get("lr_valid") is not None:
        out["lr_valid"] = crop["lr_valid"][(slice(None), *lr_box)]
    out["mask"] = crop["mask"][box]
    return out
