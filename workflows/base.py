"""Top-level workflows: the whole run (``init_swig_wf``) and one participant.

Graph of one participant::

    inputnode [-> fit_qmri, when maps are fitted from raw series] -> conform_maps
              -> brain_mask -> register_guides_wf (one node per guide) -> refine_mask
              -> register_again (where refine_mask cut the scalp off an estimated T2's mask)
              -> super_resolve -> guard_maps -> synthesize -> write_derivatives -> outputnode
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from swigapp.workflows.fit import init_register_guides_wf
from swigapp.workflows.interfaces import (
    BrainMask,
    ConformMaps,
    FitQMRI,
    GuardMaps,
    RefineMask,
    RegisterAgain,
    SuperResolve,
    Synthesize,
    WriteDerivatives,
)

from swigapp.io.bids import SubjectFiles
from swigapp.methods import DEFAULT_METHOD, METHOD_DESCRIPTIONS, method_options


@dataclass(frozen=True)
class WorkflowOptions:
    """Everything the participant graph needs besides the inputs (no global config)."""

    bids_dir: Path
    output_dir: Path
    work_dir: Path
    method: str = DEFAULT_METHOD
    model_path: str = ""
    #: The method's own options (:meth:`swigapp.methods.MethodOptions.to_record`; missing
    #: ones take their defaults).
    method_options: Mapping[str, Any] = field(default_factory=dict)
    single_orientation: bool = False
    fallback: bool = True
    seed: int = 0
    device: str = "auto"
    omp_nthreads: int = 0
    transform: str = "rigid"
    registration_sampling: float = 0.1
    registration_full_resolution: bool = False
    lr_model: str = "auto"
    voxel_size: tuple[float, ...] = ()
    template_mask: bool = True
    write_estimated: bool = False
    synth_protocols: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)


def init_swig_wf(
    subjects: Sequence[tuple[SubjectFiles, Mapping[str, Mapping[str, Any]]]],
    options: WorkflowOptions,
) -> pe.Workflow:
    """The participant-level run: one sub-workflow per (participant, session).

    ``subjects``: the validated inputs of each, with its guides' protocols (as dicts).
    """
    workflow = pe.Workflow(name="swigapp_wf", base_dir=str(options.work_dir))
    for files, protocols in subjects:
        name = f"single_subject_{files.subject}" + (
            f"_ses_{files.session}" if files.session else ""
        )
        workflow.add_nodes([init_single_subject_wf(files, protocols, options, name=f"{name}_wf")])
    return workflow


def _method_settings(options: WorkflowOptions) -> dict[str, Any]:
    """The method and its settings, as both super-resolution nodes take them."""
    return {
        "method": options.method,
        "model_path": options.model_path,
        "method_options": method_options(options.method, options.method_options).to_record(),
        "single_orientation": options.single_orientation,
        "seed": options.seed,
        "device": options.device,
        "n_threads": options.omp_nthreads,
    }


def _super_resolve_nodes(
    options: WorkflowOptions, protocols: Mapping[str, Mapping[str, Any]]
) -> tuple[pe.Node, pe.Node]:
    """The two super-resolution nodes: the method (``super_resolve``), then the guard
    (``guard_maps``; a change of its settings reuses the cached prediction)."""
    settings = _method_settings(options)
    predict = pe.Node(
        SuperResolve(protocols=dict(protocols), **settings),
        name="super_resolve",
        n_procs=max(options.omp_nthreads, 1),
        mem_gb=4.0,
    )
    guard = pe.Node(
        GuardMaps(protocols=dict(protocols), fallback=options.fallback, **settings),
        name="guard_maps",
        n_procs=max(options.omp_nthreads, 1),
        mem_gb=4.0,
    )
    return predict, guard


def _provenance_params(
    options: WorkflowOptions, protocols: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The run's parameters the derivatives' sidecars, report and methods text record."""
    params = {
        "guide_protocols": dict(protocols),
        "synth_protocols": dict(options.synth_protocols),
        "method": options.method,
        "adapt_steps": method_options(options.method, options.method_options).adaptation,
        "seed": options.seed,
        "transform": options.transform,
        "registration_sampling": options.registration_sampling,
        "registration_full_resolution": options.registration_full_resolution,
        "lr_model": options.lr_model,
        "versions": dict(options.versions),
        # the derivatives name the method that ran; io does not import the methods
        "method_descriptions": dict(METHOD_DESCRIPTIONS),
    }
    if options.write_estimated:
        params["write_estimated"] = True
    return params


def _connect_maps(
    workflow: pe.Workflow, files: SubjectFiles, inputnode: pe.Node, conform: pe.Node, sink: pe.Node
) -> None:
    """The qMRI maps into conform: the input files, or the maps fitted from the raw series
    (``files.fit_plan``) by a fit node whose record goes to the derivatives."""
    map_fields = [("maps", "maps"), ("map_suffixes", "map_suffixes"),
                  ("map_metadata", "map_metadata")]  # fmt: skip
    if files.fit_plan:
        fit = pe.Node(
            FitQMRI(raw_series=dict(files.raw_series), fit_plan=dict(files.fit_plan),
                    label=files.label),
            name="fit_qmri",
            mem_gb=2.0,
        )  # fmt: skip
        workflow.connect([
            (inputnode, fit, map_fields),
            (fit, conform, map_fields),
            (fit, sink, [("result", "fit")]),
        ])  # fmt: skip
    else:
        workflow.connect([(inputnode, conform, map_fields)])


def init_single_subject_wf(
    files: SubjectFiles,
    protocols: Mapping[str, Mapping[str, Any]],
    options: WorkflowOptions,
    name: str = "single_subject_wf",
) -> pe.Workflow:
    """Register, super-resolve, synthesise and write one participant/session.

    inputnode: ``maps``, ``map_suffixes``, ``map_metadata``, ``guide_files`` (from ``files``);
    outputnode: ``written`` (derivative paths), ``qc`` (QC figures).
    """
    guides = list(files.guides)
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(
        niu.IdentityInterface(
            fields=["maps", "map_suffixes", "map_metadata", "guide_files", "reference_guide"]
        ),
        name="inputnode",
    )
    inputnode.inputs.maps = dict(files.maps)
    inputnode.inputs.map_suffixes = dict(files.map_suffixes)
    inputnode.inputs.map_metadata = dict(files.map_metadata)
    inputnode.inputs.guide_files = dict(files.guides)
    inputnode.inputs.reference_guide = files.guides[guides[0]]
    outputnode = pe.Node(niu.IdentityInterface(fields=["written", "qc"]), name="outputnode")

    conform = pe.Node(ConformMaps(lr_model=options.lr_model), name="conform_maps", mem_gb=1.0)
    if options.voxel_size:
        conform.inputs.voxel_size = list(options.voxel_size)
    mask = pe.Node(BrainMask(template=options.template_mask, seed=options.seed), name="brain_mask")
    register_wf = init_register_guides_wf(
        guides,
        protocols,
        transform=options.transform,
        seed=options.seed,
        sampling=options.registration_sampling,
        full_resolution=options.registration_full_resolution,
    )
    refine = pe.Node(RefineMask(protocols=dict(protocols)), name="refine_mask")
    again = pe.Node(
        RegisterAgain(
            protocols=dict(protocols),
            transform=options.transform,
            seed=options.seed,
            sampling=options.registration_sampling,
            full_resolution=options.registration_full_resolution,
        ),
        name="register_again",
        mem_gb=2.0,
    )
    superres, guard = _super_resolve_nodes(options, protocols)
    synth = pe.Node(
        Synthesize(guide_protocols=dict(protocols), synth_protocols=dict(options.synth_protocols)),
        name="synthesize",
    )
    sink = pe.Node(
        WriteDerivatives(
            out_dir=str(options.output_dir),
            bids_dir=str(options.bids_dir),
            subject=files.subject,
            session=files.session or "",
            sources={**files.maps, **files.guides},
            params=_provenance_params(options, protocols),
        ),
        name="write_derivatives",
        overwrite=True,  # always publish: a re-run restores deleted or edited outputs
    )
    _connect_maps(workflow, files, inputnode, conform, sink)
    workflow.connect([
        (inputnode, conform, [("reference_guide", "reference_guide")]),
        (conform, mask, [("lr_file", "lr_file"), ("lr_up_file", "lr_up_file"),
                         ("lr_valid_file", "lr_valid_file")]),
        (conform, register_wf, [("lr_file", "inputnode.lr_file"),
                                ("lr_up_file", "inputnode.lr_up_file")]),
        (mask, register_wf, [("mask_file", "inputnode.mask_file")]),
        (inputnode, register_wf, [("guide_files", "inputnode.guide_files")]),
        (conform, superres, [("lr_file", "lr_file"), ("lr_up_file", "lr_up_file"),
                             ("lr_valid_file", "lr_valid_file"),
                             ("acquisition", "acquisition")]),
        (mask, refine, [("result", "mask")]),
        (conform, refine, [("lr_valid_file", "lr_valid_file")]),
        (register_wf, refine, [("outputnode.registrations", "registrations")]),
        (refine, again, [("result", "mask")]),
        (register_wf, again, [("outputnode.registrations", "registrations")]),
        (conform, again, [("lr_file", "lr_file"), ("lr_up_file", "lr_up_file")]),
        (inputnode, again, [("guide_files", "guide_files")]),
        (refine, superres, [("mask_file", "mask_file")]),
        (again, superres, [("registrations", "registrations")]),
        (superres, guard, [("result", "prediction")]),
        (refine, guard, [("mask_file", "mask_file")]),
        (again, guard, [("registrations", "registrations")]),
        (guard, synth, [("sr_file", "sr_file")]),
        (refine, synth, [("mask_file", "mask_file")]),
        (again, synth, [("registrations", "registrations")]),
        (conform, sink, [("result", "conform")]),
        (refine, sink, [("result", "mask")]),
        (again, sink, [("registrations", "registrations")]),
        (guard, sink, [("result", "superres")]),
        (synth, sink, [("result", "synthesis")]),
        (sink, outputnode, [("written", "written"), ("qc", "qc")]),
    ])  # fmt: skip
    return workflow
