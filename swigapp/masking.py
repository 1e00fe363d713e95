"""Brain masks from quantitative maps, refined by a template registered without downloads."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from swigapp.operators import grid
from swigapp.operators.grid import fill_holes, thin_axes_cross
from swigapp.registration import MIN_AXIS_VOXELS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from swigapp.physics.protocol import Protocol

LOG = logging.getLogger("swigapp.masking")


#: Plausible brain T1 (s): below it fat and marrow (0.26-0.42 s at 1.5-3T), above it noise.
BRAIN_T1 = (0.45, 5.0)
#: Opening radius (mm) that cuts the bridges from the brain to the scalp through the skull.
OPENING_MM = 4.0
#: With a T2 map, a brain voxel's T2, smoothed by a Gaussian of :data:`T2_SMOOTHING_MM` (the
#: Gibbs ringing of CSF's long T2 along sharp individual boundaries would otherwise cut holes
#: into the cortex), is at least this share of the median T2 of the WM-like candidates (T1 in
#: :data:`WM_LIKE_T1`): muscle, skin and the soft tissue of face and neck (T2 30-50 ms at
#: 3T, T1 GM-like) are left out, WM (70-90 ms) and GM kept; relative, so that field strengths
#: with shorter T2s keep their WM. Chosen on validation individuals (seed 3000; clinical 2D
#: heads synthseg-01, brainweb-05, synthseg-14; skull-stripped synthseg-01 at 2 mm and
#: brainweb-05 at 1x1x4 mm): mask volume / true brain on the heads 1.75, 1.50, 1.58 without
#: it, 1.09, 1.11, 1.09 at 0.6, 1.07, 1.10, 1.07 at 0.7 (Dice 0.95-0.97), 1.07, 1.09, 1.07 at
#: 0.8; the skull-stripped masks unchanged at every factor (1.010x, 1.016x). Unsmoothed,
#: the criterion cut a skull-stripped individual's mask to 0.28x.
BRAIN_T2_OF_WM = 0.7
T2_SMOOTHING_MM = 2.0
WM_LIKE_T1 = (0.5, 1.2)
#: Where T1 was not measured (its estimate is a function of T2, so "WM-like T1" is "T2 at
#: most WM's": muscle, bone and skin too), the WM-like candidates that set the T2 reference
#: are also this deep (mm) inside the candidates' filled region (the array's faces are not
#: an edge), where a head holds brain only. On a validation head (synthseg-01, seed 3000,
#: clinical 2D, T2 alone) the WM-like median T2 was 40 ms over all candidates and 71 ms in
#: the true brain; at 20 mm deep 71 ms (95 % of the voxels in the true brain).
REFERENCE_DEPTH_MM = 20.0
#: Noisy fits leave voxels with a T1 or PD outside the brain's range inside the brain, and an
#: opening of such a sieve breaks it into pieces and keeps one: on the real in-vivo IR slice
#: (Barral et al. 2010's, 2 x 2 x 5 mm; `benchmarks.real`) the mask held 792 of the brain's
#: 4532 voxels, the eroded candidates' largest piece 28 % of them. Where that piece holds
#: less than :data:`SIEVE_SHARE` of the eroded candidates, the enclosed holes below
#: :data:`SMALL_HOLE_ML` are filled before the opening (that slice's were 20-1020 mm3: the
#: ventricles, T1 fitted beyond 5 s, and clusters of WM fitted below 0.45 s). Neither is
#: tuned: twice that slice's largest hole, far below the gap between brain and scalp (in 3D
#: one shell around the head, hundreds of ml; in a single 5 mm slice a ring of about
#: 10 ml). Filling on every input instead moved held-out head masks (brainweb-20 1.096x ->
#: 1.104x the true brain), so clean candidates are left as they were.
SIEVE_SHARE = 0.5
SMALL_HOLE_ML = 2.0


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest connected component of a boolean mask (the mask itself when empty)."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)


def mask_from_maps(
    pd: np.ndarray,
    t1: np.ndarray,
    threshold: float = 0.4,
    voxel_size: tuple[float, ...] | None = None,
    t2: np.ndarray | None = None,
    t1_measured: bool = True,
    no_data: np.ndarray | None = None,
) -> np.ndarray:
    """Brain mask from PD (a.u.), T1 (s) and optionally T2 (s) maps on one grid, skull and
    scalp excluded.

    Candidates: PD above ``threshold`` x the 90th percentile of positive PD and a brain-like
    T1 (:data:`BRAIN_T1`: excludes fat and marrow); with ``t2``, a smoothed T2 of at least
    :data:`BRAIN_T2_OF_WM` x the WM-like median (excludes muscle and skin; with
    ``t1_measured`` False, T1 being an estimate, only WM-like candidates at least
    :data:`REFERENCE_DEPTH_MM` deep set the median: :func:`deep_part`). The largest
    component of the candidates eroded by :data:`OPENING_MM` (cuts the thin bridges from
    brain to scalp muscle and skin across the skull) is grown back within the candidates
    (:func:`opened_core`); holes filled, one closing pass.
    ``no_data``: voxels whose input was invalid in an acquired map (NaN or beyond the
    physical range: a fit that failed for want of signal, as in bone and air, or for noise),
    whose values were filled in from their neighbours for the network; they are never
    candidates, and the holes they leave inside the brain are filled with the mask's own.
    (Filled from its neighbours, the in-vivo MESE slice's ring of failed fits in the skull
    joined brain and scalp: a mask of 179 ml against 94.)
    ``voxel_size`` in mm (default 1 mm). On skull-stripped maps the result is 0.2.0's
    threshold mask to within about 0.1 % of its voxels (0.08 and 0.12 % on two held-out
    slab phantoms). Peeling CSF-like voxels off the surface (the extra-cerebral CSF of a
    head) was tried and dropped: it brought a 1 mm phantom head from 1.03x to 0.99x the
    true brain volume, but took 1 % off skull-stripped masks, where nothing needs peeling.
    """
    pd = np.nan_to_num(np.asarray(pd, dtype=np.float32))
    t1 = np.nan_to_num(np.asarray(t1, dtype=np.float32))
    positive = pd[pd > 0]
    if positive.size == 0:
        return np.zeros(pd.shape, dtype=bool)
    candidate = (pd > threshold * np.percentile(positive, 90)) & (t1 > BRAIN_T1[0])
    candidate &= t1 < BRAIN_T1[1]
    if no_data is not None:
        candidate &= ~np.asarray(no_data, bool)
    if t2 is not None and candidate.any():
        t2 = np.nan_to_num(np.asarray(t2, dtype=np.float32))
        wm = candidate & (t1 > WM_LIKE_T1[0]) & (t1 < WM_LIKE_T1[1])
        if not t1_measured:
            wm = deep_part(wm, candidate, voxel_size or (1.0,) * t2.ndim)
        if wm.sum() >= 27:
            sigma = T2_SMOOTHING_MM / np.asarray(voxel_size or (1.0,) * t2.ndim, dtype=float)
            smooth = ndimage.gaussian_filter(t2, sigma)
            candidate &= smooth > BRAIN_T2_OF_WM * float(np.median(t2[wm]))
    if not candidate.any():
        return candidate
    eroded = _eroded(candidate, voxel_size)
    if eroded.any() and largest_component(eroded).sum() < SIEVE_SHARE * eroded.sum():
        LOG.info("the brain candidates are a sieve (a noisy fit?): small holes filled")
        candidate = fill_small_holes(candidate, voxel_size)
        eroded = _eroded(candidate, voxel_size)
    mask = opened_core(candidate, voxel_size, eroded)
    cross = thin_axes_cross(candidate.shape, _opening_steps(voxel_size))
    closed = ndimage.binary_closing(largest_component(mask), cross, iterations=1)
    return ndimage.binary_fill_holes(closed, cross)


def fill_small_holes(candidate: np.ndarray, voxel_size: Sequence[float] | None) -> np.ndarray:
    """``candidate`` with its enclosed holes (:func:`~swigapp.operators.grid.fill_holes`: in
    a single slice's plane) below :data:`SMALL_HOLE_ML` filled (``voxel_size`` in mm; None:
    1 mm)."""
    holes = fill_holes(candidate) & ~candidate
    labels, _ = ndimage.label(holes, thin_axes_cross(candidate.shape, 1))
    vox_ml = float(np.prod(voxel_size or (1.0,) * candidate.ndim)) / 1000.0
    small = np.bincount(labels.ravel()) * vox_ml < SMALL_HOLE_ML
    small[0] = False
    return candidate | small[labels]


def _opening_steps(voxel_size: Sequence[float] | None) -> int:
    """:data:`OPENING_MM` in voxels of the mean ``voxel_size`` (mm; None: 1 mm), at least 1."""
    vox = float(np.mean(voxel_size)) if voxel_size is not None else 1.0
    return max(1, round(OPENING_MM / vox))


def opened_core(
    candidate: np.ndarray, voxel_size: Sequence[float] | None, eroded: np.ndarray | None = None
) -> np.ndarray:
    """The largest piece of ``candidate`` eroded by :data:`OPENING_MM` (which cuts the thin
    bridges from the brain to the scalp across the skull; ``eroded``: that erosion when the
    caller has it), grown back within ``candidate``, holes filled (``voxel_size`` in mm;
    None: 1 mm)."""
    steps = _opening_steps(voxel_size)
    cross = thin_axes_cross(candidate.shape, steps)
    core = _eroded(candidate, voxel_size) if eroded is None else eroded
    core = largest_component(core if core.any() else candidate)
    mask = ndimage.binary_dilation(core, cross, iterations=steps + 1, mask=candidate)
    return ndimage.binary_fill_holes(mask, cross)


def _eroded(candidate: np.ndarray, voxel_size: Sequence[float] | None) -> np.ndarray:
    """``candidate`` eroded by :data:`OPENING_MM` (:func:`thin_axes_cross` steps)."""
    steps = _opening_steps(voxel_size)
    cross = thin_axes_cross(candidate.shape, steps)
    return ndimage.binary_erosion(candidate, cross, iterations=steps)


def deep_part(selected: np.ndarray, region: np.ndarray, voxel_size: Sequence[float]) -> np.ndarray:
    """The voxels of ``selected`` at least :data:`REFERENCE_DEPTH_MM` inside ``region``
    with its holes filled (mm, ``voxel_size``; the array's faces are not an edge); where
    fewer than 27 are that deep, those in the deeper half of the region's depth."""
    filled = np.pad(fill_holes(region), 1, constant_values=True)
    inner = (slice(1, -1),) * region.ndim
    depth = ndimage.distance_transform_edt(filled, sampling=voxel_size)[inner]
    deep = selected & (depth >= REFERENCE_DEPTH_MM)
    if deep.sum() < 27 and selected.any():
        deep = selected & (depth >= 0.5 * float(depth[selected].max()))
    return deep


#: TemplateFlow template used when it is already cached (never downloaded at run time).
TEMPLATEFLOW_TEMPLATE = "MNI152NLin2009cAsym"


def template_files() -> tuple[Path, Path, str]:
    """(T1w, brain mask, description) of the MNI template at 2 mm, without any download.

    TemplateFlow's MNI152NLin2009cAsym when its files are in the TemplateFlow cache
    (``TEMPLATEFLOW_HOME``, default ``~/.cache/templateflow``); otherwise the ICBM 2009
    template that ships inside nilearn's wheel.
    """
    home = Path(os.environ.get("TEMPLATEFLOW_HOME", Path.home() / ".cache" / "templateflow"))
    tpl = home / f"tpl-{TEMPLATEFLOW_TEMPLATE}"
    t1w = tpl / f"tpl-{TEMPLATEFLOW_TEMPLATE}_res-02_T1w.nii.gz"
    mask = tpl / f"tpl-{TEMPLATEFLOW_TEMPLATE}_res-02_desc-brain_mask.nii.gz"
    if t1w.exists() and mask.exists():
        return t1w, mask, f"TemplateFlow {TEMPLATEFLOW_TEMPLATE} (res-02, cached)"
    from nilearn import datasets

    cache = _nilearn_cache()
    t1w, mask = cache / "mni152_t1_2mm.nii.gz", cache / "mni152_brainmask_2mm.nii.gz"
    if not (t1w.exists() and mask.exists()):
        cache.mkdir(parents=True, exist_ok=True)
        for image, path in (
            (datasets.load_mni152_template(resolution=2), t1w),
            (datasets.load_mni152_brain_mask(resolution=2), mask),
        ):
            image.header.set_xyzt_units("mm", "sec")
            image.to_filename(path)
    return t1w, mask, "ICBM 2009 template shipped with nilearn (2 mm)"


def _nilearn_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "swigapp" / f"nilearn-{_nilearn_version()}-v2"


def _nilearn_version() -> str:
    import nilearn

    return nilearn.__version__


def template_mask(
    t1w_like: np.ndarray,
    affine: np.ndarray,
    reference_shape: tuple[int, ...],
    reference_affine: np.ndarray,
    seed: int = 0,
) -> tuple[np.ndarray, str]:
    """Template brain mask registered (affine, MI) to a T1w-like image, on a reference grid.

    ``t1w_like``: e.g. an MPRAGE synthesised from the LR maps (on the LR grid, ``affine``);
    the mask is resampled onto the grid (``reference_shape``, ``reference_affine``).
    Returns the boolean mask and a description of the template used.
    """

    from swigapp.registration import ants_seed, import_ants, to_ants

    ants = import_ants()
    ants.config._random_seed = ants_seed(seed)
    t1w_path, mask_path, what = template_files()
    fixed = to_ants(t1w_like, affine)
    moving = ants.image_read(str(t1w_path))
    tpl_mask = ants.image_read(str(mask_path))
    reg = ants.registration(fixed, moving, type_of_transform="Affine", aff_metric="mattes")
    ref = to_ants(np.zeros(reference_shape, np.float32), reference_affine)
    warped = ants.apply_transforms(
        ref, tpl_mask, transformlist=reg["fwdtransforms"], interpolator="linear"
    )
    return warped.numpy() > 0.5, what


def brain_mask(
    maps_hr: np.ndarray,
    hr_affine: np.ndarray,
    t1w_like: np.ndarray | None = None,
    t1w_affine: np.ndarray | None = None,
    margin_mm: float = 4.0,
    seed: int = 0,
    t1_measured: bool = True,
    no_data: np.ndarray | None = None,
) -> tuple[np.ndarray, str]:
    """Brain mask on the HR grid from maps (3, X, Y, Z: PD, T1 s, T2 s) and a template.

    The maps give the candidate (:func:`mask_from_maps`; ``t1_measured`` False where T1 is
    an estimate; ``no_data`` where the input was invalid); when ``t1w_like`` is given, the
    template brain mask registered to it and dilated by ``margin_mm`` removes what lies
    outside the brain (scalp, neck, eyes).
    Returns the mask and how it was made.
    """
    voxel = np.asarray(grid.voxel_sizes(hr_affine))
    mask = mask_from_maps(maps_hr[0], maps_hr[1], voxel_size=tuple(voxel), t2=maps_hr[2],
                          t1_measured=t1_measured, no_data=no_data)  # fmt: skip
    if t1w_like is None:
        return mask, "maps (PD and T1 thresholds)"
    if min(np.shape(t1w_like)) < MIN_AXIS_VOXELS:
        LOG.warning(
            "the maps hold %d voxel(s) along one axis: too few to register the brain template "
            "to them; the brain mask comes from the maps alone",
            min(np.shape(t1w_like)),
        )
        return mask, "maps (PD and T1 thresholds); too few slices to register a template"
    tpl, what = template_mask(t1w_like, t1w_affine, mask.shape, hr_affine, seed=seed)
    radius = np.maximum(np.round(margin_mm / voxel).astype(int), 1)
    structure = np.ones(tuple(2 * radius + 1), dtype=bool)
    tpl = ndimage.binary_dilation(tpl, structure=structure)
    combined = ndimage.binary_fill_holes(mask & tpl)
    if combined.sum() < 0.5 * mask.sum():
        LOG.warning(
            "the registered template mask keeps only %.0f %% of the map-based mask; "
            "using the map-based mask alone",
            100 * combined.sum() / max(mask.sum(), 1),
        )
        return mask, "maps (PD and T1 thresholds); template registration rejected"
    return combined, f"maps (PD and T1 thresholds) within the registered {what}"


#: Where PD was not acquired (so its estimate, a function of T1 or T2, cannot tell how much
#: of a voxel is tissue), a mask voxel stays brain only where a registered guide in which CSF
#: is at least as bright as WM (:func:`bright_csf`: T2w, PDw) reaches this share of its
#: median over the mask. On a validation individual (synthsr-5, seed 3000, 2 mm, T1 only;
#: docs/subsets.md) the map-based mask took in a shell of partial-volume voxels 1-1.4 mm
#: outside the brain (22 % tissue, 1.12x the true brain); the T2w guide at 0.5 of its median
#: holds 75 % of the shell and 0.9 % of the brain. Set from that subject, not tuned; on the 3
#: validation individuals, T1 only, with the depth limit below: masks 1.04/1.12/1.03 ->
#: 0.99/1.04/1.00x the true brain, GM T1 MAE 60.1/40.6/61.7 -> 59.8/38.2/61.7 ms
#: (benchmarks.subsets).
GUIDE_SHARE = 0.5
#: The cut reaches this many LR voxels into the mask (per axis: one LR voxel is that axis's
#: LR voxel size; voxel centre to the nearest voxel outside), where the shell lies: the LR
#: voxels that straddle the brain's edge, spread by the upsampling's kernel over one more.
#: Deeper, a guide dark below the share is brain (WM in a biased T2w): on validation
#: individual synthseg-01 (seed 3000, 2 mm slab, T1 only) a cut without this limit removed
#: 6.8 % of the true brain, WM 4-25 mm deep (mask 0.93x the true brain). Chosen between 1
#: and 2 on the 3 validation individuals by GM T1 MAE (benchmarks.subsets): 59.9/39.0/61.7
#: ms at 1, 59.8/38.2/61.7 at 2, 60.1/36.4/61.7 without a limit; masks 0.99/1.04/1.00x
#: the true brain at 2 (0.93/1.02/1.00 without). (With the estimate's later head rule:
#: 59.7/38.5/61.7 at 2.)
SHELL_DEPTH_LR = 2.0
#: The guide cut is dropped (the mask kept) when the guide is dark in more than this share of
#: the mask, or the cut would remove more: a guide that dark over the brain is not seeing it
#: (bias, a failed registration).
MAX_GUIDE_CUT = 0.25
#: Typical 3T (PD, T1 s, T2 s) of CSF and WM, to tell a guide's CSF contrast.
CSF_AND_WM = ((1.0, 4.0, 1.5), (0.69, 0.85, 0.075))


def bright_csf(protocol: Protocol) -> bool:
    """Whether CSF is at least as bright as WM in a guide of ``protocol`` (a
    :class:`~swigapp.physics.protocol.Protocol`): T2w and PDw, not T1w or FLAIR."""
    from swigapp.synthesis import synthesize

    pd, t1, t2 = (np.asarray(v, dtype=np.float64) for v in zip(*CSF_AND_WM, strict=True))
    csf, wm = synthesize({"PD": pd, "T1": t1, "T2": t2}, protocol)
    return bool(csf >= wm)


def guide_cut(
    mask: np.ndarray,
    guide: np.ndarray,
    lr_voxel: Sequence[float],
    covered: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """``mask`` without the voxels where ``guide`` (registered, same grid) is below
    :data:`GUIDE_SHARE` of its median over the mask, within the guide's field of view
    (``covered``; None: everywhere) and within :data:`SHELL_DEPTH_LR` LR voxels of the
    mask's edge (``lr_voxel``: the LR voxel size in HR voxels per axis; the array's faces
    are not an edge); the largest piece, holes filled. Returns the mask and the share of it
    removed; the mask unchanged (share 0) when the guide is dark in more than
    :data:`MAX_GUIDE_CUT` of the mask it sees, or the cut would remove more than that."""
    guide = np.nan_to_num(np.asarray(guide, dtype=np.float32))
    seen = mask if covered is None else mask & covered
    if not seen.any():
        return mask, 0.0
    dark = seen & (guide < GUIDE_SHARE * float(np.median(guide[seen])))
    dark_share = float(dark.sum()) / float(seen.sum())
    depth = ndimage.distance_transform_edt(mask, sampling=1.0 / np.asarray(lr_voxel, float))
    cross = thin_axes_cross(mask.shape, 1)
    kept = ndimage.binary_fill_holes(
        largest_component(mask & ~(dark & (depth <= SHELL_DEPTH_LR))), cross
    )
    removed = 1.0 - float(kept.sum()) / float(mask.sum())
    if max(removed, dark_share) > MAX_GUIDE_CUT:
        LOG.warning(
            "the guide is dark in %.0f %% of the brain mask and would cut %.0f %% off it "
            "(more than %.0f %%): mask kept",
            100 * dark_share,
            100 * removed,
            100 * MAX_GUIDE_CUT,
        )
        return mask, 0.0
    return kept, removed


#: Where T2 was not measured (its estimate follows T1 or PD, so the T2 criterion of
#: :func:`mask_from_maps` cannot see muscle and skin, whose T1 is GM-like), a mask voxel
#: stays brain only where a registered bright-CSF guide, over its own contrast synthesised
#: from the upsampled maps (both smoothed by :data:`T2_SMOOTHING_MM`), reaches this share of
#: the ratio's median over the mask. Muscle's T2 (30-50 ms) puts it at 0.1-0.3 of the brain's
#: in a T2w guide (on validation head synthseg-01: median 0.19, brain tissues 1.0-1.2).
#: Chosen among 0.2, 0.3 and 0.4 on the 3 validation heads (seed 3000, clinical 2D, T1 only)
#: by the mask's Dice after the shell cut: 0.951/0.960/0.958, 0.916/0.917/0.917 and
#: 0.979/0.979/0.977 (docs/subsets.md).
GUIDE_RATIO_SHARE = 0.3
#: The ratio cut is dropped (the mask kept) when it would remove more than this share of the
#: mask: a guide that far from the maps over the brain is not seeing it.
MAX_RATIO_CUT = 0.5
#: ... or less than this share: partial volume at a skull-stripped brain's edge (the shell
#: cut's business), not scalp. On the validation individuals, skull-stripped at 2 mm, the
#: cut took 0.3 % and cost GM T1 MAE 0.1-0.2 ms; on their heads 0, 2.2 and 18.5 %.
MIN_RATIO_CUT = 0.01


def guide_ratio_cut(
    mask: np.ndarray,
    guide: np.ndarray,
    synthesised: np.ndarray,
    voxel_size: Sequence[float],
    covered: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """``mask`` without the voxels where the registered ``guide`` over ``synthesised`` (its
    contrast from the maps, same grid) is below :data:`GUIDE_RATIO_SHARE` of the ratio's
    median over the mask, within the guide's field of view (``covered``; None: everywhere),
    then opened as :func:`mask_from_maps` opens its candidates (``voxel_size`` in mm).
    Returns the mask and the share of it removed; the mask unchanged (share 0) when the cut
    would remove more than :data:`MAX_RATIO_CUT` or less than :data:`MIN_RATIO_CUT`."""
    sigma = T2_SMOOTHING_MM / np.asarray(voxel_size, dtype=float)
    guide = ndimage.gaussian_filter(np.nan_to_num(np.asarray(guide, np.float32)), sigma)
    synth = ndimage.gaussian_filter(np.nan_to_num(np.asarray(synthesised, np.float32)), sigma)
    seen = mask if covered is None else mask & covered
    if not seen.any() or float(synth.max()) <= 0:
        return mask, 0.0
    ratio = guide / np.maximum(synth, 1e-6 * float(synth.max()))
    dark = seen & (ratio < GUIDE_RATIO_SHARE * float(np.median(ratio[seen])))
    if not dark.any():
        return mask, 0.0
    kept = opened_core(mask & ~dark, voxel_size)
    removed = 1.0 - float(kept.sum()) / float(mask.sum())
    if removed < MIN_RATIO_CUT:
        return mask, 0.0
    if removed > MAX_RATIO_CUT:
        LOG.warning(
            "the guide over its synthesised contrast would cut %.0f %% off the brain mask "
            "(more than %.0f %%): mask kept",
            100 * removed,
            100 * MAX_RATIO_CUT,
        )
        return mask, 0.0
    return kept, removed
