"""The BIDS derivatives dataset swigapp writes: names from entities, sidecars, atomic writes.

A participant's files are written into a staging folder inside the output dataset, then
each is moved into place with an atomic rename: a killed run leaves either the previous
file or the complete new one, never half a file. Contents are deterministic (no dates,
no work-dir paths), so the same inputs, seed and device give byte-identical files.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from swigapp._version import __version__
from swigapp.io.bids import MAP_ORDER, MAP_SUFFIX
from swigapp.io.files import atomic_write_text

PIPELINE = "swigapp"
BIDS_VERSION = "1.10.0"
CODE_URL = "https://github.com/swigapp/swigapp"
#: Files of the output that BIDS does not describe (reports, logs, the group table).
BIDSIGNORE = ("*.html", "sub-*/log", "group_qc.tsv", "*_xfm.mat", "*_xfm.json")
MAP_UNITS = {"PD": "arbitrary", "T1": "s", "T2": "s"}


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

    An existing dataset_description.json of another pipeline is refused.
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
    atomic_write_text(desc_path, dumps(description))
    atomic_write_text(out / ".bidsignore", "\n".join(BIDSIGNORE) + "\n")
    return desc_path


def publish(files: Mapping[str, Path | str | bytes], out_dir: str | Path) -> list[Path]:
    """Write a set of outputs atomically: ``files`` maps a path relative to ``out_dir`` to
    either a source file (copied) or text/bytes content.

    Everything is first staged in a hidden folder of ``out_dir``; only when all are staged
    is each file renamed into place, so a failure while producing outputs leaves nothing.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".swigapp-staging-", dir=out))
    written: list[Path] = []
    try:
        staged = []
        for rel, content in files.items():
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            elif isinstance(content, Path):
                shutil.copyfile(content, target)
            else:
                target.write_text(content)
            staged.append((target, out / rel))
        for src, dst in staged:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            written.append(dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


def clean_stale(out_dir: str | Path) -> None:
    """Remove staging folders that a killed run left behind (never complete outputs)."""
    for path in Path(out_dir).glob(".swigapp-staging-*"):
        shutil.rmtree(path, ignore_errors=True)


def relative_all(paths: Iterable[Path], root: Path) -> list[str]:
    """Paths relative to ``root`` as POSIX strings, sorted."""
    return sorted(p.relative_to(root).as_posix() for p in paths)


def software_versions() -> dict[str, str]:
    """Versions of swigapp and the libraries that shape its numbers."""
    from importlib import metadata

    out = {"swigapp": __version__}
    for dist in ("torch", "numpy", "scipy", "nibabel", "antspyx", "nipype", "pybids"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _round(value: Any, digits: int = 6) -> Any:
    if isinstance(value, float):
        return round(value, digits)
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
    guide), superres, synthesis; ``params``: the run's parameters (recorded in sidecars).
    The SR maps are split into one file per map in ``work_dir``.
    """

    from swigapp.io.files import save_nifti
    from swigapp.kspace import voxel_sizes
    from swigapp.methods import METHOD_DESCRIPTIONS
    from swigapp.participant import load_maps

    label = f"sub-{subject}" + (f"_ses-{session}" if session else "")
    anat = subject_dir("", subject, session)
    work = Path(work_dir)
    uri = {k: bids_uri(v, bids_dir) for k, v in sources.items()}
    map_uris = [uri[m] for m in MAP_ORDER]
    sr = results["superres"]
    maps, affine = load_maps(sr["sr_file"])
    vox = "x".join(f"{v:g}" for v in voxel_sizes(affine))
    resolution = f"{vox} mm voxels on the field of view of the acquired low-resolution maps"
    files: dict[str, Path | str] = {}

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
        "Guides": guides,
        "GuideProtocols": params["guide_protocols"],
        "AdaptSteps": params["adapt_steps"],
        "AdaptLosses": sr["adapt_losses"],
        **({"SliceAxes": sr["slice_axes"]} if sr.get("slice_axes") else {}),
        **({"INRFit": sr["inr"]} if sr.get("inr") else {}),
        "Seed": params["seed"],
        "Device": sr["device"],
        "SoftwareDependencies": params["versions"],
    }
    map_names = {}
    for i, m in enumerate(MAP_ORDER):
        path = save_nifti(work / f"sr_{m}.nii.gz", maps[i], affine)
        name = entity_name(label, MAP_SUFFIX[m], res="hi", desc=sr["method"])
        map_names[m] = add(
            name,
            path,
            {
                "Units": MAP_UNITS[m],
                "Resolution": resolution,
                "SkullStripped": False,
                "Sources": [*map_uris, *(uri[g] for g in guides), mask_uri],
                "EstimationAlgorithm": METHOD_DESCRIPTIONS[sr["method"]],
                "DataConsistency": {
                    "LRResidual": sr["lr_residual"][m],
                    "LRResidualOfInput": sr["lr_residual_input"][m],
                    "GuideSSIM": results["synthesis"]["guide_ssim"],
                },
                **provenance,
            },
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
