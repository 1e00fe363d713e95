"""The BIDS derivatives dataset swigapp writes: names from entities, sidecars, atomic writes.

Publishing protocol (:func:`publish`), safe against a run killed at any moment:

1. A participant's files are staged in a hidden ``.swigapp-staging-*`` folder of the
   output dataset, whose ``owner.json`` names the writing process (host, pid, process
   start time, boot and pid-namespace ids, creation time).
2. When all are staged, the participant's completion marker, its QC JSON
   ``sub-X/log/sub-X[_ses-Y]_qc.json``, is removed if a previous run left one: from here
   on the participant reads as incomplete.
3. Each other file is moved into place by an atomic rename (a reader sees the previous
   file or the complete new one, never half a file), then the marker, last.

A participant is complete if and only if its marker exists (:func:`participants`); the
group level leaves out (or, asked for by label, refuses) the others. A killed run leaves
its staging folder; :func:`clean_stale` removes it when its owner process is gone from
this machine, or after :data:`STALE_AFTER_S` when the owner ran elsewhere (another node
of a cluster sharing the output) or is unknown, never while another run is writing.
Contents are deterministic (no dates, no work-dir paths), so the same inputs, seed and
device give byte-identical files.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swigapp._version import __version__
from swigapp.io.bids import MAP_ORDER, MAP_SUFFIX
from swigapp.io.files import atomic_write_text
from swigapp.uncertainty import describe

if TYPE_CHECKING:
    import numpy as np

PIPELINE = "swigapp"
BIDS_VERSION = "1.10.0"
CODE_URL = "https://github.com/swigapp/swigapp"
#: Files of the output that BIDS does not describe (reports, logs, the group table).
BIDSIGNORE = (
    "*.html", "sub-*/log", "group_qc.tsv", "*_xfm.mat", "*_xfm.json", "*_fitresidual.nii.gz",
    "*_fitresidual.json",
)  # fmt: skip
BIDSIGNORE_TEXT = "\n".join(BIDSIGNORE) + "\n"
MAP_UNITS = {"PD": "arbitrary", "T1": "s", "T2": "s"}
#: A participant's completion marker, its QC JSON: ``sub-X/log/sub-X[_ses-Y]_qc.json``.
MARKER_SUFFIX = "_qc.json"
STAGING_PREFIX = ".swigapp-staging-"
#: The file of a staging folder naming the process that writes it.
OWNER_FILE = "owner.json"
#: Age after which a staging folder whose owner cannot be checked (another host, or no
#: readable owner) counts as left behind; publishing takes seconds.
STALE_AFTER_S = 24 * 3600.0
#: Test hook: seconds to sleep before each rename of :func:`publish` (unset in production).
PUBLISH_DELAY_ENV = "SWIGAPP_TEST_PUBLISH_DELAY"

LOG = logging.getLogger(__name__)


class OutputError(ValueError):
    """The output folder cannot hold swigapp's derivatives."""


def bids_uri(path: str | Path, bids_dir: str | Path, dataset: str = "raw") -> str:
    """``bids:<dataset>:<path relative to the dataset root>`` for a file of the input dataset."""
    return f"bids:{dataset}:{Path(path).absolute().relative_to(Path(bids_dir).absolute())}"


def entity_name(label: str, suffix: str, ext: str = ".nii.gz", **entities: str) -> str:
    """``<label>[_key-value...]_<suffix><ext>``; ``label`` is ``sub-X[_ses-Y]``."""
    parts = [label, *(f"{k}-{v}" for k, v in entities.items() if v)]
    return "_".join([*parts, suffix]) + ext


def subject_dir(out_dir: str | Path, subject: str, session: str | None) -> Path:
    """``out_dir/sub-X[/ses-Y]/anat``."""
    base = Path(out_dir) / f"sub-{subject}"
    return (base / f"ses-{session}" if session else base) / "anat"


def container() -> dict[str, str] | None:
    """GeneratedBy.Container when running in the swigapp image (set by its Dockerfile)."""
    tag = os.environ.get("SWIGAPP_CONTAINER")
    return {"Type": "docker", "Tag": tag} if tag else None


def dumps(payload: Mapping[str, Any]) -> str:
    """Deterministic JSON text (indent 2, insertion order, trailing newline)."""
    return json.dumps(payload, indent=2) + "\n"


def check_output_dataset(out_dir: str | Path) -> Path:
    """The output's dataset_description.json path; OutputError if another pipeline's."""
    desc_path = Path(out_dir) / "dataset_description.json"
    if desc_path.exists():
        try:
            existing = json.loads(desc_path.read_text())
        except json.JSONDecodeError as err:
            raise OutputError(f"{desc_path}: not valid JSON ({err})") from err
        names = [g.get("Name") for g in existing.get("GeneratedBy", [])]
        if PIPELINE not in names:
            raise OutputError(
                f"{desc_path}: the output folder holds another pipeline's dataset "
                f"({', '.join(map(str, names))})"
            )
    return desc_path


def init_dataset(out_dir: str | Path, bids_dir: str | Path) -> Path:
    """Create (or check) the derivatives dataset root: dataset_description.json, .bidsignore.

    An existing dataset_description.json of another pipeline is refused. Safe for concurrent
    runs sharing the output: each file is rewritten only when its content differs, by an
    atomic rename, so a reader never sees half a file.
    """
    out = Path(out_dir)
    desc_path = check_output_dataset(out)
    generated: dict[str, Any] = {"Name": PIPELINE, "Version": __version__, "CodeURL": CODE_URL}
    if container():
        generated["Container"] = container()
    description = {
        "Name": "swigapp: super-resolved quantitative maps",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [generated],
        "SourceDatasets": [{"URL": "bids:raw:"}],
        "DatasetLinks": {"raw": Path(bids_dir).absolute().as_uri()},
        "HowToAcknowledge": "Cite the SWIG qMRI super-resolution method and swigapp.",
    }
    for path, text in ((desc_path, dumps(description)), (out / ".bidsignore", BIDSIGNORE_TEXT)):
        try:
            unchanged = path.read_text() == text
        except (OSError, UnicodeDecodeError):
            unchanged = False
        if not unchanged:
            atomic_write_text(path, text)
    return desc_path


def label_of(name: str) -> str:
    """``sub-X[_ses-Y]`` from a file or folder name of the output (``sub-01_ses-a_qc.json``);
    '' when it names no participant."""
    parts = Path(name).name.split(".")[0].split("_")
    if not parts[0].startswith("sub-"):
        return ""
    return "_".join(parts[:2]) if len(parts) > 1 and parts[1].startswith("ses-") else parts[0]


def marker_path(out_dir: str | Path, label: str) -> Path:
    """The completion marker of ``label`` (``sub-X[_ses-Y]``): ``sub-X/log/<label>_qc.json``."""
    return Path(out_dir) / label.split("_")[0] / "log" / f"{label}_qc.json"


def is_marker(rel: str | Path) -> bool:
    """Whether ``rel`` (relative to the output) is a participant's completion marker."""
    parts = Path(rel).parts
    return (
        len(parts) == 3
        and parts[0].startswith("sub-")
        and parts[1] == "log"
        and parts[2].startswith(parts[0] + "_")
        and parts[2].endswith(MARKER_SUFFIX)
    )


def participants(out_dir: str | Path) -> tuple[list[Path], list[str]]:
    """The published participants of the output: (markers of the complete ones, sorted;
    labels ``sub-X[_ses-Y]`` of those with outputs but no marker: interrupted or still
    being written, sorted)."""
    out = Path(out_dir)
    markers = sorted(p for p in out.glob(f"sub-*/log/sub-*{MARKER_SUFFIX}") if p.is_file())
    seen = {label_of(p.parent.name) for p in out.glob("sub-*/anat")}
    seen |= {f"{p.parent.parent.name}_{p.parent.name}" for p in out.glob("sub-*/ses-*/anat")}
    seen |= {label_of(p.name) for p in out.glob("sub-*/log/sub-*")}
    seen |= {label_of(p.name) for p in out.glob("sub-*.html")}
    complete = {label_of(p.name) for p in markers}
    return markers, sorted(label for label in seen - complete if label)


def _proc_start(pid: int) -> int | None:
    """A process's start time (clock ticks since boot, Linux), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _machine_ids() -> tuple[str | None, str | None]:
    """This kernel's boot id and this process's pid namespace (Linux), None where unknown:
    containers on one host may share a hostname but not pids."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = None
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = None
    return boot, namespace


def owner_record() -> dict[str, Any]:
    """Who owns a staging folder: this process (host, pid, boot and pid namespace ids,
    process start time) and when it was made (epoch seconds)."""
    pid = os.getpid()
    boot, namespace = _machine_ids()
    return {
        "host": socket.gethostname(),
        "boot_id": boot,
        "pid_namespace": namespace,
        "pid": pid,
        "process_start": _proc_start(pid),
        "created": time.time(),
    }


def owner_alive(owner: Mapping[str, Any]) -> bool | None:
    """True/False when ``owner`` (an :func:`owner_record`) is a process of this machine and
    pid namespace that is running/gone (a reused pid counts as gone); None when that cannot
    be told (another host or container)."""
    here = owner_record()
    if any(owner.get(k) != here[k] for k in ("host", "boot_id", "pid_namespace")):
        return None
    try:
        pid = int(owner["pid"])
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    start = owner.get("process_start")
    return start is None or _proc_start(pid) in (None, start)


def make_staging(out_dir: str | Path) -> Path:
    """A new staging folder in ``out_dir`` with its :data:`OWNER_FILE`."""
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))
    (staging / OWNER_FILE).write_text(dumps(owner_record()))
    return staging


def publish(files: Mapping[str, Path | str | bytes], out_dir: str | Path) -> list[Path]:
    """Write a set of outputs atomically: ``files`` maps a path relative to ``out_dir`` to
    either a source file (copied) or text/bytes content.

    Everything is first staged in a hidden folder of ``out_dir`` (with its owner); when all
    are staged, the completion markers among ``files`` (:func:`is_marker`) already in place
    are removed, each other file is renamed into place, and the markers come last. A failure
    while staging leaves the output as it was. Returns the written paths, markers last.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    delay = float(os.environ.get(PUBLISH_DELAY_ENV) or 0)
    order = sorted(files, key=is_marker)  # stable: markers last
    staging = make_staging(out)
    written: list[Path] = []
    try:
        staged = []
        for rel in order:
            content = files[rel]
            target = staging / "files" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            elif isinstance(content, Path):
                shutil.copyfile(content, target)
            else:
                target.write_text(content)
            staged.append((target, out / rel))
        for rel in order:
            if is_marker(rel):
                (out / rel).unlink(missing_ok=True)
        for src, dst in staged:
            if delay:
                time.sleep(delay)  # test hook: widens the window between renames
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            written.append(dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


def stale(path: Path, max_age_s: float = STALE_AFTER_S) -> bool:
    """Whether a staging folder (or a temporary file of an atomic write) was left behind:
    its owner process is gone from this machine, or, where the owner is elsewhere or
    unknown, it was made more than ``max_age_s`` ago."""
    owner: dict[str, Any] = {}
    if path.is_dir():
        try:
            owner = json.loads((path / OWNER_FILE).read_text())
        except (OSError, ValueError):
            owner = {}
    alive = owner_alive(owner) if isinstance(owner, dict) and owner else None
    if alive is not None:
        return not alive
    try:
        made = path.stat().st_mtime
    except OSError:
        return False
    created = owner.get("created") if isinstance(owner, dict) else None
    if isinstance(created, (int, float)):
        made = max(made, float(created))
    return time.time() - made > max_age_s


def clean_stale(out_dir: str | Path, max_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove what killed runs left in ``out_dir`` (see :func:`stale`): staging folders and
    temporary files of the root's atomic writes; never another live run's. Returns them."""
    out = Path(out_dir)
    candidates = [*out.glob(f"{STAGING_PREFIX}*")]
    candidates += [p for name in (".bidsignore", "dataset_description.json")
                   for p in out.glob(f".{name}.*")]  # fmt: skip
    removed = []
    for path in candidates:
        if not stale(path, max_age_s):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        LOG.info("removed %s, left by an interrupted run", path)
        removed.append(path)
    return removed


def relative_all(paths: Iterable[Path], root: Path) -> list[str]:
    """Paths relative to ``root`` as POSIX strings, sorted."""
    return sorted(p.relative_to(root).as_posix() for p in paths)


def software_versions() -> dict[str, str]:
    """Versions of swigapp and the libraries that shape its numbers."""
    from importlib import metadata

    out = {"swigapp": __version__}
    for dist in ("torch", "numpy", "scipy", "nibabel", "antspyx", "nipype", "pybids", "nilearn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _round(value: Any, digits: int = 6) -> Any:
    """Floats rounded, and NaN/Inf as null (JSON has no NaN: e.g. the LR residual of a map
    that was not acquired)."""
    if isinstance(value, float):
        return round(value, digits) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _round(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v, digits) for v in value]
    return value


def participant_outputs(
    subject: str,
    session: str | None,
    bids_dir: str | Path,
    sources: Mapping[str, str],
    results: Mapping[str, Any],
    params: Mapping[str, Any],
    work_dir: str | Path,
) -> dict[str, Path | str]:
    """Every derivative of one participant: relative output path -> file or JSON text.

    ``sources``: input name (PD, T1, T2, or a guide) -> input path; ``results``: the step
    results of :mod:`swigapp.participant` under keys conform, mask, registration (per
    guide), superres, synthesis; ``params``: the run's parameters (recorded in sidecars),
    with ``method_descriptions`` (method name -> one line:
    :data:`swigapp.methods.METHOD_DESCRIPTIONS`).
    The SR maps are split into one file per map in ``work_dir``.
    """

    from swigapp.io.files import load_maps, save_nifti
    from swigapp.kspace import voxel_sizes

    label = f"sub-{subject}" + (f"_ses-{session}" if session else "")
    anat = subject_dir("", subject, session)
    work = Path(work_dir)
    uri = {k: bids_uri(v, bids_dir) for k, v in sources.items()}
    files: dict[str, Path | str] = {}
    uri |= fitted_outputs(label, anat, results.get("fit"), bids_dir, files)
    acquired = list(results["conform"].get("acquired", MAP_ORDER))
    map_uris = [uri[m] for m in acquired]
    sr = results["superres"]
    maps, affine = load_maps(sr["sr_file"])
    vox = "x".join(f"{v:g}" for v in voxel_sizes(affine))
    resolution = f"{vox} mm voxels on the field of view of the acquired low-resolution maps"

    def add(name: str, image: Path | str, sidecar: dict[str, Any]) -> str:
        files[str(anat / name)] = Path(image)
        files[str(anat / name.replace(".nii.gz", ".json"))] = dumps(_round(sidecar))
        return f"bids::{(anat / name).as_posix()}"

    mask_name = entity_name(label, "mask", res="hi", desc="brain")
    mask_uri = add(
        mask_name,
        results["mask"]["mask_file"],
        {
            "Type": "Brain",
            "Resolution": resolution,
            "Sources": map_uris,
            "Method": results["mask"]["method"],
        },
    )
    guides = list(results["registration"])
    reg_uris = {}
    for guide, reg in results["registration"].items():
        name = entity_name(label, guide, res="hi", desc="registered")
        xfm_names = []
        for i, xfm in enumerate(reg["transform_files"]):
            ext = "".join(Path(xfm).suffixes)
            extra = f"{i}" if len(reg["transform_files"]) > 1 else ""
            xfm_name = entity_name(
                label, "xfm", ext, **{"from": guide + extra}, to="qmri", mode="image"
            )
            files[str(anat / xfm_name)] = Path(xfm)
            xfm_names.append(xfm_name)
        reg_uris[guide] = add(
            name,
            reg["registered_file"],
            {
                "Resolution": resolution,
                "SkullStripped": False,
                "Sources": [uri[guide], *map_uris],
                "RegistrationMethod": (
                    f"ANTs {params['transform']} registration (Mattes mutual information) to "
                    f"the {guide} contrast synthesised from the upsampled LR maps"
                ),
                "Transforms": xfm_names,
                "MutualInformation": reg["metric"],
            },
        )
    provenance = {
        "Method": sr["method"],
        "Model": sr["model"],
        **(
            {"AcquisitionModel": results["conform"]["acquisition"]}
            if results["conform"].get("acquisition")
            else {}
        ),
        "Guides": guides,
        "GuideProtocols": params["guide_protocols"],
        "AdaptSteps": params["adapt_steps"],
        **(
            {"AdaptDecision": sr["adaptation"]["reason"]}
            if (sr.get("adaptation") or {}).get("mode") == "auto"
            else {}
        ),
        "AdaptLosses": sr["adapt_losses"],
        **({"SliceAxes": sr["slice_axes"]} if sr.get("slice_axes") else {}),
        **({"INRFit": sr["inr"]} if sr.get("inr") else {}),
        "Seed": params["seed"],
        "Device": sr["device"],
        "SoftwareDependencies": params["versions"],
    }
    map_names = {}
    estimated = results["conform"].get("estimated", {})
    for i, m in enumerate(MAP_ORDER):
        if m in estimated and not params.get("write_estimated"):
            continue
        pd_scale = results["conform"].get("pd_scale") if m == "PD" else None
        path = save_nifti(work / f"sr_{m}.nii.gz", in_input_scale(maps[i], pd_scale), affine)
        desc = "estimated" if m in estimated else sr["method"]
        name = entity_name(label, MAP_SUFFIX[m], res="hi", desc=desc)
        scaling = {}
        if pd_scale:
            scaling["PDScaling"] = {
                "Description": "the network works on the input PD times Factor (a water "
                "fraction); this map was divided by Factor: it is in the input's scale",
                "Reference": pd_scale["reference"],
                "ReferenceValue": pd_scale["reference_value"],
                "Factor": pd_scale["factor"],
                "Rule": pd_scale["rule"],
                "InputUnits": pd_scale["input_units"],
            }
        map_names[m] = add(
            name,
            path,
            {
                "Units": output_units(m, pd_scale),
                **scaling,
                "Resolution": resolution,
                "SkullStripped": False,
                "Sources": [*map_uris, *(uri[g] for g in guides), mask_uri],
                "EstimationAlgorithm": params["method_descriptions"][sr["method"]],
                **(
                    {"Description": ESTIMATED_DESCRIPTION.format(m=m, how=estimated[m])}
                    if m in estimated
                    else {}
                ),
                "DataConsistency": {
                    "LRResidual": sr["lr_residual"][m],
                    "LRResidualOfInput": sr["lr_residual_input"][m],
                    "GuideSSIM": results["synthesis"]["guide_ssim"],
                },
                **provenance,
            },
        )
    if sr.get("uncertainty_file"):
        pd_scale = results["conform"].get("pd_scale")
        calibration = (sr.get("model") or {}).get("uncertainty_calibration")
        for m, path in uncertainty_maps(sr, pd_scale, work).items():
            if m not in map_names:
                continue
            add(
                entity_name(label, MAP_SUFFIX[m], res="hi", desc=f"{sr['method']}Uncertainty"),
                path,
                {
                    "Units": output_units(m, pd_scale if m == "PD" else None),
                    "Resolution": resolution,
                    "SkullStripped": False,
                    "Description": UNCERTAINTY_DESCRIPTION + describe(calibration),
                    "Sources": [map_names[m]],
                    "SliceAxes": sr.get("slice_axes", []),
                }
                | ({"Calibration": calibration} if calibration else {}),
            )
    synth = results["synthesis"]
    jobs = [
        (guide, "synthguide", path, params["guide_protocols"][guide], {
            "SSIMToAcquired": synth["guide_ssim"][guide],
            "Description": f"{guide} synthesised from the SR maps with the acquired {guide}'s "
            "protocol (quality control)",
        })
        for guide, path in synth["guide_synth_files"].items()
    ] + [
        (name, "synth", path, params["synth_protocols"][name], {})
        for name, path in synth["synth_files"].items()
    ]  # fmt: skip
    for contrast, desc, path, protocol, extra in jobs:
        sidecar = {"Resolution": resolution, "SkullStripped": False}
        sidecar |= {"Sources": list(map_names.values()), "Protocol": protocol, **extra}
        add(entity_name(label, contrast, res="hi", desc=desc), path, sidecar)
    return files


#: What an estimated map is (``--write-estimated``), for its sidecar.
ESTIMATED_DESCRIPTION = (
    "NOT A MEASUREMENT: {m} was not acquired. The LR input for {m} was {how}, and the "
    "super-resolution method refined it with the guides; it served only the physics terms "
    "(guide synthesis). No LR-consistency check applies to it."
)
#: What the uncertainty maps are, for their sidecars and the report.
UNCERTAINTY_DESCRIPTION = (
    "Uncertainty of the super-resolved map: the standard deviation over the orientation "
    "ensemble (one 2.5D prediction per least-downsampled slice axis), taken in the "
    "network's domain (PD, ln T1, ln T2) and converted to the map's units (for T1 and T2: "
    "SD of ln T times T). 0 outside the brain mask. It is large where the predictions "
    "along different axes disagree; it does not include the LR input's noise."
)


def fitted_outputs(
    label: str,
    anat: Path,
    fit: Mapping[str, Any] | None,
    bids_dir: str | Path,
    files: dict[str, Path | str],
) -> dict[str, str]:
    """Add the maps fitted from raw series (``res-lo_desc-fit<KIND>_<T1map|T2map|M0map>``)
    and their residual maps to ``files``, with sidecars whose Sources name the raw images;
    returns map name -> the fitted map's URI (the source of the SR map)."""
    from swigapp.io.raw_qmri import FIT_SUFFIX, RESIDUAL_SUFFIX

    if not fit:
        return {}
    uris: dict[str, str] = {}
    by_suffix = {v: k for k, v in FIT_SUFFIX.items()}
    for kind, record in fit["series"].items():
        sources = [bids_uri(f, bids_dir) for f in record["files"]]
        for suffix, out in record["outputs"].items():
            name = entity_name(label, suffix, res="lo", desc=f"fit{kind}")
            files[str(anat / name)] = Path(out["file"])
            sidecar = {**out["sidecar"], "Sources": sources}
            if suffix != RESIDUAL_SUFFIX:
                sidecar |= {"Resolution": "the grid of the raw series", "SkullStripped": False}
            files[str(anat / name.replace(".nii.gz", ".json"))] = dumps(_round(sidecar))
            if suffix != RESIDUAL_SUFFIX:
                uris[by_suffix[suffix]] = f"bids::{(anat / name).as_posix()}"
    return uris


def uncertainty_maps(
    sr: Mapping[str, Any], pd_scale: Mapping[str, Any] | None, work: Path
) -> dict[str, Path]:
    """The uncertainty of each map as its own NIfTI in ``work`` (PD in the input's scale,
    as the PD map)."""
    from swigapp.io.files import load_maps, save_nifti

    spread, affine = load_maps(sr["uncertainty_file"])
    out = {}
    for i, m in enumerate(MAP_ORDER):
        data = in_input_scale(spread[i], pd_scale if m == "PD" else None)
        out[m] = Path(save_nifti(work / f"sr_{m}_uncertainty.nii.gz", data, affine))
    return out


def in_input_scale(data: np.ndarray, pd_scale: Mapping[str, Any] | None) -> np.ndarray:
    """A PD map (or its uncertainty) back in the input's own scale: divided by the factor
    of ``pd_scale`` (the network works on a water fraction); other maps pass None."""
    if pd_scale and pd_scale["factor"] != 1.0:
        return (data / pd_scale["factor"]).astype(data.dtype)
    return data


def output_units(m: str, pd_scale: Mapping[str, Any] | None) -> str:
    """Units of map ``m`` as written (PD: the input's units when it was rescaled)."""
    return pd_scale.get("output_units", MAP_UNITS[m]) if pd_scale else MAP_UNITS[m]
