"""``swigapp bids_dir output_dir {participant,group}``: the BIDS App entry point.

Everything about the inputs is checked before any heavy work or any write to the output
folder; then the Nipype graph runs with the chosen plugin. Exit codes: 0 success, 1 a
processing step failed, 2 bad command line (argparse), 3 invalid input or output folder.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swigapp.cli.parser import build_parser, default_nprocs
from swigapp.io.bids import InputError
from swigapp.io.publishing import OutputError, check_output_dataset

if TYPE_CHECKING:
    from swigapp.workflows.base import WorkflowOptions

LOG = logging.getLogger("swigapp")

EXIT_FAILED, EXIT_INPUT = 1, 3
#: Seconds between the MultiProc plugin's looks at its workers (Nipype's default: 2).
POLL_SECONDS = "0.5"


def _early_environment() -> None:
    """Set before ANTs/ITK or Nipype are imported: single-threaded, reproducible ANTs
    registration (parallelism comes from running guides side by side) and no Nipype
    telemetry call to the network."""
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")
    os.environ.setdefault("NIPYPE_NO_ET", "1")


def _inside(child: Path, parent: Path) -> bool:
    child, parent = child.resolve(), parent.resolve()
    return child == parent or parent in child.parents


def _load_json_arg(value: str | Path, what: str) -> Any:
    text = str(value)
    path = Path(text)
    try:
        source = path.read_text() if path.exists() else text
        return json.loads(source)
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{what} {text!r}: not valid JSON ({err})") from err


def check_paths(bids_dir: Path, output_dir: Path, work_dir: Path | None) -> None:
    """The input is a BIDS dataset; neither output nor work folder lies inside it."""
    if not bids_dir.is_dir():
        raise InputError(f"{bids_dir}: the BIDS folder does not exist")
    if not (bids_dir / "dataset_description.json").exists():
        raise InputError(f"{bids_dir}: not a BIDS dataset (no dataset_description.json)")
    if _inside(output_dir, bids_dir):
        raise InputError(
            f"{output_dir}: the output folder is inside the input dataset {bids_dir}; "
            "the input is never written to (use e.g. BIDS_DIR/../derivatives/swigapp)"
        )
    if work_dir is not None and _inside(work_dir, bids_dir):
        raise InputError(f"{work_dir}: the work folder is inside the input dataset {bids_dir}")
    check_output_dataset(output_dir)


def synthesis_protocols(names: Sequence[str], path: Path | None) -> dict[str, dict[str, Any]]:
    """Protocols (as dicts) for the contrasts to synthesise: shipped 3T defaults, then the
    entries of ``path`` (JSON/YAML of BIDS-style fields per contrast) on top."""
    from swigapp.physics.protocol import DEFAULT_PROTOCOLS, Protocol, ProtocolError, load_mapping

    extra: dict[str, Any] = {}
    if path is not None:
        try:
            extra, _ = load_mapping(path, None)
        except ProtocolError as err:
            raise InputError(str(err)) from err
    out = {}
    for name in names:
        source = f"{path} [{name}]" if name in extra else f"default {name}"
        try:
            if name in extra:
                base = DEFAULT_PROTOCOLS[name].to_sidecar() if name in DEFAULT_PROTOCOLS else {}
                out[name] = Protocol.from_sidecar({**base, **extra[name]}, source=source).as_dict()
            elif name in DEFAULT_PROTOCOLS:
                out[name] = DEFAULT_PROTOCOLS[name].as_dict()
            else:
                raise InputError(
                    f"--synthesize {name}: no built-in protocol for {name!r} "
                    f"(built in: {', '.join(DEFAULT_PROTOCOLS)}); give it in --synth-protocol"
                )
        except ProtocolError as err:
            raise InputError(str(err)) from err
    return out


def collect_subjects(args: Any) -> list[tuple[Any, dict[str, dict[str, Any]]]]:
    """Find and fully validate every selected participant/session before any processing."""
    from swigapp.inputs.bundle import load_inputs
    from swigapp.io.bids import check_label, find_inputs, layout
    from swigapp.io.naming import bids_uri
    from swigapp.physics.protocol import ProtocolError, load_mapping

    bids = layout(args.bids_dir)
    available = sorted(bids.get_subjects())
    if args.participant_label:
        labels = [check_label(label) for label in args.participant_label]
        missing = [label for label in labels if label not in available]
        if missing:
            raise InputError(
                f"{args.bids_dir}: participant(s) {', '.join(missing)} not in the dataset "
                f"(available: {', '.join(available) or 'none'})"
            )
    else:
        labels = available
    if not labels:
        raise InputError(f"{args.bids_dir}: the dataset has no participants")
    sessions = (
        [check_label(s, "session") for s in args.session_label] if args.session_label else None
    )
    filters = (
        _load_json_arg(args.bids_filter_file, "--bids-filter-file")
        if (args.bids_filter_file)
        else {}
    )
    if not isinstance(filters, dict) or not all(isinstance(v, dict) for v in filters.values()):
        raise InputError(
            f"{args.bids_filter_file}: expected {{input: {{entity: value}}}} (qmri, T1w, ...)"
        )
    overrides = None
    if args.protocol_overrides:
        try:
            overrides, _ = load_mapping(args.protocol_overrides, None)
        except ProtocolError as err:
            raise InputError(str(err)) from err
    subjects = []
    for label in labels:
        found = bids.get_sessions(subject=label) or [None]
        chosen = [s for s in found if sessions is None or s in sessions]
        if not chosen:
            raise InputError(f"sub-{label}: none of the sessions {', '.join(sessions or [])}")
        for session in chosen:
            files = find_inputs(
                bids, label, session, guides=args.guides, filters=filters,
                fit_qmri=args.fit_qmri,
            )  # fmt: skip
            bundle = load_inputs(files, overrides)
            protocols = {}
            for g, protocol in bundle.protocols.items():
                # provenance names the sidecar by BIDS URI: no machine-specific paths
                source = bids_uri(files.guides[g], args.bids_dir)
                if overrides and g in overrides:
                    source += f" (overrides: {args.protocol_overrides.name})"
                protocols[g] = protocol.with_source(source).as_dict()
            subjects.append((files, protocols))
            LOG.info("%s: inputs valid (guides %s)", files.label, ", ".join(files.guides))
            if files.fit_plan:
                fitted = ", ".join(f"{m} from {k}" for m, k in files.fit_plan.items())
                print(f"swigapp: {files.label}: maps fitted from raw series: {fitted}", flush=True)
    return subjects


def check_model(path: Path | None, method: str) -> str:
    """'' for the method's default weights, a shipped model's name (its hash checked), else
    the absolute path of a loadable model.pt; the architecture must suit ``method``
    (SwigNet for swig, the U-Net for wmri2q)."""
    from swigapp.methods import METHOD_ARCH
    from swigapp.models.shipped import load_shipped, shipped_name
    from swigapp.models.train import load_model

    if path is None:
        return ""
    if METHOD_ARCH.get(method) is None:
        raise InputError(
            f"{path}: --model does not apply to --method {method} (it runs no trained network)"
        )
    shipped = shipped_name(path)
    try:
        model = load_shipped(shipped) if shipped else load_model(path)
    except FileNotFoundError as err:
        raise InputError(f"{path}: model file not found") from err
    except Exception as err:  # torch raises many types for a bad file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{path}: cannot load the model ({first})") from err
    arch = METHOD_ARCH[method]
    if model.config.arch != arch:
        raise InputError(
            f"{path}: a {model.config.arch} network, but --method {method} needs a {arch}"
        )
    return shipped or str(path.absolute())


def _nipype_logging(verbose: int, work_dir: Path) -> dict[str, str]:
    """Nipype's own log at WARNING (INFO with -vv), through its handlers only.

    Worker processes read it from a nipype.cfg in the work dir (``NIPYPE_CONFIG_DIR``,
    unless the user set one). Returns the logging section.
    """
    level = "INFO" if verbose >= 2 else "WARNING"
    section = {f"{k}_level": level for k in ("workflow", "interface", "utils")}
    if "NIPYPE_CONFIG_DIR" not in os.environ:
        cfg_dir = work_dir / ".nipype"
        cfg_dir.mkdir(parents=True, exist_ok=True)
        lines = ["[logging]", *(f"{k} = {v}" for k, v in section.items())]
        (cfg_dir / "nipype.cfg").write_text("\n".join(lines) + "\n")
        os.environ["NIPYPE_CONFIG_DIR"] = str(cfg_dir)
    from nipype import config
    from nipype import logging as nlogging

    config.update_config({"logging": section})
    nlogging.update_logging(config)
    for name in ("nipype.workflow", "nipype.interface", "nipype.utils"):
        logging.getLogger(name).propagate = False
    return section


def _progress(node: Any, status: str) -> None:
    if status in ("start", "end", "exception"):
        word = {"start": "started", "end": "done", "exception": "FAILED"}[status]
        name = node.fullname.removeprefix("swigapp_wf.")
        print(f"[swigapp {time.strftime('%H:%M:%S')}] {name}: {word}", flush=True)


def run_participant(args: Any) -> int:
    """The participant level; returns the exit code."""
    from swigapp.io.publishing import clean_stale
    from swigapp.workflows.base import init_swig_wf

    check_paths(args.bids_dir, args.output_dir, args.work_dir)
    if not args.skip_bids_validation:
        validate_dataset(args.bids_dir)
    subjects = collect_subjects(args)
    options = workflow_options(args)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    workflow = init_swig_wf(subjects, options)
    workflow.config["logging"] = _nipype_logging(args.verbose, args.work_dir)
    workflow.config["execution"] = {
        "crashdump_dir": str(args.work_dir / "crash"),
        "crashfile_format": "txt",
        "stop_on_first_crash": str(args.stop_on_first_crash).lower(),
        "remove_unnecessary_outputs": "false",
    }
    plugin_args = plugin_settings(args, workflow.config["execution"])
    args.output_dir.mkdir(parents=True, exist_ok=True)
    clean_stale(args.output_dir)
    print(
        f"swigapp: {len(subjects)} participant run(s), plugin {args.plugin}, work dir "
        f"{args.work_dir}",
        flush=True,
    )
    try:
        workflow.run(plugin=args.plugin, plugin_args=plugin_args)
    except RuntimeError as err:
        print(
            f"swigapp: error: processing failed ({str(err).splitlines()[0]}); crash files in "
            f"{args.work_dir / 'crash'}; re-run with the same --work-dir to resume",
            file=sys.stderr,
        )
        return EXIT_FAILED
    for files, _ in subjects:
        _warn(args.output_dir, files.subject, files.label)
        print(f"swigapp: {files.label}: report {args.output_dir / (files.label + '.html')}")
    print(f"swigapp: derivatives in {args.output_dir}")
    return 0


def validate_dataset(bids_dir: Path) -> None:
    """The BIDS validator's verdict on the input: InputError naming the first errors; a
    warning when the validator is not installed."""
    from swigapp.io.bids import run_validator

    errors = run_validator(bids_dir)
    if errors is None:
        LOG.warning("bids-validator-deno is not installed; skipping BIDS validation")
    elif errors:
        shown = "; ".join(errors[:5])
        raise InputError(
            f"{bids_dir}: the BIDS validator found {len(errors)} error(s): {shown} "
            "(fix them, or use --skip-bids-validation)"
        )


def workflow_options(args: Any) -> WorkflowOptions:
    """The participant workflow's options from the parsed command line, after the checks
    that need no data (synthesis protocols, model file, method options, device)."""
    from swigapp.io.publishing import software_versions
    from swigapp.methods import foreign_options, method_options
    from swigapp.models.inference import resolve_device
    from swigapp.workflows.base import WorkflowOptions

    synth = synthesis_protocols(args.synthesize, args.synth_protocol)
    model_path = check_model(args.model, args.method)
    foreign = foreign_options(args.method, vars(args))
    if foreign:
        raise InputError(foreign)
    try:
        resolve_device(args.device)
    except RuntimeError as err:
        raise InputError(str(err)) from err
    nprocs = default_nprocs(args.nprocs)
    return WorkflowOptions(
        bids_dir=args.bids_dir,
        output_dir=args.output_dir,
        work_dir=args.work_dir,
        method=args.method,
        model_path=model_path,
        method_options=method_options(args.method, vars(args)).to_record(),
        single_orientation=args.single_orientation,
        fallback=not args.no_fallback,
        seed=args.seed,
        device=args.device,
        omp_nthreads=args.omp_nthreads or min(nprocs, 8),
        transform=args.registration,
        registration_sampling=args.registration_sampling,
        registration_full_resolution=args.registration_full_resolution,
        lr_model=args.lr_model,
        voxel_size=tuple(args.output_resolution or ()),
        template_mask=not args.no_template_mask,
        write_estimated=args.write_estimated,
        synth_protocols=synth,
        versions=software_versions(),
    )


def plugin_settings(args: Any, execution: dict[str, Any]) -> dict[str, Any]:
    """The Nipype plugin's arguments (``--plugin-args`` with the local defaults);
    ``execution``: the workflow's execution config, whose poll interval a local pool
    shortens."""
    plugin_args: dict[str, Any] = {}
    if args.plugin_args:
        plugin_args = _load_json_arg(args.plugin_args, "--plugin-args")
        if not isinstance(plugin_args, dict):
            raise InputError(f"--plugin-args {args.plugin_args!r}: expected a JSON object")
    if args.plugin == "MultiProc":
        plugin_args.setdefault("n_procs", default_nprocs(args.nprocs))
        # fresh worker processes: forking a parent that already runs torch/OpenMP threads
        # can deadlock the children
        plugin_args.setdefault("mp_context", "forkserver")
        # Nipype's default 2 s between looks at finished nodes cost ~1 s per step of a
        # participant (~6 s of a 1 mm run); a local pool is cheap to look at
        execution["poll_sleep_duration"] = POLL_SECONDS
        if args.mem:
            plugin_args.setdefault("memory_gb", args.mem)
    if args.plugin in ("MultiProc", "Linear"):
        plugin_args.setdefault("status_callback", _progress)
    if args.plugin.startswith("SLURM") and "LOGNAME" not in os.environ:
        import getpass

        os.environ["LOGNAME"] = getpass.getuser()  # Nipype's SLURM plugin reads it
    return plugin_args


def _warn(output_dir: Path, subject: str, label: str) -> None:
    """One warning line per QC warning of a participant (its QC JSON's ``Warnings``: data
    consistency, guide agreement, guide coverage and fallback), but imperfect input, which
    was reported when the inputs were checked."""
    from swigapp.reports.boilerplate import IMPERFECT_INPUT

    qc_file = output_dir / f"sub-{subject}" / "log" / f"{label}_qc.json"
    try:
        qc = json.loads(qc_file.read_text())
    except (OSError, ValueError):
        return
    for warning in qc.get("Warnings", []):
        if not warning.startswith(IMPERFECT_INPUT):
            LOG.warning("%s: %s", label, warning)


def run_group(args: Any) -> int:
    """The group level; returns the exit code."""
    from swigapp.group import GroupError, run_group

    if not args.output_dir.is_dir():
        raise InputError(f"{args.output_dir}: no such folder; run the participant level first")
    from swigapp.io.bids import check_label

    labels = None
    if args.participant_label:
        labels = [check_label(label) for label in args.participant_label]
    try:
        written = run_group(args.output_dir, labels)
    except GroupError as err:
        raise InputError(str(err)) from err
    for path in written:
        print(f"swigapp: wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``swigapp``; returns the exit code."""
    _early_environment()
    args = build_parser().parse_args(argv)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    args.bids_dir = args.bids_dir.absolute()
    args.output_dir = args.output_dir.absolute()
    args.work_dir = args.work_dir.absolute()
    try:
        if args.analysis_level == "participant":
            return run_participant(args)
        return run_group(args)
    except (InputError, OutputError) as err:
        print(f"swigapp: error: {' '.join(str(err).split())}", file=sys.stderr)
        return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
