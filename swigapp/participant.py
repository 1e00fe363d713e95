"""The participant-level steps, each from files to files (what a workflow node runs).

Every step reads its inputs from NIfTI files, calls the array code of the library, writes
its outputs into ``out_dir`` and returns their paths with a few figures (and its own wall
time in seconds). Intermediate maps are 4D float32 NIfTIs with volumes PD (a.u.), T1 (s),
T2 (s). Protocols travel as plain dicts (:meth:`Protocol.as_dict`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nibabel as nib
import numpy as np
from scipy import ndimage

from swigapp.consistency import Evidence, guard
from swigapp.estimate import not_acquired, refine
from swigapp.inputs.qmri import head_region
from swigapp.io.files import load_maps, save_maps, save_nifti
from swigapp.io.images import load_image
from swigapp.maps import MAP_ORDER, Maps
from swigapp.methods import (
    DEFAULT_METHOD,
    METHOD_ARCH,
    METHODS,
    Request,
    fallback_method,
    method_options,
)
from swigapp.metrics import guide_ssim
from swigapp.operators import grid
from swigapp.operators.interp import upsample_interp
from swigapp.physics.protocol import DEFAULT_PROTOCOLS, Protocol
from swigapp.registration import RegistrationSettings
from swigapp.results import (
    Conformed,
    GuideRegistration,
    Masked,
    Predicted,
    SuperResolution,
    Synthesised,
)
from swigapp.timing import timed

if TYPE_CHECKING:
    from swigapp.models.features import SubjectTensors


def _as_dict(maps: np.ndarray) -> dict[str, np.ndarray]:
    return dict(zip(MAP_ORDER, maps, strict=True))


@timed
def conform_maps(
    map_files: Mapping[str, str],
    map_suffixes: Mapping[str, str],
    reference_guide: str,
    out_dir: str | Path,
    voxel_size: Sequence[float] | None = None,
    map_metadata: Mapping[str, Mapping[str, Any]] | None = None,
    lr_model: str = "auto",
) -> dict[str, Any]:
    """LR maps in BIDS units on their grid, and upsampled onto the HR grid.

    The maps are checked, converted (sidecar ``Units`` in ``map_metadata`` honoured), PD
    normalised to a water fraction and invalid voxels (NaN, Inf, negative) filled before
    upsampling (:func:`swigapp.inputs.qmri.prepare_lr_maps`). The HR grid is the LR maps' field
    of view at ``voxel_size`` (mm), by default the voxel size of ``reference_guide``. The
    acquisition model (``lr_model``: auto, kspace or slice-profile;
    :func:`swigapp.operators.acquisition.from_metadata`, from the T1 map's sidecar) sets the initial
    upsampling: zero-filled k-space for 3D maps, a regularised least-squares inverse of the
    slice profile through-plane for 2D stacks. Returns ``lr_file`` (PD internal scale, T1/T2
    s), ``lr_up_file``, ``lr_valid_file`` (uint8, 1 where the input voxel was finite and
    non-negative, one volume per map), ``hr_shape``, ``input_quality`` (per map: counts of
    invalid voxels), ``units`` (per map: the unit decision in words), ``pd_scale``
    (reference, factor = internal / input), ``notes`` (what was accepted although
    imperfect, one line each) and ``acquisition`` (:meth:`Acquisition.to_record`, which
    :meth:`Acquisition.from_record` turns back into the model).
    """
    import logging

    from swigapp.inputs.qmri import prepare_lr_maps
    from swigapp.models.features import upsample_maps
    from swigapp.operators.acquisition import from_metadata

    prepared = prepare_lr_maps(map_files, map_suffixes, map_metadata)
    if prepared.notes:  # the CLI warned when it validated the inputs
        logging.getLogger("swigapp.io").info("imperfect qMRI maps: %s", "; ".join(prepared.notes))
    lr, affine = prepared.maps, prepared.affine
    if voxel_size is None:
        voxel_size = grid.voxel_sizes(nib.load(reference_guide).affine)
    sidecar = dict((map_metadata or {}).get("T1") or {})
    acq = from_metadata(lr["PD"].shape, affine, voxel_size, sidecar, model=lr_model)
    hr_shape, hr_affine = acq.hr_shape, acq.hr_affine
    out = Path(out_dir)
    lr_maps = Maps(np.stack([lr[m] for m in MAP_ORDER]), affine, tuple(prepared.acquired))
    lr_file = save_maps(out / "lr_maps.nii.gz", lr_maps)
    valid = np.moveaxis(prepared.valid_stack(), 0, -1)
    lr_valid_file = str(save_nifti(out / "lr_valid.nii.gz", valid, affine))
    up = Maps(upsample_maps(lr, acq), hr_affine, lr_maps.acquired)
    lr_up_file = save_maps(out / "lr_up_maps.nii.gz", up)
    result = Conformed(
        lr_file=lr_file,
        lr_up_file=lr_up_file,
        lr_valid_file=lr_valid_file,
        hr_shape=list(hr_shape),
        input_quality=prepared.quality,
        units=prepared.units,
        pd_scale=prepared.pd_scale,
        notes=list(prepared.notes),
        acquired=list(prepared.acquired),
        estimated={m: u for m, u in prepared.units.items() if m not in prepared.acquired},
        acquisition={**acq.to_record(), "lr_model": lr_model},
    )
    return result.to_record()


def load_valid(lr_valid_file: str | Path | None) -> np.ndarray | None:
    """The LR validity mask (3, x, y, z) bool from :func:`conform_maps`, or None when
    there is no file or every voxel is valid (the LR terms then use every voxel)."""
    if not lr_valid_file:
        return None
    valid = np.moveaxis(np.asarray(nib.load(str(lr_valid_file)).dataobj) > 0, -1, 0)
    return None if valid.all() else valid


@timed
def make_mask(
    lr_file: str,
    lr_up_file: str,
    out_dir: str | Path,
    template: bool = True,
    seed: int = 0,
    lr_valid_file: str | None = None,
) -> dict[str, Any]:
    """Brain mask on the HR grid (``mask_file``) and how it was made (``method``);
    ``lr_valid_file`` (:func:`conform_maps`) says which maps were acquired, and where the
    input was invalid (never brain candidates: :func:`swigapp.masking.mask_from_maps`)."""
    from swigapp.masking import REFERENCE_DEPTH_MM, brain_mask
    from swigapp.synthesis import synthesize

    up = load_maps(lr_up_file)
    t1w_like = lr_affine = None
    if template:
        lr = load_maps(lr_file)
        t1w_like, lr_affine = synthesize(lr.as_dict(), DEFAULT_PROTOCOLS["T1w"]), lr.affine
    valid = load_valid(lr_valid_file)
    missing = not_acquired(valid)
    t1_measured = MAP_ORDER.index("T1") not in missing
    no_data = None
    if valid is not None:
        invalid = np.logical_or.reduce([~valid[i] for i in range(len(valid)) if i not in missing])
        no_data = upsample_interp(invalid.astype(np.float32), up.data.shape[1:], order=0) > 0.5
    mask, method = brain_mask(up.data, up.affine, t1w_like, lr_affine, seed=seed,
                              t1_measured=t1_measured, no_data=no_data)  # fmt: skip
    if not t1_measured:
        method += f"; T1 estimated: T2 reference at least {REFERENCE_DEPTH_MM:g} mm deep"
    if not mask.any():
        raise ValueError(f"{lr_file}: the brain mask is empty (PD or T1 map implausible?)")
    mask_file = str(save_nifti(Path(out_dir) / "brain_mask.nii.gz", mask, up.affine))
    return Masked(mask_file, method).to_record()


def refine_mask(
    masked: Mapping[str, Any],
    lr_valid_file: str | None,
    registrations: Sequence[Mapping[str, Any]],
    protocols: Mapping[str, Mapping[str, Any]],
    out_dir: str | Path,
) -> dict[str, Any]:
    """The brain mask (``masked``: :func:`make_mask`'s record) cut by the first registered
    guide in which CSF is at least as bright as WM: where T2 was not acquired (its estimate
    cannot tell muscle from brain), where the guide over its synthesised contrast is dark
    (:func:`swigapp.masking.guide_ratio_cut`); then, where PD was not acquired (its estimate
    cannot tell how much of a voxel is tissue), where the guide is dark at the mask's edge
    (:func:`swigapp.masking.guide_cut`). Otherwise, or without such a guide, the mask as it
    was. Returns the mask's record."""
    from swigapp.masking import (
        GUIDE_RATIO_SHARE,
        GUIDE_SHARE,
        SHELL_DEPTH_LR,
        bright_csf,
        guide_cut,
        guide_ratio_cut,
    )

    record = Masked.from_record(masked)
    valid = load_valid(lr_valid_file)
    missing = {MAP_ORDER[i] for i in not_acquired(valid)}
    if not {"PD", "T2"} & missing:
        return record.to_record()
    usable = [GuideRegistration.from_record(r) for r in registrations]
    usable = [r for r in usable if bright_csf(Protocol(**protocols[r.name]))]
    if not usable:
        return record.to_record()
    guide = usable[0]
    mask, affine = load_image(record.mask_file)
    mask = mask > 0.5
    registered = load_image(guide.registered_file)[0]
    covered = load_image(guide.coverage_file)[0] > 0.5
    cuts: dict[str, dict[str, Any]] = {}
    if "T2" in missing:
        synthesised = load_image(guide.fixed_file)[0]
        voxel = grid.voxel_sizes(affine)
        mask, removed = guide_ratio_cut(mask, registered, synthesised, voxel, covered)
        if removed:
            cuts["guide_ratio_cut"] = {"name": guide.name, "share": GUIDE_RATIO_SHARE,
                                       "removed": removed}  # fmt: skip
    if "PD" in missing:
        lr_voxel = np.divide(grid.voxel_sizes(nib.load(str(lr_valid_file)).affine),
                             grid.voxel_sizes(affine))  # fmt: skip
        mask, removed = guide_cut(mask, registered, lr_voxel, covered)
        if removed:
            cuts["guide_cut"] = {"name": guide.name, "share": GUIDE_SHARE,
                                 "depth_lr": SHELL_DEPTH_LR, "removed": removed}  # fmt: skip
    if not cuts:
        return record.to_record()
    mask_file = save_nifti(Path(out_dir) / "brain_mask.nii.gz", mask, affine)
    return replace(record, mask_file=str(mask_file), **cuts).to_record()


@timed
def register(
    lr_up_file: str,
    mask_file: str,
    guide_file: str,
    protocol: Mapping[str, Any],
    name: str,
    out_dir: str | Path,
    settings: RegistrationSettings = RegistrationSettings(),
    lr_file: str | None = None,
) -> dict[str, Any]:
    """Register one guide to its own contrast synthesised from the upsampled LR maps.

    ``lr_file``: the LR maps, whose resolution sets the last level (full resolution
    without it). Returns ``registered_file`` (the guide on the HR grid), ``coverage_file``
    (0-1: the part of each HR voxel inside the guide's field of view), ``fixed_file`` (the
    synthesised target), ``transform_files`` (ANTs, guide -> qMRI space), the MI
    ``metric``, ``coverage`` (the covered fraction of the brain mask) and the last level's
    ``shrink``.
    """
    from swigapp.registration import final_shrink, register_guide
    from swigapp.synthesis import synthesize

    up = load_maps(lr_up_file)
    hr_affine = up.affine
    shrink = 1
    if lr_file is not None and not settings.full_resolution:
        lr_zooms = grid.voxel_sizes(nib.load(lr_file).affine)
        shrink = final_shrink(lr_zooms, grid.voxel_sizes(hr_affine))
    mask = np.asarray(nib.load(mask_file).dataobj) > 0
    fixed = synthesize(up.as_dict(), Protocol(**protocol)) * mask
    moving, moving_affine = load_image(guide_file)
    out = Path(out_dir)
    result = register_guide(
        fixed, hr_affine, moving, moving_affine, settings, out / f"{name}_xfm", shrink
    )
    return GuideRegistration(
        name=name,
        registered_file=str(save_nifti(out / f"{name}_registered.nii.gz", result.image, hr_affine)),
        coverage_file=str(save_nifti(out / f"{name}_coverage.nii.gz", result.coverage, hr_affine)),
        fixed_file=str(save_nifti(out / f"{name}_target.nii.gz", fixed, hr_affine)),
        transform_files=list(result.transforms),
        metric=result.metric,
        coverage=float((result.coverage[mask] > SEEN).mean()) if mask.any() else 1.0,
        shrink=shrink,
    ).to_record()


def register_again(
    masked: Mapping[str, Any],
    registrations: Sequence[Mapping[str, Any]],
    lr_file: str,
    lr_up_file: str,
    guide_files: Mapping[str, str],
    protocols: Mapping[str, Mapping[str, Any]],
    out_dir: str | Path,
    settings: RegistrationSettings = RegistrationSettings(),
) -> list[dict[str, Any]]:
    """The guides registered again (:func:`register`) to their targets within the mask that
    :func:`refine_mask` cut where T2 was estimated (``masked``: its record); otherwise the
    ``registrations`` as they were. The first registration's target held what the estimates
    cannot tell from brain (face and neck muscle, the eyes) and could pull a guide off: on a
    validation head (synthseg-01, seed 3000, clinical 2D, T1 alone) the T1w guide landed
    12 mm from where the full set's maps put it, and 0.1 mm after the cut (docs/subsets.md).
    A record's ``seconds`` counts both registrations of its guide.
    """
    record = Masked.from_record(masked)
    if not record.guide_ratio_cut:
        return [dict(r) for r in registrations]
    out = []
    for previous in (GuideRegistration.from_record(r) for r in registrations):
        folder = Path(out_dir) / previous.name
        folder.mkdir(parents=True, exist_ok=True)
        again = register(lr_up_file, record.mask_file, guide_files[previous.name],
                         protocols[previous.name], previous.name, folder, settings,
                         lr_file=lr_file)  # fmt: skip
        again["seconds"] = float(again.get("seconds", 0.0)) + previous.seconds
        out.append(again)
    return out


#: An HR voxel is seen by a guide when more than this fraction of it lies inside the guide's
#: field of view.
SEEN = 0.001
#: Band (HR voxels) next to the edge of what the guides saw where the SR maps already fall
#: back to the upsampled LR maps: the network's receptive field there reaches past the edge.
COVERAGE_BAND = 1


def guide_weight(coverages: Sequence[np.ndarray]) -> np.ndarray:
    """Weight (0-1) of the guided prediction against the fallback: 0 where no guide saw the
    voxel (and :data:`COVERAGE_BAND` voxels around), 1 elsewhere, with a Gaussian ramp
    (1 voxel) between (no seam).

    The fallback (:func:`super_resolve`) is the method run with no guide when it can
    (SWIG, trained with guides left out), else the interpolated LR maps
    (:func:`swigapp.consistency.fallback_maps`). Chosen on validation
    phantoms (seed 3000, 2 subjects each, slab; guides that miss the edge slices after
    head motion at 2 mm iso, and wedges of a 15-degree tilted 2D stack of a head): GM T1
    MAE (ms) of SWIG without fallback / LR-maps fallback / no-guide fallback: 27.1 / 27.2 /
    27.0 and 23.8 / 25.9 / 23.8 at 2 mm iso; 44.7 / 44.2 / 43.1 and 50.7 / 49.1 / 47.5 on
    the tilted stack (GM T2 MAE and T1, T2, PD SSIM alike: the no-guide fallback best or
    tied in every case). Falling back where *any* guide is blind did worse than where
    *every* guide is (tiny phantoms, seeds 3 and 5).
    """
    seen = np.max(np.stack([np.asarray(c) for c in coverages]), axis=0) > SEEN
    if seen.all():
        return np.ones(seen.shape, np.float32)
    seen = ndimage.binary_erosion(seen, iterations=COVERAGE_BAND, border_value=1)
    weight = ndimage.gaussian_filter(seen.astype(np.float32), 1.0, truncate=2.0)
    return np.where(weight > 0.999, np.float32(1.0), np.clip(weight, 0.0, 1.0))


@dataclass(frozen=True)
class LRInputs:
    """The LR maps as :func:`conform_maps` wrote them: ``lr_file`` (4D: PD a.u., T1 s, T2
    s), ``lr_up_file`` (their initial upsampling onto the HR grid), ``acquisition`` (the
    acquisition model's record, :meth:`Acquisition.to_record`; None: 3D k-space truncation
    between the two grids) and ``lr_valid_file`` (the LR validity mask, or None)."""

    lr_file: str
    lr_up_file: str
    acquisition: Mapping[str, Any] | None = None
    lr_valid_file: str | None = None


@dataclass(frozen=True)
class MethodSettings:
    """What the participant asked of the method (the command line's options): ``method``
    (a name of :data:`swigapp.methods.METHODS`), ``model_path`` (a model.pt or a shipped
    model's name; None: the method's default weights), the method's own ``options`` (a
    record of its :class:`~swigapp.methods.MethodOptions`; missing ones take their
    defaults), ``seed``, ``device``, ``n_threads`` (torch threads; None: torch's
    default) and ``single_orientation`` (the networks predict along one slice axis instead
    of averaging over every least-downsampled one)."""

    method: str = DEFAULT_METHOD
    model_path: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    n_threads: int | None = None
    single_orientation: bool = False

    def request(self, voxel_size: Sequence[float]) -> Request:
        """The methods' :class:`~swigapp.methods.Request` (``voxel_size``: HR, mm), with
        adaptation ``"auto"`` as none (:func:`predict` decides it)."""
        from swigapp.models.inference import resolve_device

        options = method_options(self.method, self.options)
        if options.adaptation == "auto":
            options = options.with_adaptation(0)
        return Request(
            device=resolve_device(self.device),
            model_path=self.model_path,
            seed=self.seed,
            single_orientation=self.single_orientation,
            voxel_size=tuple(voxel_size),
            options=options,
        )


@dataclass
class Prediction:
    """A method's HR maps before the guard: ``maps`` (3, X, Y, Z: PD a.u., T1 s, T2 s),
    their orientation-ensemble ``spread`` (same units, or None), the method's provenance
    ``record``, the ``adaptation`` it ran, and the inputs it ran on (``subject``,
    ``evidence``, ``up``: after the second pass that refines the maps not acquired), with
    the LR residual of the input before that pass (``residual_input``)."""

    method: str
    maps: np.ndarray
    spread: np.ndarray | None
    record: dict[str, Any]
    adaptation: dict[str, Any]
    subject: SubjectTensors
    evidence: Evidence
    up: np.ndarray
    residual_input: dict[str, float]
    #: The second pass ran: ``evidence.lr`` and ``up`` hold the refined estimates.
    refined: bool = False


@dataclass
class Guarded:
    """The maps after the guard (:func:`guard_prediction`): ``maps`` and ``spread`` as
    kept, the share of the brain no guide saw and what stands there
    (``guide_fallback_fraction``, ``guide_fallback``), the regional checks (``regions``)
    and the regions that fell back (``regional_fallback``)."""

    maps: np.ndarray
    spread: np.ndarray | None
    guide_fallback_fraction: float
    guide_fallback: str
    regions: dict[str, dict[str, Any]]
    regional_fallback: list[dict[str, Any]]


def load_inputs(
    lr_inputs: LRInputs,
    mask_file: str,
    guide_files: Mapping[str, str],
    protocols: Mapping[str, Mapping[str, Any]],
) -> tuple[SubjectTensors, Evidence, np.ndarray]:
    """The participant's network inputs, the evidence its maps are checked against, and
    the upsampled LR maps ``up`` (3, X, Y, Z), from the files of the earlier steps
    (``guide_files``: registered guides on the HR grid; ``protocols``: their
    :meth:`Protocol.as_dict`)."""
    from swigapp.models.features import prepare_subject
    from swigapp.operators.acquisition import Acquisition, KSpace3D

    lr = load_maps(lr_inputs.lr_file)
    up = load_maps(lr_inputs.lr_up_file)
    record = lr_inputs.acquisition
    acq = Acquisition.from_record(record) if record else KSpace3D(up.shape, lr.shape)
    evidence = Evidence(
        lr=lr.data,
        acquisition=acq,
        guides={g: load_image(f)[0] for g, f in guide_files.items()},
        protocols={g: Protocol(**protocols[g]) for g in guide_files},
        mask=np.asarray(nib.load(mask_file).dataobj) > 0,
        lr_affine=lr.affine,
        hr_affine=up.affine,
        valid=load_valid(lr_inputs.lr_valid_file),
    )
    subject = prepare_subject(
        lr.as_dict(), evidence.guides, evidence.protocols, evidence.mask, lr_up=up.data,
        lr_valid=evidence.valid, acquisition=acq,
    )  # fmt: skip
    return subject, evidence, up.data


def predict(
    settings: MethodSettings,
    subject: SubjectTensors,
    evidence: Evidence,
    up: np.ndarray,
    request: Request,
) -> Prediction:
    """The method's maps, with adaptation as ``settings`` asks (``"auto"``: only where the
    pre-trained maps fail a data-consistency check, kept only if the adapted maps pass
    both, :func:`swigapp.autoadapt.decide`). Where maps were not acquired, a network
    method runs a second pass on LR maps whose estimates the first pass refined
    (:func:`swigapp.estimate.refine`), with the adaptation the first pass kept."""
    from swigapp.methods import run_method
    from swigapp.models.features import prepare_subject, upsample_maps

    method = settings.method
    adaptation: dict[str, Any] = {"mode": "fixed", "steps": request.options.adaptation}
    residual_input = evidence.residual(up)

    def adapted(steps: int) -> Request:
        return replace(request, options=request.options.with_adaptation(steps))

    if method_options(method, settings.options).adaptation == "auto":
        from swigapp.autoadapt import check, decide

        sr, record, adaptation = decide(
            lambda steps: run_method(method, subject, adapted(steps)),
            lambda maps: check(maps, residual_input, evidence),
        )
    else:
        sr, record = run_method(method, subject, request)
    missing = not_acquired(evidence.valid)
    refined = bool(missing and METHOD_ARCH.get(method))
    if refined:
        # the maps not acquired: their estimates as the guides shaped them, for a second pass
        acq = evidence.acquisition
        evidence = replace(evidence, lr=refine(evidence.lr, sr, missing, acq))
        up = upsample_maps(_as_dict(evidence.lr), acq)
        subject = prepare_subject(
            _as_dict(evidence.lr), evidence.guides, evidence.protocols, evidence.mask,
            lr_up=up, lr_valid=evidence.valid, acquisition=acq,
        )  # fmt: skip
        steps = int(adaptation["steps"]) if adaptation.get("kept", True) else 0
        sr, record = run_method(method, subject, adapted(steps))
    spread = record.pop("uncertainty", None)
    return Prediction(
        method, sr, spread, record, adaptation, subject, evidence, up, residual_input,
        refined=refined,
    )  # fmt: skip


def blend_blind(
    prediction: Prediction, request: Request, coverages: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray | None, float, str]:
    """Where no guide saw (``coverages``: each guide's field of view on the HR grid), the
    maps of the method run with no guide (SWIG), else the best interpolation of the LR
    maps for their acquisition (:func:`guide_weight`,
    :func:`swigapp.consistency.fallback_maps`), never detail drawn from empty guides.
    Returns (maps, spread, the brain's share that was blind, what stands there)."""
    import torch

    from swigapp.methods import run_method

    sr, spread, mask = prediction.maps, prediction.spread, prediction.evidence.mask
    method = prediction.method
    weight = guide_weight(coverages) if coverages else None
    if weight is None or not (weight < 1.0).any():
        return sr, spread, 0.0, ""
    fallback = fallback_method(method, request)
    if fallback is not None:  # a network with no guide (no adaptation), run only where it
        # is used: the networks skip the slices outside the mask
        plain_method, plain = fallback
        blind = torch.from_numpy((weight < 1.0) & mask)
        where = replace(prediction.subject.with_guides(()), mask=blind)
        alone, blind_record = (
            run_method(plain_method, where, plain) if blind.any() else (prediction.up, {})
        )
        alone_spread = blind_record.get("uncertainty")
        kind = f"the {plain_method.upper()} maps run with no guide"
    else:
        alone, alone_spread = prediction.evidence.interpolated, None
        kind = "the interpolated LR maps"
    sr = (weight * sr + (1.0 - weight) * alone).astype(np.float32)
    if spread is not None and alone_spread is not None:
        spread = (weight * spread + (1.0 - weight) * alone_spread).astype(np.float32)
    fraction = float((weight[mask] < 1.0).mean()) if mask.any() else 0.0
    return sr, spread, fraction, kind


#: How far the guard's head mask (:func:`head_mask`) reaches beyond the LR head region, in
#: LR voxels. Chosen on the validation individuals (``benchmarks.head_support``, whole
#: brains, 2 mm and 1x1x4 mm): medians of T1 HFEN 0.151 / 0.069 / 0.070 at 2 mm for
#: margins 0 / 1 / 2 (0.098 with the rule before, PD above 0, which speckled the background
#: with thousands of specks of the network's output where the noise was positive).
HEAD_MARGIN_LR_VOXELS = 1


def head_mask(
    evidence: Evidence, shape: Sequence[int], margin: int = HEAD_MARGIN_LR_VOXELS
) -> np.ndarray:
    """The head on the HR grid ``shape``, together with the brain mask (never 0 inside it):
    the LR maps' head region (:func:`swigapp.inputs.qmri.head_region`, the rule that decides
    what the input handling keeps) grown by ``margin`` LR voxels (face connectivity), each
    HR voxel taking its nearest LR voxel."""
    region = head_region(evidence.lr[0], evidence.lr[1])
    if margin > 0:
        region = ndimage.binary_dilation(region, iterations=int(margin))
    hr = upsample_interp(region.astype(np.float32), tuple(shape), order=0)
    return (hr > 0.5) | evidence.mask


def guard_prediction(
    prediction: Prediction,
    request: Request,
    coverages: Sequence[np.ndarray] = (),
    fallback: bool = True,
    head: np.ndarray | None = None,
) -> Guarded:
    """The guard between a method and the files: the blend where no guide saw
    (:func:`blend_blind`), the maps set to 0 outside the ``head`` (HR bool; None:
    :func:`head_mask`), and the regional checks with, when ``fallback``, the interpolation
    in every region whose maps explain the guides worse than it does or fail both fixed
    data-consistency checks (:func:`swigapp.consistency.guard`)."""
    sr, spread, blind_fraction, blind_kind = blend_blind(prediction, request, coverages)
    evidence = prediction.evidence
    if head is None:
        head = head_mask(evidence, sr.shape[1:])
    sr = np.where(head, sr, np.float32(0.0))
    guarded, regions, fell_back = guard(sr, prediction.up, evidence, head=head)
    if fallback:
        sr = np.where(head, guarded, np.float32(0.0)).astype(np.float32)
    if spread is not None:
        spread = np.where(head & evidence.mask, spread, np.float32(0.0)).astype(np.float32)
    return Guarded(sr, spread, blind_fraction, blind_kind, regions, fell_back if fallback else [])


def super_resolve(
    lr_inputs: LRInputs,
    mask_file: str,
    guide_files: Mapping[str, str],
    protocols: Mapping[str, Mapping[str, Any]],
    out_dir: str | Path,
    settings: MethodSettings = MethodSettings(),
    coverage_files: Sequence[str] = (),
    fallback: bool = True,
) -> dict[str, Any]:
    """HR maps by ``settings.method`` -> ``sr_file``: :func:`predict_maps`, then
    :func:`guard_maps` (the workflow runs them as two nodes, so that a change of the
    guard's settings reuses the prediction).

    ``swig``: SWIG inference after per-subject adaptation as asked; ``wmri2q``: the U-Net
    on the guides alone; ``inr``: a representation fitted to this subject. The networks
    average their predictions along every least-downsampled slice axis unless
    ``single_orientation``, and write their orientation ensemble's spread
    (``uncertainty_file``: 4D, PD a.u., T1 and T2 in s; 0 outside the brain mask; None with
    a single slice axis). ``guide_files``: registered guides on the HR grid; invalid input
    voxels (``lr_inputs.lr_valid_file``) are left out of the LR terms of adaptation, of
    the INR fit and of the residual; ``coverage_files``: the guides' field of view on the
    HR grid (:func:`register`). Returns the method, the model's name and sha256 (network
    methods), the slice axes, the adaptation losses or the INR fit summary, the adaptation
    (mode, steps and, for ``auto``, its decision with the checks before and after), the
    regional checks and fallbacks, and the LR data-consistency residual of the input and
    of the result.
    """
    predicted = predict_maps(lr_inputs, mask_file, guide_files, protocols, out_dir, settings)
    return guard_maps(
        predicted, mask_file, guide_files, protocols, out_dir, settings, coverage_files, fallback
    )


def _start_torch(settings: MethodSettings) -> None:
    """Threads and seed of a step that runs a method."""
    import torch

    if settings.method not in METHODS:
        raise ValueError(f"unknown method {settings.method!r} (choose from {', '.join(METHODS)})")
    if settings.n_threads:
        torch.set_num_threads(int(settings.n_threads))
    torch.manual_seed(settings.seed)


@timed
def predict_maps(
    lr_inputs: LRInputs,
    mask_file: str,
    guide_files: Mapping[str, str],
    protocols: Mapping[str, Mapping[str, Any]],
    out_dir: str | Path,
    settings: MethodSettings = MethodSettings(),
) -> dict[str, Any]:
    """The method's maps before the guard (:func:`predict`), written into ``out_dir``;
    returns the :class:`~swigapp.results.Predicted` record :func:`guard_maps` reads."""
    _start_torch(settings)
    subject, evidence, up = load_inputs(lr_inputs, mask_file, guide_files, protocols)
    request = settings.request(grid.voxel_sizes(evidence.hr_affine))
    prediction = predict(settings, subject, evidence, up, request)
    out, hr_affine = Path(out_dir), evidence.hr_affine  # uncompressed: read once, by the guard
    spread_file = None
    if prediction.spread is not None:
        spread_file = save_maps(out / "predicted_spread.nii", Maps(prediction.spread, hr_affine))
    lr_file, lr_up_file = lr_inputs.lr_file, lr_inputs.lr_up_file
    if prediction.refined:  # the second pass's inputs: the estimates the first pass refined
        lr_file = save_maps(out / "refined_lr_maps.nii", Maps(evidence.lr, evidence.lr_affine))
        lr_up_file = save_maps(out / "refined_lr_up_maps.nii", Maps(prediction.up, hr_affine))
    return Predicted(
        method=prediction.method,
        maps_file=save_maps(out / "predicted_maps.nii", Maps(prediction.maps, hr_affine)),
        spread_file=spread_file,
        record=prediction.record,
        adaptation=prediction.adaptation,
        residual_input=prediction.residual_input,
        lr_file=lr_file,
        lr_up_file=lr_up_file,
        acquisition=dict(lr_inputs.acquisition) if lr_inputs.acquisition else None,
        lr_valid_file=lr_inputs.lr_valid_file,
    ).to_record()


def guard_maps(
    predicted: Mapping[str, Any],
    mask_file: str,
    guide_files: Mapping[str, str],
    protocols: Mapping[str, Mapping[str, Any]],
    out_dir: str | Path,
    settings: MethodSettings = MethodSettings(),
    coverage_files: Sequence[str] = (),
    fallback: bool = True,
) -> dict[str, Any]:
    """The guard (:func:`guard_prediction`) over the maps :func:`predict_maps` wrote
    (``predicted``: its record, which names the LR inputs it ran on), then the files and
    the residuals (:func:`record_maps`; ``seconds``: both steps)."""
    pred = Predicted.from_record(predicted)
    started = time.perf_counter() - pred.seconds
    _start_torch(settings)  # where no guide saw, a guide-free network may run
    ran_on = LRInputs(pred.lr_file, pred.lr_up_file, pred.acquisition, pred.lr_valid_file)
    subject, evidence, up = load_inputs(ran_on, mask_file, guide_files, protocols)
    request = settings.request(grid.voxel_sizes(evidence.hr_affine))
    spread = load_maps(pred.spread_file).data if pred.spread_file else None
    prediction = Prediction(
        pred.method, load_maps(pred.maps_file).data, spread, dict(pred.record),
        dict(pred.adaptation), subject, evidence, up, dict(pred.residual_input),
    )  # fmt: skip
    coverages = [load_image(f)[0] for f in coverage_files]
    kept = guard_prediction(prediction, request, coverages, fallback)
    return record_maps(kept, prediction, request, out_dir, started)


def record_maps(
    kept: Guarded, prediction: Prediction, request: Request, out_dir: str | Path, started: float
) -> dict[str, Any]:
    """Write the guarded maps (``sr_file``) and their spread (``uncertainty_file``), and
    return the super-resolution step's record (:class:`swigapp.results.SuperResolution`;
    ``seconds`` since ``started``, a :func:`time.perf_counter` reading)."""

    hr_affine = prediction.evidence.hr_affine
    sr_file = save_maps(Path(out_dir) / "sr_maps.nii.gz", Maps(kept.maps, hr_affine))
    uncertainty_file = None
    if kept.spread is not None:
        spread = Maps(kept.spread, hr_affine)
        uncertainty_file = save_maps(Path(out_dir) / "uncertainty.nii.gz", spread)
    result = SuperResolution(
        method=prediction.method,
        sr_file=sr_file,
        uncertainty_file=uncertainty_file,
        **prediction.record,
        device=str(request.device),
        guide_fallback_fraction=kept.guide_fallback_fraction,
        guide_fallback=kept.guide_fallback,
        regions=kept.regions,
        regional_fallback=kept.regional_fallback,
        adaptation=prediction.adaptation,
        lr_residual_input=prediction.residual_input,
        lr_residual=prediction.evidence.residual(kept.maps),
    )
    result.seconds = time.perf_counter() - started
    return result.to_record()


@timed
def synthesize_contrasts(
    sr_file: str,
    mask_file: str,
    guide_files: Mapping[str, str],
    guide_protocols: Mapping[str, Mapping[str, Any]],
    synth_protocols: Mapping[str, Mapping[str, Any]],
    out_dir: str | Path,
) -> dict[str, Any]:
    """Contrasts from the SR maps: each guide's own (QC, with its SSIM to the registered
    acquired guide) and each requested contrast. Returns files and ``guide_ssim``."""
    from swigapp.synthesis import synthesize

    sr = load_maps(sr_file)
    maps, affine = sr.as_dict(), sr.affine
    mask = np.asarray(nib.load(mask_file).dataobj) > 0
    out = Path(out_dir)
    guide_synth, scores = {}, {}
    for name, path in guide_files.items():
        image = synthesize(maps, Protocol(**guide_protocols[name]))
        guide_synth[name] = str(save_nifti(out / f"synthguide_{name}.nii.gz", image, affine))
        scores[name] = guide_ssim(image, load_image(path)[0], mask)
    synth = {}
    for name, protocol in synth_protocols.items():
        image = synthesize(maps, Protocol(**protocol))
        synth[name] = str(save_nifti(out / f"synth_{name}.nii.gz", image, affine))
    return Synthesised(guide_synth, synth, scores).to_record()


def write_outputs(
    out_dir: str | Path,
    bids_dir: str | Path,
    subject: str,
    session: str | None,
    sources: Mapping[str, str],
    results: Mapping[str, Any],
    params: Mapping[str, Any],
    work_dir: str | Path,
) -> dict[str, Any]:
    """Publish one participant's derivatives, QC JSON, methods boilerplate (Markdown, HTML,
    BibTeX under ``log/``) and HTML report atomically.

    Returns the written paths (relative to ``out_dir``) and the QC figures.
    """
    from swigapp.io import publishing, sidecars
    from swigapp.io.files import dumps
    from swigapp.reports.boilerplate import methods_boilerplate, warnings
    from swigapp.reports.subject import (
        load_result_maps,
        page,
        participant_qc,
        render_participant,
    )

    start = time.perf_counter()
    results = {
        **results,
        "conform": Conformed.from_record(results["conform"]),
        "mask": Masked.from_record(results["mask"]),
        "registration": {
            g: GuideRegistration.from_record(r) for g, r in results["registration"].items()
        },
        "superres": SuperResolution.from_record(results["superres"]),
        "synthesis": Synthesised.from_record(results["synthesis"]),
    }
    label = f"sub-{subject}" + (f"_ses-{session}" if session else "")
    files = sidecars.participant_outputs(
        subject, session, bids_dir, sources, results, params, work_dir
    )
    timings = {"conform": results["conform"].seconds, "mask": results["mask"].seconds}
    if results.get("fit"):
        timings["fit"] = sum(float(r["seconds"]) for r in results["fit"]["series"].values())
    timings["registration"] = sum(r.seconds for r in results["registration"].values())
    timings["inference"] = results["superres"].seconds
    timings["synthesis"] = results["synthesis"].seconds
    loaded = load_result_maps(results)
    qc = participant_qc(results, timings, loaded)
    qc["Warnings"] = warnings(results)
    methods = methods_boilerplate(label, results, params)
    report = render_participant(label, results, params, qc, loaded, methods.html)
    qc["Seconds"]["writing"] = time.perf_counter() - start
    log = f"sub-{subject}/log/{label}"
    files[f"{log}_qc.json"] = dumps({"Subject": subject, "Session": session, **qc})
    files[f"{log}_methods.md"] = methods.markdown
    files[f"{log}_methods.html"] = page(f"swigapp methods: {label}", methods.html)
    files[f"{log}_methods.bib"] = methods.bibtex
    files[f"{label}.html"] = report
    publishing.init_dataset(out_dir, bids_dir)
    written = publishing.publish(files, out_dir)
    return {
        "written": publishing.relative_all(written, Path(out_dir)),
        "qc": qc,
        "seconds": time.perf_counter() - start,
    }
