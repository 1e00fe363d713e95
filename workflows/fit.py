"""The guide-registration workflow (``init_register_guides_wf``): one registration node per
guide, in parallel; the brain mask is a node of the participant graph (:mod:`.base`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from swigapp.workflows.interfaces import RegisterGuide


def init_register_guides_wf(
    guides: Sequence[str],
    protocols: Mapping[str, Mapping[str, Any]],
    transform: str = "rigid",
    seed: int = 0,
    sampling: float = 0.1,
    full_resolution: bool = False,
    name: str = "register_guides_wf",
) -> pe.Workflow:
    """Register each guide (one node per guide, run in parallel) to the qMRI space.

    inputnode: ``lr_file``, ``lr_up_file``, ``mask_file``, ``guide_files`` (dict name ->
    path);
    outputnode: ``registrations`` (list of RegisterGuide results, in ``guides`` order).
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(
        niu.IdentityInterface(fields=["lr_file", "lr_up_file", "mask_file", "guide_files"]),
        name="inputnode",
    )
    outputnode = pe.Node(niu.IdentityInterface(fields=["registrations"]), name="outputnode")
    merge = pe.Node(niu.Merge(len(guides)), name="merge_registrations")
    for i, guide in enumerate(guides, start=1):
        node = pe.Node(
            RegisterGuide(
                guide_name=guide,
                protocol=dict(protocols[guide]),
                transform=transform,
                sampling=sampling,
                full_resolution=full_resolution,
                seed=seed,
            ),
            name=f"register_{guide}",
            n_procs=1,
            mem_gb=2.0,
        )
        workflow.connect(
            [
                (inputnode, node, [("lr_file", "lr_file"), ("lr_up_file", "lr_up_file")]),
                (inputnode, node, [("mask_file", "mask_file")]),
                (inputnode, node, [(("guide_files", _pick, guide), "guide_file")]),
                (node, merge, [("result", f"in{i}")]),
            ]
        )
    workflow.connect(merge, "out", outputnode, "registrations")
    return workflow


def _pick(mapping: dict, key: str) -> str:
    """Value of ``key`` in ``mapping`` (used in connections; Nipype runs it standalone)."""
    return mapping[key]
