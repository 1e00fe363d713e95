"""One phantom subject: HR truth, LR acquired maps and HR weighted guides, from one seed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from swigapp import kspace
from swigapp.phantom.acquire import RigidMotion, simulate_guide, simulate_lr_maps
from swigapp.phantom.anatomy import Size, deform, load_anatomy
from swigapp.phantom.tissue import TruthMaps, make_truth
from swigapp.physics.protocol import DEFAULT_PROTOCOLS, Protocol

GUIDES = ("T1w", "T2w", "FLAIR")


@dataclass(frozen=True)
class PhantomConfig:
    """Knobs of a phantom subject (defaults: realistic 3T brain, 2x isotropic LR).

    ``lr_factors``: per-axis k-space truncation factor; ``protocol_jitter``: relative
    uniform jitter of TR/TE/TI/flip around the 3T defaults; motion limits in deg and mm.
    """

    size: Size = "tiny"
    lr_factors: tuple[float, ...] = (2.0, 2.0, 2.0)
    guides: tuple[str, ...] = GUIDES
    n_lesions: int = 3
    deformation_mm: float = 3.0
    heterogeneity: float = 0.03
    protocol_jitter: float = 0.0
    max_rotation_deg: float = 3.0
    max_translation_mm: float = 3.0
    bias_strength: float = 0.15
    guide_snr: float = 40.0


@dataclass
class PhantomSubject:
    """A generated subject; maps in PD a.u. and T1/T2 in s, guides in arbitrary units."""

    label: str
    seed: tuple[int, int]
    affine: np.ndarray
    truth: TruthMaps
    lr_maps: dict[str, np.ndarray]
    lr_affine: np.ndarray
    guides: dict[str, np.ndarray]
    protocols: dict[str, Protocol]
    motion: dict[str, RigidMotion] = field(default_factory=dict)
    config: PhantomConfig = field(default_factory=PhantomConfig)


def jitter_protocol(protocol: Protocol, rng: np.random.Generator, amount: float) -> Protocol:
    """Protocol with TR, TE, TI and flip each scaled by a factor in [1 - amount, 1 + amount]."""
    if amount <= 0:
        return protocol

    def j(value: float | None) -> float | None:
        return None if value is None else float(value * rng.uniform(1 - amount, 1 + amount))

    changes = {"tr": j(protocol.tr), "te": j(protocol.te), "ti": j(protocol.ti)}
    changes["flip_deg"] = j(protocol.flip_deg)
    if protocol.model == "MPRAGE":  # keep the readout train inside the cycle
        train = protocol.n_pulses * protocol.tau
        changes["ti"] = max(changes["ti"], protocol.n_pulses / 2 * protocol.tau + 0.01)
        changes["tr"] = max(changes["tr"], changes["ti"] + train / 2 + 0.05)
    return replace(protocol, **changes, source=f"{protocol.source}, jittered")


def make_subject(
    index: int, seed: int = 0, config: PhantomConfig | None = None, label: str | None = None
) -> PhantomSubject:
    """Generate subject number ``index`` of the dataset with base ``seed`` (deterministic)."""
    config = config or PhantomConfig()
    unknown = set(config.guides) - set(DEFAULT_PROTOCOLS)
    if unknown:
        raise ValueError(
            f"unknown guide contrast(s) {sorted(unknown)}; known: {sorted(DEFAULT_PROTOCOLS)}"
        )
    rng = np.random.default_rng([seed, index])
    anatomy = deform(load_anatomy(config.size), rng, config.deformation_mm)
    truth = make_truth(anatomy, rng, n_lesions=config.n_lesions, heterogeneity=config.heterogeneity)
    small = kspace.lr_shape(anatomy.shape, _factors(config.lr_factors))
    lr_maps = simulate_lr_maps(truth.as_dict(), small, rng)
    guides, protocols, motion = {}, {}, {}
    for name in config.guides:
        protocol = jitter_protocol(DEFAULT_PROTOCOLS[name], rng, config.protocol_jitter)
        move = RigidMotion.random(rng, config.max_rotation_deg, config.max_translation_mm)
        guides[name] = simulate_guide(
            truth.as_dict(),
            protocol,
            rng,
            anatomy.voxel_size,
            motion=move,
            bias_strength=config.bias_strength,
            snr=config.guide_snr,
            scale=float(1000.0 * rng.uniform(0.5, 2.0)),
        )
        protocols[name], motion[name] = protocol, move
    return PhantomSubject(
        label=label or f"{index + 1:02d}",
        seed=(seed, index),
        affine=anatomy.affine,
        truth=truth,
        lr_maps=lr_maps,
        lr_affine=kspace.lr_affine(anatomy.affine, anatomy.shape, small),
        guides=guides,
        protocols=protocols,
        motion=motion,
        config=config,
    )


def _factors(factors: Sequence[float]) -> tuple[float, ...]:
    factors = tuple(float(f) for f in factors)
    return factors * 3 if len(factors) == 1 else factors
