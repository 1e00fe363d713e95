"""The participant-level steps, each from files to files (what a workflow node runs).

Every step reads its inputs from NIfTI files, calls the array code of the library, writes
its outputs into ``out_dir`` and returns their paths with a few figures (and its own wall
time in seconds). Intermediate maps are 4D float32 NIfTIs with volumes PD (a.u.), T1 (s),
T2 (s). Protocols travel as plain dicts (:meth:`Protocol.as_dict`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from swigapp import kspace
from swigapp.consistency import fallback_maps, guard, lr_residual
from swigapp.estimate import not_acquired, refine
from swigapp.interp import upsample_interp
from swigapp.io.bids import MAP_ORDER, load_image
from swigapp.io.files import load_maps, save_maps, save_nifti
from swigapp.methods import METHOD_ARCH, METHODS, fallback_method
from swigapp.metrics import guide_ssim
from swigapp.physics.protocol import DEFAULT_PROTOCOLS, Protocol
from swigapp.timing import timed


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
    upsampling (:func:`swigapp.io.qmri.prepare_lr_maps`). The HR grid is the LR maps' field
    of view at ``voxel_size`` (mm), by default the voxel size of ``reference_guide``. The
    acquisition model (``lr_model``: auto, kspace or slice-profile;
    :func:`swigapp.acquisition.from_metadata`, from the T1 map's sidecar) sets the initial
    upsampling: zero-filled k-space for 3D maps, a regularised least-squares inverse of the
    slice profile through-plane for 2D stacks. Returns ``lr_file`` (PD internal scale, T1/T2
    s), ``lr_up_file``, ``lr_valid_file`` (uint8, 1 where the input voxel was finite and
    non-negative, one volume per map), ``hr_shape``, ``input_quality`` (per map: counts of
    invalid voxels), ``units`` (per map: the unit decision in words), ``pd_scale``
    (reference, factor = internal / input), ``notes`` (what was accepted although
    imperfect, one line each) and ``acquisition``
    (:meth:`Acquisition.describe`, which
    :func:`swigapp.acquisition.from_description` turns back into the model).
    """
    import logging

    from swigapp.acquisition import from_metadata
    from swigapp.io.qmri import prepare_lr_maps
    from swigapp.models.features import upsample_maps

    prepared = prepare_lr_maps(map_files, map_suffixes, map_metadata)
    if prepared.notes:  # the CLI warned when it validated the inputs
        logging.getLogger("swigapp.io").info("imperfect qMRI maps: %s", "; ".join(prepared.notes))
    lr, affine = prepared.maps, prepared.affine
    if voxel_size is None:
        voxel_size = kspace.voxel_sizes(nib.load(reference_guide).affine)
    sidecar = dict((map_metadata or {}).get("T1") or {})
    acq = from_metadata(lr["PD"].shape, affine, voxel_size, sidecar, model=lr_model)
    hr_shape, hr_affine = acq.hr_shape, acq.hr_affine
    out = Path(out_dir)
    lr_file = save_maps(out / "lr_maps.nii.gz", np.stack([lr[m] for m in MAP_ORDER]), affine)
    valid = np.moveaxis(prepared.valid_stack(), 0, -1)
    lr_valid_file = str(save_nifti(out / "lr_valid.nii.gz", valid, affine))
    up = upsample_maps(lr, hr_shape, acq)
    lr_up_file = save_maps(out / "lr_up_maps.nii.gz", up, hr_affine)
    return {
        "lr_file": lr_file,
        "lr_up_file": lr_up_file,
        "lr_valid_file": lr_valid_file,
        "hr_shape": list(hr_shape),
        "input_quality": prepared.quality,
        "units": prepared.units,
        "pd_scale": prepared.pd_scale,
        "notes": list(prepared.notes),
        "acquired": list(prepared.acquired),
        "estimated": {m: u for m, u in prepared.units.items() if m not in prepared.acquired},
        "acquisition": {**acq.describe(), "lr_model": lr_model},
    }


def load_valid(lr_valid_file: str | Path | None) -> np.ndarray | None:
    """The LR validity mask (3, x, y, z) bool from :func:`conform_maps`, or None when
    there is no file or every voxel is valid (the LR terms then use every voxel)."""
    if not lr_valid_file:
        return None
    valid = np.moveaxis(np.asarray(nib.load(str(lr_valid_file)).dataobj) > 0, -1, 0)
    return None if valid.all() else valid


@timed
def make_mask(
    lr_file: str, lr_up_file: str, out_dir: str | Path, template: bool = True, seed: int = 0
) -> dict[str, Any]:
    """Brain mask on the HR grid (``mask_file``) and how it was made (``method``)."""
    from swigapp.masking import brain_mask
    from swigapp.synthesis import synthesize

    up, hr_affine = load_maps(lr_up_file)
    t1w_like = lr_affine = None
    if template:
        lr, lr_affine = load_maps(lr_file)
        t1w_like = synthesize(_as_dict(lr), DEFAULT_PROTOCOLS["T1w"])
    mask, method = brain_mask(up, hr_affine, t1w_like, lr_affine, seed=seed)
    if not mask.any():
        raise ValueError(f"{lr_file}: the brain mask is empty (PD or T1 map implausible?)")
    mask_file = str(save_nifti(Path(out_dir) / "brain_mask.nii.gz", mask, hr_affine))
    return {"mask_file": mask_file, "method": method}


@timed
def register(
    lr_up_file: str,
    mask_file: str,
    guide_file: str,
    protocol: Mapping[str, Any],
    name: str,
    out_dir: str | Path,
    transform: str = "rigid",
    seed: int = 0,
    sampling: float = 0.1,
    lr_file: str | None = None,
    full_resolution: bool = False,
) -> dict[str, Any]:
    """Register one guide to its own contrast synthesised from the upsampled LR maps.

    ``sampling``: the fraction of the target's voxels the metric samples (0.1 the app's
    default, 0.2 swigapp 0.1.0's). The last level runs at the resolution the target holds,
    that of the LR maps ``lr_file`` (:func:`swigapp.registration.final_shrink`), unless
    ``full_resolution`` or no ``lr_file`` (full resolution, as swigapp 0.2.0). Returns
    ``registered_file`` (the guide on the HR grid), ``coverage_file`` (0-1: the part of
    each HR voxel inside the guide's field of view), ``fixed_file`` (the synthesised
    target), ``transform_files`` (ANTs, guide -> qMRI space), the MI ``metric``,
    ``coverage`` (the covered fraction of the brain mask) and the last level's ``shrink``.
    """
    from swigapp.registration import final_shrink, register_guide
    from swigapp.synthesis import synthesize

    up, hr_affine = load_maps(lr_up_file)
    shrink = 1
    if lr_file is not None and not full_resolution:
        lr_zooms = kspace.voxel_sizes(nib.load(lr_file).affine)
        shrink = final_shrink(lr_zooms, kspace.voxel_sizes(hr_affine))
    mask = np.asarray(nib.load(mask_file).dataobj) > 0
    fixed = synthesize(_as_dict(up), Protocol(**protocol)) * mask
    moving, moving_affine = load_image(guide_file)
    out = Path(out_dir)
    result = register_guide(
        fixed, hr_affine, moving, moving_affine, transform, seed, out / f"{name}_xfm",
        sampling=sampling, shrink=shrink,
    )  # fmt: skip
    return {
        "registered_file": str(
            save_nifti(out / f"{name}_registered.nii.gz", result.image, hr_affine)
        ),
        "coverage_file": str(
            save_nifti(out / f"{name}_coverage.nii.gz", result.coverage, hr_affine)
        ),
        "fixed_file": str(save_nifti(out / f"{name}_target.nii.gz", fixed, hr_affine)),
        "transform_files": list(result.transforms),
        "metric": result.metric,
        "coverage": float((result.coverage[mask] > SEEN).mean()) if mask.any() else 1.0,
        "shrink": shrink,
    }


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
    from scipy import ndimage

    seen = np.max(np.stack([np.asarray(c) for c in coverages]), axis=0) > SEEN
    if seen.all():
        return np.ones(seen.shape, np.float32)
    seen = ndimage.binary_erosion(seen, iterations=COVERAGE_BAND, border_value=1)
    weight = ndimage.gaussian_filter(seen.astype(np.float32), 1.0, truncate=2.0)
    return np.where(weight > 0.999, np.float32(1.0), np.clip(weight, 0.0, 1.0))


@timed
def super_resolve(
    lr_file: str,
    lr_up_file: str,
    mask_file: str,
    guide_files: Mapping[str, str],
    protocols: Mapping[str, Mapping[str, Any]],
    out_dir: str | Path,
    model_path: str | None = None,
    adapt_steps: int | str = 0,
    seed: int = 0,
    device: str = "auto",
    n_threads: int | None = None,
    method: str = "swig",
    inr_max_steps: int | None = None,
    inr_init: str = "lr",
    inr_stop: str = "auto",
    single_orientation: bool = False,
    lr_valid_file: str | None = None,
    acquisition: Mapping[str, Any] | None = None,
    coverage_files: Sequence[str] = (),
    fallback: bool = True,
) -> dict[str, Any]:
    """HR maps by ``method`` -> ``sr_file``.

    ``swig``: SWIG inference after ``adapt_steps`` of per-subject adaptation (``"auto"``:
    only where the pre-trained maps fail a data-consistency check, kept only if the adapted
    maps pass both, :func:`swigapp.autoadapt.decide`); ``wmri2q``: the U-Net on the guides
    alone; ``inr``: a representation fitted to this subject (at most ``inr_max_steps``
    steps, over the LR maps or with ``inr_init="swig"`` over the SWIG prediction, stopped by
    ``inr_stop``). The networks average their predictions along every least-downsampled
    slice axis unless ``single_orientation``. ``guide_files``: registered guides on the HR
    grid; ``model_path``: a model.pt or a shipped model's name, or None for the method's
    default weights (the network methods also write their orientation ensemble's spread,
    ``uncertainty_file``: 4D, PD a.u., T1 and T2 in s; 0 outside the brain mask; None with a
    single slice axis); ``lr_valid_file``: the LR validity mask of :func:`conform_maps`
    (invalid input voxels are left out of the LR terms of adaptation, of the INR fit and of
    the residual); ``acquisition``: conform's record of the acquisition model (the
    residual's forward model); ``coverage_files``: the guides' field of view on the HR grid
    (:func:`register`): where no guide saw anything, the maps are those of the method run
    with no guide (SWIG), else the best interpolation of the LR maps for their acquisition
    (:func:`guide_weight`, :func:`swigapp.consistency.fallback_maps`), never detail drawn
    from empty guides. With ``fallback``, a region whose maps explain the guides worse than
    that interpolation, or that fails both fixed data-consistency checks, gets the
    interpolation (:func:`swigapp.consistency.regional_checks` and ``falls_back``). The maps
    are 0 outside the head (the LR maps' support). Returns the method, the model's name and
    sha256 (network methods), the slice axes, the adaptation losses or the INR fit summary,
    the adaptation (mode, steps and, for ``auto``, its decision with the checks before and
    after), the regional checks and fallbacks, and the LR data-consistency residual of the
    input and of the result.
    """
    import torch

    from swigapp.models.features import prepare_subject, upsample_maps
    from swigapp.models.inference import resolve_device

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r} (choose from {', '.join(METHODS)})")
    from swigapp.methods import Request, run_method

    if n_threads:
        torch.set_num_threads(int(n_threads))
    torch.manual_seed(seed)
    lr, lr_affine = load_maps(lr_file)
    up, hr_affine = load_maps(lr_up_file)
    mask = np.asarray(nib.load(mask_file).dataobj) > 0
    guides = {g: load_image(f)[0] for g, f in guide_files.items()}
    protos = {g: Protocol(**protocols[g]) for g in guide_files}
    valid = load_valid(lr_valid_file)
    from swigapp.acquisition import from_description

    acq = from_description(acquisition)
    stack = None if acq is None else acq.through_plane()
    subject = prepare_subject(
        _as_dict(lr), guides, protos, mask, lr_up=up, lr_valid=valid, stack=stack
    )
    auto = adapt_steps == "auto"
    request = Request(
        device=resolve_device(device),
        model_path=model_path,
        adapt_steps=0 if auto else int(adapt_steps),
        seed=seed,
        inr_max_steps=inr_max_steps,
        inr_init=inr_init,
        inr_stop=inr_stop,
        single_orientation=single_orientation,
        voxel_size=tuple(kspace.voxel_sizes(hr_affine)),
    )
    residual_input = lr_residual(up, lr, valid, acq)
    adaptation: dict[str, Any] = {"mode": "fixed", "steps": request.adapt_steps}
    if auto:
        from swigapp.autoadapt import check, decide

        sr, record, adaptation = decide(
            lambda steps: run_method(method, subject, replace(request, adapt_steps=steps)),
            lambda maps: check(maps, residual_input, lr, mask, guides, protos, valid, acq),
        )
    else:
        sr, record = run_method(method, subject, request)
    missing = not_acquired(valid)
    if missing and METHOD_ARCH.get(method):
        # the maps not acquired: their estimates as the guides shaped them, for a second pass
        lr = refine(lr, sr, missing, acq)
        up = upsample_maps(_as_dict(lr), sr.shape[1:], acq)
        subject = prepare_subject(
            _as_dict(lr), guides, protos, mask, lr_up=up, lr_valid=valid, stack=stack
        )
        steps = int(adaptation["steps"]) if adaptation.get("kept", True) else 0
        sr, record = run_method(method, subject, replace(request, adapt_steps=steps))
    spread = record.pop("uncertainty", None)
    blind_fraction, fallback_kind = 0.0, ""
    if coverage_files:
        weight = guide_weight([load_image(f)[0] for f in coverage_files])
        if (weight < 1.0).any():
            plain_method = fallback_method(method, request)
            if plain_method is not None:  # a network with no guide (no adaptation), run
                # only where it is used: the networks skip the slices outside the mask
                plain = replace(request, adapt_steps=0)
                if plain_method != method:  # the INR's base: the shipped SWIG, as it used
                    plain = replace(plain, model_path=None)
                blind = torch.from_numpy((weight < 1.0) & mask)
                where = replace(subject.with_guides(()), mask=blind)
                alone, blind_record = (
                    run_method(plain_method, where, plain) if blind.any() else (up, {})
                )
                alone_spread = blind_record.get("uncertainty")
                fallback_kind = f"the {plain_method.upper()} maps run with no guide"
            else:
                alone, alone_spread = fallback_maps(lr, sr.shape[1:], acq), None
                fallback_kind = "the interpolated LR maps"
            sr = (weight * sr + (1.0 - weight) * alone).astype(np.float32)
            if spread is not None and alone_spread is not None:
                spread = (weight * spread + (1.0 - weight) * alone_spread).astype(np.float32)
            blind_fraction = float((weight[mask] < 1.0).mean()) if mask.any() else 0.0
    head = upsample_interp((lr[0] > 0).astype(np.float32), sr.shape[1:], order=0) > 0.5
    sr = np.where(head, sr, np.float32(0.0))
    guarded, regions, fell_back = guard(
        sr, up, lr, (lr_affine, hr_affine), mask, guides, protos, valid, acq
    )
    if fallback:
        sr = np.where(head, guarded, np.float32(0.0)).astype(np.float32)
    extra: dict[str, Any] = {"model": None, "adapt_losses": [], "inr": None, "slice_axes": []}
    extra |= record
    sr_file = save_maps(Path(out_dir) / "sr_maps.nii.gz", sr, hr_affine)
    uncertainty_file = None
    if spread is not None:
        spread = np.where(head & mask, spread, np.float32(0.0)).astype(np.float32)
        uncertainty_file = save_maps(Path(out_dir) / "uncertainty.nii.gz", spread, hr_affine)
    return {
        "sr_file": sr_file,
        "uncertainty_file": uncertainty_file,
        "method": method,
        **extra,
        "device": str(request.device),
        "guide_fallback_fraction": blind_fraction,
        "guide_fallback": fallback_kind,
        "regions": regions,
        "regional_fallback": fell_back if fallback else [],
        "adaptation": adaptation,
        "lr_residual_input": residual_input,
        "lr_residual": lr_residual(sr, lr, valid, acq),
    }


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

    sr, affine = load_maps(sr_file)
    maps = _as_dict(sr)
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
    return {
        "guide_synth_files": guide_synth,
        "synth_files": synth,
        "guide_ssim": scores,
    }


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
    from swigapp.io import derivatives
    from swigapp.reports.boilerplate import methods_boilerplate, warnings
    from swigapp.reports.subject import (
        load_result_maps,
        page,
        participant_qc,
        render_participant,
    )

    start = time.perf_counter()
    label = f"sub-{subject}" + (f"_ses-{session}" if session else "")
    files = derivatives.participant_outputs(
        subject, session, bids_dir, sources, results, params, work_dir
    )
    timings = {key: float(results[key]["seconds"]) for key in ("conform", "mask")}
    if results.get("fit"):
        timings["fit"] = sum(float(r["seconds"]) for r in results["fit"]["series"].values())
    timings["registration"] = sum(float(r["seconds"]) for r in results["registration"].values())
    timings["inference"] = float(results["superres"]["seconds"])
    timings["synthesis"] = float(results["synthesis"]["seconds"])
    maps, mask, labels, spread = load_result_maps(results)
    qc = participant_qc(results, timings, maps, mask, labels, spread)
    qc["Warnings"] = warnings(results)
    methods = methods_boilerplate(label, results, params)
    report = render_participant(
        label, results, params, qc, maps, mask, labels, methods.html, spread
    )
    qc["Seconds"]["writing"] = time.perf_counter() - start
    log = f"sub-{subject}/log/{label}"
    files[f"{log}_qc.json"] = derivatives.dumps({"Subject": subject, "Session": session, **qc})
    files[f"{log}_methods.md"] = methods.markdown
    files[f"{log}_methods.html"] = page(f"swigapp methods: {label}", methods.html)
    files[f"{log}_methods.bib"] = methods.bibtex
    files[f"{label}.html"] = report
    derivatives.init_dataset(out_dir, bids_dir)
    written = derivatives.publish(files, out_dir)
    return {
        "written": derivatives.relative_all(written, Path(out_dir)),
        "qc": qc,
        "seconds": time.perf_counter() - start,
    }
