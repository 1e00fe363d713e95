"""Data-consistency checks of super-resolved maps, whole brain and by region, and the
fallback where a region fails them.

Two checks tell where the maps cannot be trusted: the LR residual (the maps taken through
the acquisition model against the acquired LR maps) and the similarity of each guide
re-synthesised from the maps to the acquired guide. Both are computed for the whole brain
and for eight regions, the octants of the brain about its centre of mass named along the
world (RAS+) axes, so a warning can say where. A region falls back to the best
interpolation of the LR maps for their acquisition (no detail drawn from the guides;
:func:`fallback_maps`) when
its maps explain the guides worse than that interpolation does (the mean re-synthesis SSIM
over the guides below the interpolation's: detail the guides do not support), or when both
fixed checks fail there: its maps contradict the acquired LR maps *and* no guide is
explained by them. One failed fixed check is warned about, naming the region, and the maps
are kept: on validation phantoms each fixed check alone also fails in regions where the
network helps (benchmarks/results/fallback). The thresholds are the whole-brain flags
(held-out phantoms: guide SSIM 0.88-0.90, LR residual 0.02-0.06), not tuned on any
benchmark. The interpolation was chosen on validation phantoms, template and validation
individuals (benchmarks.interpolation; benchmarks/results/interpolation_*.md) by SSIM,
HFEN and ringing: for 3D k-space, cubic spline (best T1, T2 and PD SSIM in every setting,
ringing 4-10x below zero-filled k-space, whose HFEN is lower); for a 2D stack, its
least-squares upsampling (best T1, T2 and PD SSIM and HFEN on the individuals, best T1
SSIM and HFEN on the template; it rings 2-4x more than cubic spline, which had the better
T2 and PD SSIM on the template only), with cubic spline in the plane where the stack is
also thinned there (as for 3D k-space).

Then, finer than an octant, each map falls back wherever it departs locally from its
acquired LR map (:func:`local_fallback`): values the acquisition does not support, such as
tissue unlike any the network was trained on (the NIST phantom's short-T1 spheres).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from swigapp.maps import MAP_ORDER
from swigapp.metrics import guide_ssim_map
from swigapp.operators import grid

if TYPE_CHECKING:
    from swigapp.operators.acquisition import Acquisition
    from swigapp.physics.protocol import Protocol

#: Guide SSIM (re-synthesised vs acquired) below this is flagged.
GUIDE_SSIM_FLAG = 0.8
#: An LR residual above this and above twice the zero-filled input's is flagged.
LR_RESIDUAL_FLAG = 0.1
#: Smallest share of the brain mask a region must hold to be checked on its own.
MIN_REGION_FRACTION = 0.02
#: Width (mm, Gaussian sigma) of the transition between a fallen-back region and the rest.
FALLBACK_EDGE_MM = 4.0


#: A map departs locally from the acquired LR map where their difference, both smoothed by
#: LOCAL_SIGMA_LR LR voxels, exceeds this share of the smoothed LR map (PD, T1, T2). Chosen
#: on validation phantoms (benchmarks.local_fallback; benchmarks/results/local_fallback.md):
#: per map the smallest of 0.1, 0.15, 0.2, 0.3 whose fallback moves no validation setting's
#: GM MAE by more than 1 % (T2 departs most at CSF edges, where it varies 20-fold).
LOCAL_DEPARTURE = (0.1, 0.1, 0.3)
LOCAL_SIGMA_LR = 1.0
#: Beyond the brain, the local check covers the LR voxels of the head the app writes that
#: lie this many LR voxels inside its edge: at the edge the maps are set to 0, which departs
#: from the LR maps' faint rim (checking the whole head fired there in 1-1.3 % of a plain
#: phantom's head).
HEAD_INTERIOR_LR_VOXELS = 2


def local_departure(maps_hr: np.ndarray, evidence: Evidence) -> np.ndarray:
    """Per map and LR voxel (3, x, y, z): |G(D(maps) - y)| / G(|y|), G a Gaussian of
    :data:`LOCAL_SIGMA_LR` LR voxels (systematic departures; noise averages out); 0 at the
    LR voxels that are not data (``evidence.valid``) and where the smoothed LR map is 0."""
    lr = np.asarray(evidence.lr, np.float64)
    diff = forward(maps_hr, evidence.acquisition) - lr
    out = np.zeros_like(lr)
    for i in range(len(lr)):
        valid = np.ones(lr[i].shape, bool) if evidence.valid is None else evidence.valid[i]
        d = ndimage.gaussian_filter(np.where(valid, diff[i], 0.0), LOCAL_SIGMA_LR)
        ref = ndimage.gaussian_filter(np.where(valid, np.abs(lr[i]), 0.0), LOCAL_SIGMA_LR)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[i] = np.where(valid & (ref > 0), np.abs(d) / ref, 0.0)
    return out


def local_weight(
    departure: np.ndarray,
    evidence: Evidence,
    limits: Sequence[float] = LOCAL_DEPARTURE,
    where: np.ndarray | None = None,
) -> np.ndarray:
    """Weight of the super-resolved maps per map on the HR grid (n, X, Y, Z; 1: kept, 0:
    :func:`fallback_maps`): 0 within the HR voxels of ``where`` (default: the brain mask)
    in the LR voxels whose :func:`local_departure` (n, x, y, z; 0 beyond the checked LR
    voxels, :func:`checked_lr`, as its callers set it) is above the map's limit and one LR
    voxel around them, rising to 1 over :data:`FALLBACK_EDGE_MM` outside."""
    shape = evidence.mask.shape
    ijk = np.indices(shape, dtype=np.float64).reshape(3, -1)
    to_lr = np.linalg.inv(evidence.lr_affine) @ evidence.hr_affine
    lr_ijk = (to_lr[:3, :3] @ ijk + to_lr[:3, 3:]).reshape(3, *shape)
    sigma = FALLBACK_EDGE_MM / np.asarray(grid.voxel_sizes(evidence.hr_affine))
    weights = np.ones((len(departure), *shape), np.float32)
    for i, (dep, limit) in enumerate(zip(departure, limits, strict=True)):
        flagged = dep > limit
        if not flagged.any():
            continue
        # the departure is smoothed by one LR voxel, which dilutes it at a region's rim
        flagged = ndimage.binary_dilation(flagged, iterations=1)
        hr = ndimage.map_coordinates(flagged.astype(np.float32), lr_ijk, order=0, mode="nearest")
        fallen = (hr > 0.5) & (evidence.mask if where is None else where)
        soft = np.maximum(fallen, ndimage.gaussian_filter(fallen.astype(np.float32), sigma))
        weights[i] = np.clip(1.0 - soft, 0.0, 1.0)
    return weights


def fallback_maps(lr: np.ndarray, acquisition: Acquisition) -> np.ndarray:
    """The maps where super-resolution is not trusted: the LR maps (3, x, y, z; PD, T1 s,
    T2 s) by the best measured interpolation for their acquisition
    (:meth:`Acquisition.interpolate`: cubic spline for 3D k-space, the stack's own
    least-squares upsampling for a 2D stack), negative overshoot clipped to 0, float32."""
    return np.clip(acquisition.interpolate(np.asarray(lr)), 0.0, None).astype(np.float32)


def lr_residual(
    maps_hr: np.ndarray,
    lr: np.ndarray,
    acquisition: Acquisition,
    valid: np.ndarray | None = None,
) -> dict[str, float]:
    """Data consistency: ||D(x) - y|| / ||y|| per map (D: the acquisition's forward model),
    over the LR voxels where ``valid`` (3, x, y, z) is True (all when None: invalid input
    voxels were filled, they are not data)."""
    diff = forward(maps_hr, acquisition) - np.asarray(lr, np.float64)
    return relative_residual(diff, np.asarray(lr, np.float64), valid)


def forward(maps_hr: np.ndarray, acquisition: Acquisition) -> np.ndarray:
    """The maps (3, x, y, z) through the acquisition model onto the LR grid (float64)."""
    return np.asarray(acquisition.forward(np.asarray(maps_hr, np.float64)))


def relative_residual(
    diff: np.ndarray, ref: np.ndarray, valid: np.ndarray | None, where: np.ndarray | None = None
) -> dict[str, float]:
    """||diff|| / ||ref|| per map over the LR voxels that are ``valid`` (per map; all when
    None) and in ``where`` (all when None); NaN where ``ref`` vanishes."""
    out = {}
    for i, name in enumerate(MAP_ORDER):
        keep = np.ones(diff.shape[1:], bool) if valid is None else np.asarray(valid[i], bool)
        if where is not None:
            keep = keep & where
        denom = float(np.linalg.norm(ref[i][keep]))
        out[name] = float(np.linalg.norm(diff[i][keep]) / denom) if denom > 0 else float("nan")
    return out


def brain_centre(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World coordinates (mm) of the brain mask's centre of mass."""
    centre = np.argwhere(mask).mean(axis=0)
    return (affine @ np.append(centre, 1.0))[:3]


def octant_labels(shape: tuple[int, ...], affine: np.ndarray, centre_mm: np.ndarray) -> np.ndarray:
    """Octant (0-7) of every voxel of a grid about ``centre_mm``: bit 0 right (+x), bit 1
    anterior (+y), bit 2 superior (+z), in world (RAS+) coordinates."""
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    world = affine[:3, :3].astype(np.float32) @ ijk + affine[:3, 3:].astype(np.float32)
    side = world > np.asarray(centre_mm, np.float32)[:, None]
    return (side[0] * 1 + side[1] * 2 + side[2] * 4).reshape(shape).astype(np.int8)


def octant_name(label: int) -> str:
    """The region's name, e.g. 'left posterior superior'."""
    return " ".join(
        (
            "right" if label & 1 else "left",
            "anterior" if label & 2 else "posterior",
            "superior" if label & 4 else "inferior",
        )
    )


@dataclass(frozen=True)
class Evidence:
    """What maps are checked against: the acquired LR maps ``lr`` (3, x, y, z; PD a.u., T1
    and T2 in s) with their ``acquisition`` model and validity ``valid`` (3, x, y, z bool,
    None: all valid), the registered ``guides`` on the HR grid with their ``protocols``,
    the brain ``mask`` and both grids' affines (mm)."""

    lr: np.ndarray
    acquisition: Acquisition
    guides: Mapping[str, np.ndarray]
    protocols: Mapping[str, Protocol]
    mask: np.ndarray
    lr_affine: np.ndarray
    hr_affine: np.ndarray
    valid: np.ndarray | None = None

    @functools.cached_property
    def interpolated(self) -> np.ndarray:
        """The LR maps by their best interpolation (:func:`fallback_maps`), computed once."""
        return fallback_maps(self.lr, self.acquisition)

    def residual(self, maps_hr: np.ndarray) -> dict[str, float]:
        """:func:`lr_residual` of HR maps against these LR maps."""
        return lr_residual(maps_hr, self.lr, self.acquisition, self.valid)

    def synthesise(self, maps_hr: np.ndarray) -> dict[str, np.ndarray]:
        """Each guide re-synthesised from HR maps (3, X, Y, Z) by its protocol."""
        from swigapp.synthesis import synthesize

        maps = dict(zip(MAP_ORDER, maps_hr, strict=True))
        return {g: synthesize(maps, self.protocols[g]) for g in self.guides}


def regional_checks(
    sr: np.ndarray,
    up: np.ndarray,
    evidence: Evidence,
    synth: Mapping[str, np.ndarray],
    synth_interp: Mapping[str, np.ndarray] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per region (:func:`octant_name`) holding at least :data:`MIN_REGION_FRACTION` of the
    brain: its share of the brain, the LR residual of ``sr`` and of the zero-filled input
    ``up`` (per map, over the region's LR voxels), and each guide's SSIM of ``synth`` (the
    guide re-synthesised from ``sr``) to the acquired guide over the region's brain voxels;
    with ``synth_interp`` (the guides re-synthesised from :func:`fallback_maps`), their
    SSIM too (``guide_ssim_interp``)."""
    lr, mask, valid, guides = evidence.lr, evidence.mask, evidence.valid, evidence.guides
    centre = brain_centre(mask, evidence.hr_affine)
    lr64 = np.asarray(lr, np.float64)
    lr_labels = octant_labels(lr.shape[1:], evidence.lr_affine, centre)
    diff_sr = forward(sr, evidence.acquisition) - lr64
    diff_up = forward(up, evidence.acquisition) - lr64
    hr_labels = octant_labels(mask.shape, evidence.hr_affine, centre)
    ssim_maps = {
        name: guide_ssim_map(synth[name], acquired, mask) for name, acquired in guides.items()
    }
    interp_maps = {
        name: guide_ssim_map(synth_interp[name], acquired, mask)
        for name, acquired in guides.items()
        if synth_interp is not None
    }
    total = int(mask.sum())
    out = {}
    for label in range(8):
        inside = mask & (hr_labels == label)
        share = float(inside.sum()) / total if total else 0.0
        if share < MIN_REGION_FRACTION:
            continue
        where = lr_labels == label
        out[octant_name(label)] = {
            "fraction_of_brain": share,
            "lr_residual": relative_residual(diff_sr, lr64, valid, where),
            "lr_residual_input": relative_residual(diff_up, lr64, valid, where),
            "guide_ssim": {g: float(m[inside].mean()) for g, m in ssim_maps.items()},
        }
        if interp_maps:
            scores = {g: float(m[inside].mean()) for g, m in interp_maps.items()}
            out[octant_name(label)]["guide_ssim_interp"] = scores
    return out


def lr_flagged(residual: Mapping[str, float], before: Mapping[str, float]) -> list[str]:
    """Maps whose LR residual is above :data:`LR_RESIDUAL_FLAG` and twice the input's."""
    return [
        m
        for m, value in residual.items()
        if np.isfinite(value) and value > max(LR_RESIDUAL_FLAG, 2 * before.get(m, 0.0))
    ]


def ssim_flagged(scores: Mapping[str, float]) -> list[str]:
    """Guides whose re-synthesis SSIM is below :data:`GUIDE_SSIM_FLAG`."""
    return [g for g, value in scores.items() if np.isfinite(value) and value < GUIDE_SSIM_FLAG]


def region_failures(region: Mapping[str, Any]) -> dict[str, str]:
    """The checks a region (an entry of :func:`regional_checks`) fails, with the reason:
    "lr" when its maps depart from the acquired LR maps (:func:`lr_flagged`), "guides" when
    no guide is explained by them (every guide :func:`ssim_flagged`), "interp" when the
    interpolated LR maps explain the guides better (mean SSIM over the guides, where the
    region has ``guide_ssim_interp``)."""
    out = {}
    maps = lr_flagged(region["lr_residual"], region["lr_residual_input"])
    if maps:
        figures = ", ".join(f"{m} {region['lr_residual'][m]:.3f}" for m in maps)
        out["lr"] = f"the maps depart from the acquired LR maps (LR residual {figures})"
    scores = region["guide_ssim"]
    if scores and len(ssim_flagged(scores)) == len(scores):
        figures = ", ".join(f"{g} {v:.3f}" for g, v in scores.items())
        out["guides"] = f"no guide is explained by the maps (re-synthesis SSIM {figures})"
    interp = region.get("guide_ssim_interp")
    if scores and interp and np.mean(list(scores.values())) < np.mean(list(interp.values())):
        figures = ", ".join(f"{g} {scores[g]:.3f} vs {interp[g]:.3f}" for g in scores)
        out["interp"] = (
            "the interpolated LR maps explain the guides better than the super-resolved maps "
            f"(re-synthesis SSIM {figures})"
        )
    return out


def falls_back(region: Mapping[str, Any]) -> bool:
    """Whether a region falls back (:func:`failures`): its maps explain the guides worse
    than the interpolated LR maps, or it fails both fixed checks (LR and guides)."""
    failed = region_failures(region)
    return "interp" in failed or ("lr" in failed and "guides" in failed)


def guard(
    sr: np.ndarray,
    up: np.ndarray,
    evidence: Evidence,
    local: bool = True,
    head: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """The regional checks of ``sr`` (3, X, Y, Z) and their fallback, as the app runs them:
    the guides re-synthesised from ``sr`` and from :func:`fallback_maps`,
    :func:`regional_checks` (``up``: the zero-filled input, the LR residual's reference),
    and the maps with every region that :func:`falls_back` blended to the interpolation
    (:func:`fallback_weight`); then, when ``local``, each map blended to the interpolation
    wherever it departs locally from the acquired LR map (:func:`local_fallback`; in the
    brain and, given the HR ``head`` the app writes, in its interior). Returns
    (maps, checks per region, fallen regions with their share of the brain and reasons;
    a local fallback is named "local <map>"); ``sr`` itself, no checks and none fallen
    without guides or brain."""
    mask = evidence.mask
    if not evidence.guides or not mask.any():
        return sr, {}, []
    interp = evidence.interpolated
    synth, synth_interp = evidence.synthesise(sr), evidence.synthesise(interp)
    regions = regional_checks(sr, up, evidence, synth, synth_interp)
    fell = [
        {"region": name, "fraction_of_brain": r["fraction_of_brain"],
         "reasons": list(region_failures(r).values())}
        for name, r in regions.items()
        if falls_back(r)
    ]  # fmt: skip
    out = sr
    if fell:
        w = fallback_weight([f["region"] for f in fell], mask.shape, evidence.hr_affine, mask)
        out = (w * sr + (1.0 - w) * interp).astype(np.float32)
    if local:
        out, local_fell = local_fallback(out, evidence, head)
        fell += local_fell
    return out, regions, fell


def lr_footprint(evidence: Evidence) -> np.ndarray:
    """The LR voxels (x, y, z) that are mostly brain: the brain mask through the
    acquisition model above 0.5."""
    return forward(evidence.mask[None].astype(np.float64), evidence.acquisition)[0] > 0.5


def head_interior(head: np.ndarray, evidence: Evidence) -> np.ndarray:
    """The LR voxels (x, y, z) that are mostly in the HR ``head`` (through the acquisition
    model above 0.5), eroded by :data:`HEAD_INTERIOR_LR_VOXELS` (not along an axis too thin
    for it: a single slice)."""
    inside = forward(head[None].astype(np.float64), evidence.acquisition)[0] > 0.5
    steps = HEAD_INTERIOR_LR_VOXELS
    cross = grid.thin_axes_cross(inside.shape, steps)
    return ndimage.binary_erosion(inside, cross, iterations=steps)


def checked_lr(
    evidence: Evidence, head: np.ndarray | None = None, brain_lr: np.ndarray | None = None
) -> np.ndarray:
    """The LR voxels the local check covers: the brain's (``brain_lr``, default
    :func:`lr_footprint`) and, with the HR ``head`` the app writes, its interior
    (:func:`head_interior`)."""
    checked = lr_footprint(evidence) if brain_lr is None else brain_lr
    return checked if head is None else checked | head_interior(head, evidence)


def local_weights(
    departure: np.ndarray,
    evidence: Evidence,
    head: np.ndarray | None = None,
    brain_lr: np.ndarray | None = None,
    limits: Sequence[float] = LOCAL_DEPARTURE,
) -> np.ndarray:
    """The local fallback's weights (n, X, Y, Z; :func:`local_weight`) of a departure
    (n, x, y, z; 0 where not checked): the brain's LR voxels (``brain_lr``, default
    :func:`lr_footprint`) fall back in the brain mask, and, given the HR ``head``, those
    beyond them fall back in the head beyond the brain mask only, so that the brain keeps the
    weights the limits were chosen with (falling back beyond it with an edge into it moved
    validation GM MAE by up to 1.3 %, benchmarks/results/local_fallback_head.md)."""
    brain_lr = lr_footprint(evidence) if brain_lr is None else brain_lr
    weights = local_weight(np.where(brain_lr, departure, 0.0), evidence, limits)
    if head is not None:
        beyond = local_weight(np.where(brain_lr, 0.0, departure), evidence, limits,
                              where=head & ~evidence.mask)  # fmt: skip
        beyond[:, evidence.mask] = 1.0
        weights = np.minimum(weights, beyond)
    return weights


def local_fallback(
    maps: np.ndarray, evidence: Evidence, head: np.ndarray | None = None
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """``maps`` (3, X, Y, Z) blended to :func:`fallback_maps` per map wherever
    :func:`local_departure` exceeds :data:`LOCAL_DEPARTURE` in the brain and, given the HR
    ``head`` the app writes, in its interior (:func:`checked_lr`, :func:`local_weights`),
    and a record per map that fell back anywhere: region "local <map>", its share of the
    brain (weight below 0.5), the LR voxels (how many beyond the brain), the largest
    departure and where."""
    departure = local_departure(maps, evidence)
    brain_lr = lr_footprint(evidence)
    departure[:, ~checked_lr(evidence, head, brain_lr)] = 0.0
    limits = np.asarray(LOCAL_DEPARTURE)[:, None, None, None]
    if not (departure > limits).any():
        return maps, []
    weights = local_weights(departure, evidence, head, brain_lr)
    out = (weights * maps + (1.0 - weights) * evidence.interpolated).astype(np.float32)
    brain = evidence.mask
    fell = []
    for i, name in enumerate(MAP_ORDER):
        over = departure[i] > LOCAL_DEPARTURE[i]
        flagged = int(over.sum())
        if not flagged:
            continue
        beyond = int(over[~brain_lr].sum())
        share = float((weights[i][brain] < 0.5).mean())
        labels, n = ndimage.label(over)
        largest = 1 + int(np.argmax(ndimage.sum(np.ones_like(labels), labels, range(1, n + 1))))
        centre = evidence.lr_affine @ np.append(np.argwhere(labels == largest).mean(axis=0), 1)
        where = ", ".join(f"{v:.0f}" for v in centre[:3])
        fell.append({
            "region": f"local {name}",
            "fraction_of_brain": share,
            "reasons": [
                f"the {name} map departs from the acquired LR {name} map by more than "
                f"{100 * LOCAL_DEPARTURE[i]:.0f} % of it in {flagged} LR voxels"
                + (f", {beyond} of them beyond the brain mask" if beyond else "")
                + " (largest "
                f"{100 * float(departure[i].max()):.0f} %; {n} cluster(s), the largest "
                f"around {where} mm in scanner coordinates): values the acquisition does not "
                "support, e.g. tissue unlike any the model was trained on"
            ],
        })  # fmt: skip
    return out, fell


def fallback_weight(
    regions: list[str], shape: tuple[int, ...], affine: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """Weight of the super-resolved maps (1: kept, 0: :func:`fallback_maps`) when the named
    regions fall back, with a smooth edge of :data:`FALLBACK_EDGE_MM`."""
    labels = octant_labels(shape, affine, brain_centre(mask, affine))
    names = [octant_name(k) for k in range(8)]
    fallen = np.isin(labels, [names.index(r) for r in regions])
    sigma = FALLBACK_EDGE_MM / np.asarray(grid.voxel_sizes(affine))
    return np.clip(1.0 - ndimage.gaussian_filter(fallen.astype(np.float32), sigma), 0.0, 1.0)
