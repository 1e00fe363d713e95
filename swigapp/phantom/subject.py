"""One phantom subject: HR truth, LR acquired maps and HR weighted guides, from one seed."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from swigapp.operators import grid
from swigapp.operators.acquisition import Acquisition, KSpace3D, SliceStack2D
from swigapp.phantom import shift as shifts
from swigapp.phantom.acquire import LR_NOISE, RigidMotion, simulate_guide, simulate_lr_maps
from swigapp.phantom.anatomy import SIZES, Size, deform, load_anatomy
from swigapp.phantom.head import HEAD_MARGIN_MM, background_noise
from swigapp.phantom.tissue import TruthMaps, make_truth
from swigapp.physics.protocol import DEFAULT_PROTOCOLS, Protocol

GUIDES = ("T1w", "T2w", "FLAIR")
LOG = logging.getLogger("swigapp.phantom")
#: PhantomConfig fields of the 2D multi-slice acquisition (recorded only for 2D phantoms).
SLICE_FIELDS = ("acquisition", "slice_thickness_mm", "slice_gap_mm", "slice_profile")
#: Fields recorded only when they differ from the default (phantoms made before they
#: existed keep their records).
OPTIONAL_FIELDS = {
    "head": False, "tilt_deg": 0.0, "shift": None, "anatomy": None, "raw_qmri": (),
    "maps": ("PD", "T1", "T2"), "guide_margin_mm": 0.0,
}  # fmt: skip


@dataclass(frozen=True)
class PhantomConfig:
    """Knobs of a phantom subject (defaults: realistic 3T brain, 2x isotropic LR).

    ``lr_factors``: per-axis k-space truncation factor; ``protocol_jitter``: relative
    uniform jitter of TR/TE/TI/flip around the 3T defaults; motion limits in deg and mm.
    ``acquisition`` "2d": a 2D multi-slice stack of axial slices (last axis) instead,
    :class:`swigapp.operators.acquisition.SliceStack2D`: in-plane factors from ``lr_factors``, slice
    thickness ``slice_thickness_mm`` (default: the third factor x the HR voxel size), gap
    ``slice_gap_mm``, profile ``slice_profile`` (gaussian or rect). The spacing (thickness +
    gap) is rounded so that a whole number of slices tiles the field of view.
    ``head``: skull, scalp and extra-cerebral CSF around the brain
    (:mod:`swigapp.phantom.head`) and a noisy LR map background (negative values, as fitted
    maps have). ``tilt_deg``: the LR maps' axes are rotated by this angle about the
    left-right axis (an AC-PC-like angulation) relative to the guides' axes; the truth is
    written on the maps' grid. ``anatomy``: a real individual
    (:func:`swigapp.phantom.individuals.load_individual`: a subject name such as
    ``synthseg-01``, or a path to a converted ``.npz`` or a label map) instead of the ICBM
    template, or several taken in turn by subject index (:meth:`anatomy_of`); it is
    deformed by ``deformation_mm`` like the template. ``guide_margin_mm``: the guides'
    field of view reaches this far below and above the maps' (a slab of the template:
    the neighbouring slices), as a whole-head T1w does beside a slab of maps; with motion
    up to the limits above (3 mm, 3 degrees about the centre), 10 mm keeps the whole slab
    of a tiny or slab phantom in every guide's view. The same room is left in-plane around
    the brain, on the maps' grid and the guides'.
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
    acquisition: str = "3d"
    slice_thickness_mm: float | None = None
    slice_gap_mm: float = 0.0
    slice_profile: str = "gaussian"
    head: bool = False
    tilt_deg: float = 0.0
    shift: shifts.Shift | None = None
    anatomy: str | tuple[str, ...] | None = None
    raw_qmri: tuple[str, ...] = ()
    maps: tuple[str, ...] = ("PD", "T1", "T2")
    guide_margin_mm: float = 0.0

    def anatomy_of(self, index: int) -> str | None:
        """The anatomy of subject ``index`` (None: the template)."""
        if self.anatomy is None or isinstance(self.anatomy, str):
            return self.anatomy
        return self.anatomy[index % len(self.anatomy)]

    def record(self) -> dict[str, Any]:
        """The configuration as a JSON-ready dict; the 2D fields only for 2D phantoms (3D
        records are those of phantoms made before the 2D option existed)."""
        out = dataclasses.asdict(self)
        if self.acquisition == "3d":
            for name in SLICE_FIELDS:
                out.pop(name)
        for name, default in OPTIONAL_FIELDS.items():
            if out[name] == default:
                out.pop(name)
        if self.shift is not None:
            out["shift"] = self.shift.describe()
        return out


@dataclass
class PhantomSubject:
    """A generated subject; maps in PD a.u. and T1/T2 in s, guides in arbitrary units.

    ``affine``: the guides' grid; ``map_affine``: the truth's grid, the HR grid of the LR
    maps' axes (``affine`` unless the phantom is tilted, or its guides see more slices than
    the maps: ``PhantomConfig.guide_margin_mm``).
    """

    label: str
    seed: tuple[int, int]
    affine: np.ndarray
    truth: TruthMaps
    lr_maps: dict[str, np.ndarray]
    lr_affine: np.ndarray
    guides: dict[str, np.ndarray]
    protocols: dict[str, Protocol]
    #: The LR acquisition from the truth grid (3D k-space truncation, or the 2D stack).
    acquisition: Acquisition
    motion: dict[str, RigidMotion] = field(default_factory=dict)
    config: PhantomConfig = field(default_factory=PhantomConfig)
    map_affine: np.ndarray | None = None

    @property
    def truth_affine(self) -> np.ndarray:
        """Affine (mm) of the truth and of the HR grid on the LR maps' axes."""
        return self.affine if self.map_affine is None else self.map_affine


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
    shift, srng = config.shift or shifts.Shift(), shifts.shift_rng(seed, index)
    anatomy, extra = _anatomy(config, index, rng, shift, srng)
    lesion = None
    if shift.lesion_volume_ml is not None:
        volume = shifts.draw(shift.lesion_volume_ml, srng)
        lesion = shifts.lesion_load(anatomy, srng, volume, shift.lesion_sites)
    seen = make_truth(
        anatomy, rng, n_lesions=config.n_lesions, heterogeneity=config.heterogeneity,
        head=config.head, lesion=lesion,
        adjust_values=lambda values: shifts.tissue_values(values, shift, srng),
    )  # fmt: skip
    # the maps' grid: the guides' slab less its extra slices; the truth lies on the maps'
    # axes, and the guides see it turned by the tilt (about the centre)
    truth, map_affine = _slab(seen, extra), anatomy.affine @ _z_shift(extra)
    tilt = RigidMotion((float(config.tilt_deg), 0.0, 0.0), (0.0, 0.0, 0.0))
    if config.tilt_deg:
        map_affine = anatomy.affine @ tilt.voxel_matrix(anatomy.shape, anatomy.voxel_size)
    lr_snr = shifts.draw(shift.lr_snr, srng)
    noise = LR_NOISE if lr_snr is None else dict.fromkeys(LR_NOISE, 1.0 / lr_snr)
    acquisition = _acquisition(truth.pd.shape, map_affine, config)
    small = acquisition.lr_shape
    lr_maps = simulate_lr_maps(truth.as_dict(), small, rng, noise, forward=acquisition.forward)
    guides, protocols, motion = {}, {}, {}
    b1 = shifts.b1_field(anatomy.shape, shift, srng)
    snr = shifts.draw(shift.guide_snr, srng) or config.guide_snr
    bias = config.bias_strength if shift.bias_strength is None else shift.bias_strength
    for name in config.guides:
        protocol = jitter_protocol(DEFAULT_PROTOCOLS[name], rng, config.protocol_jitter)
        protocol, real = shifts.guide_protocols(protocol, name, shift, srng)
        move = RigidMotion.random(rng, config.max_rotation_deg, config.max_translation_mm)
        content = move if not config.tilt_deg else RigidMotion.from_matrix(
            move.matrix() @ tilt.matrix()
        )  # fmt: skip
        guide = simulate_guide(
            seen.as_dict(),
            real,
            rng,
            anatomy.voxel_size,
            motion=content,
            bias_strength=bias,
            snr=snr,
            scale=float(1000.0 * rng.uniform(0.5, 2.0)),
            b1=b1,
            inversion_efficiency=shift.inversion_efficiency,
        )
        resolution = shifts.draw(shift.guide_resolution_mm, srng)
        guides[name] = shifts.coarser_guide(guide, anatomy.voxel_size, resolution)
        protocols[name], motion[name] = protocol, move
    if config.head:  # after every other draw: phantoms without a head are unchanged
        lr_maps = background_noise(lr_maps, rng)
    return PhantomSubject(
        label=label or f"{index + 1:02d}",
        seed=(seed, index),
        affine=anatomy.affine,
        truth=truth,
        lr_maps=lr_maps,
        lr_affine=grid.lr_affine(map_affine, truth.pd.shape, small),
        guides=guides,
        protocols=protocols,
        motion=motion,
        config=config,
        acquisition=acquisition,
        map_affine=map_affine if (config.tilt_deg or extra) else None,
    )


def _anatomy(
    config: PhantomConfig,
    index: int,
    rng: np.random.Generator,
    shift: shifts.Shift,
    srng: np.random.Generator,
) -> tuple[Any, int]:
    """The subject's deformed (and atrophied) anatomy on the guides' grid, and the slices
    it has below and above the maps' (``config.guide_margin_mm``)."""
    margin = HEAD_MARGIN_MM if config.head else config.guide_margin_mm  # in-plane room
    name = config.anatomy_of(index)
    extra = 0
    if config.guide_margin_mm > 0:
        if config.tilt_deg or name is not None or config.size == "full":
            raise ValueError("guide_margin_mm extends a template slab (tiny or slab size, no tilt)")
        extra = math.ceil(config.guide_margin_mm / SIZES[config.size]["resolution"])
    if name is None:
        base = load_anatomy(config.size, margin, z_extra=extra)
    else:
        from swigapp.phantom.individuals import load_individual

        base = load_individual(name, config.size, margin)
    anatomy = deform(base, rng, config.deformation_mm)
    return shifts.atrophy(anatomy, shift.atrophy_mm), extra


def _slab(truth: TruthMaps, extra: int) -> TruthMaps:
    """The truth without its ``extra`` slices below and above (the maps' slab)."""
    if not extra:
        return truth
    cut = (Ellipsis, slice(extra, -extra))
    return replace(
        truth,
        pd=truth.pd[cut],
        t1=truth.t1[cut],
        t2=truth.t2[cut],
        fractions={k: v[cut] for k, v in truth.fractions.items()},
        brain_mask=truth.brain_mask[cut],
        lesion_mask=truth.lesion_mask[cut],
    )


def _z_shift(slices: int) -> np.ndarray:
    """Voxel matrix moving a grid ``slices`` along its third axis."""
    out = np.eye(4)
    out[2, 3] = slices
    return out


def _acquisition(shape: tuple[int, ...], affine: np.ndarray, config: PhantomConfig) -> Acquisition:
    """The LR acquisition of the maps' grid: 3D k-space truncation or a 2D stack."""
    if config.acquisition == "3d":
        return KSpace3D(shape, grid.lr_shape(shape, _factors(config.lr_factors)))
    if config.acquisition == "2d":
        return slice_stack(shape, affine, config)
    raise ValueError(f"unknown acquisition {config.acquisition!r} (3d or 2d)")


def slice_stack(
    hr_shape: Sequence[int], hr_affine: np.ndarray, config: PhantomConfig
) -> SliceStack2D:
    """The 2D multi-slice acquisition of a phantom: axial slices (last axis) of the HR grid.

    Slice k sits at LR voxel k of :func:`swigapp.operators.grid.lr_affine`; the spacing is the
    requested thickness + gap (mm), rounded so that a whole number of slices spans the grid.
    """
    factors = _factors(config.lr_factors)
    voxel = grid.voxel_sizes(hr_affine)
    thickness = config.slice_thickness_mm or factors[2] * voxel[2]
    if thickness <= 0 or config.slice_gap_mm < 0:
        raise ValueError("slice thickness must be positive and the gap not negative (mm)")
    wanted = thickness + config.slice_gap_mm
    fov = hr_shape[2] * voxel[2]
    n_slices = min(hr_shape[2], max(1, round(fov / wanted)))
    spacing = fov / n_slices
    if abs(spacing - wanted) > 1e-6 * wanted:
        LOG.info("slice spacing %.4g mm (asked %.4g) to tile %.4g mm", spacing, wanted, fov)
    in_plane = grid.lr_shape(hr_shape[:2], factors[:2])
    small = (*in_plane, n_slices)
    return SliceStack2D(
        hr_shape,
        small,
        slice_spacing=spacing,
        slice_thickness=thickness,
        slice_axis=2,
        profile=config.slice_profile,
        hr_affine=np.asarray(hr_affine, dtype=float),
        lr_affine=grid.lr_affine(hr_affine, hr_shape, small),
    )


def _factors(factors: Sequence[float]) -> tuple[float, ...]:
    factors = tuple(float(f) for f in factors)
    return factors * 3 if len(factors) == 1 else factors
