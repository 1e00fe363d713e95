"""The Nipype graph is built for a dataset without running it: nodes and connections."""

from pathlib import Path

from swigapp.workflows.base import WorkflowOptions, init_swig_wf

from swigapp.inputs.bundle import load_inputs
from swigapp.io.bids import find_inputs, layout


def test_graph_nodes_and_connections(tiny_dataset, tmp_path):
    bids = layout(tiny_dataset)
    subjects = []
    for label in ("01", "02"):
        files = find_inputs(bids, label, guides=("T1w", "T2w", "FLAIR"))
        protocols = {g: p.as_dict() for g, p in load_inputs(files).protocols.items()}
        subjects.append((files, protocols))
    options = WorkflowOptions(
        bids_dir=Path(tiny_dataset), output_dir=tmp_path / "out", work_dir=tmp_path / "work",
        synth_protocols={}, method_options={"adapt_steps": 3}, seed=4,
    )  # fmt: skip
    wf = init_swig_wf(subjects, options)
    from nipype.pipeline.engine.utils import _remove_nonjoin_identity_nodes

    # the graph Nipype executes: flattened, identity (input/output) nodes bypassed
    graph = _remove_nonjoin_identity_nodes(wf._create_flat_graph())
    names = {n.fullname for n in graph.nodes()}
    for label in ("01", "02"):
        prefix = f"swigapp_wf.single_subject_{label}_wf."
        nodes = ["conform_maps", "brain_mask", "refine_mask", "register_again", "super_resolve",
                 "guard_maps", "synthesize", "write_derivatives"]  # fmt: skip
        nodes += [f"register_guides_wf.register_{g}" for g in ("T1w", "T2w", "FLAIR")]
        for node in nodes:
            assert prefix + node in names, node
    edges = {
        (a.fullname.split(".")[-1], b.fullname.split(".")[-1]): data["connect"]
        for a, b, data in graph.edges(data=True)
        if ".single_subject_01_wf." in a.fullname
    }
    assert ("lr_up_file", "lr_up_file") in edges[("conform_maps", "register_T1w")]
    assert ("mask_file", "mask_file") in edges[("brain_mask", "register_FLAIR")]
    # after registration, the mask is cut by a guide where PD was estimated, and every later
    # step reads that mask
    assert edges[("brain_mask", "refine_mask")] == [("result", "mask")]
    assert ("out", "registrations") in edges[("merge_registrations", "refine_mask")]
    assert ("lr_valid_file", "lr_valid_file") in edges[("conform_maps", "refine_mask")]
    for step in ("super_resolve", "guard_maps", "synthesize"):
        assert ("mask_file", "mask_file") in edges[("refine_mask", step)]
        assert ("brain_mask", step) not in edges
    assert ("result", "mask") in edges[("refine_mask", "write_derivatives")]
    assert ("lr_valid_file", "lr_valid_file") in edges[("conform_maps", "brain_mask")]
    assert ("lr_valid_file", "lr_valid_file") in edges[("conform_maps", "super_resolve")]
    # where the cut took the scalp off an estimated T2's mask the guides are registered
    # again; every later step reads those registrations
    assert edges[("refine_mask", "register_again")] == [("result", "mask")]
    assert ("out", "registrations") in edges[("merge_registrations", "register_again")]
    again = next(n for n in graph.nodes() if n.fullname.endswith("01_wf.register_again"))
    assert set(again.inputs.guide_files) == {"T1w", "T2w", "FLAIR"} and again.inputs.seed == 4
    for step in ("super_resolve", "guard_maps", "synthesize", "write_derivatives"):
        assert ("registrations", "registrations") in edges[("register_again", step)]
        assert ("merge_registrations", step) not in edges
    # the guard is its own node: a change of its settings reuses the cached prediction
    assert edges[("super_resolve", "guard_maps")] == [("result", "prediction")]
    assert ("sr_file", "sr_file") in edges[("guard_maps", "synthesize")]
    assert ("result", "superres") in edges[("guard_maps", "write_derivatives")]
    assert ("super_resolve", "synthesize") not in edges
    assert ("result", "synthesis") in edges[("synthesize", "write_derivatives")]
    # no subject's node feeds another subject's
    for a, b in graph.edges():
        assert a.fullname.split(".")[1] == b.fullname.split(".")[1]
    superres = next(n for n in graph.nodes() if n.fullname.endswith("01_wf.super_resolve"))
    assert superres.inputs.method_options == {"adapt_steps": 3} and superres.inputs.seed == 4
    assert set(superres.inputs.protocols) == {"T1w", "T2w", "FLAIR"}
    guard = next(n for n in graph.nodes() if n.fullname.endswith("01_wf.guard_maps"))
    assert guard.inputs.method_options == {"adapt_steps": 3} and guard.inputs.fallback
