"""Names in the derivatives dataset: files from BIDS entities, participants' folders and
completion markers, BIDS URIs of the inputs."""

from __future__ import annotations

from pathlib import Path

PIPELINE = "swigapp"
#: A participant's completion marker, its QC JSON: ``sub-X/log/sub-X[_ses-Y]_qc.json``.
MARKER_SUFFIX = "_qc.json"


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
