"""The derivatives dataset as a whole: its description, crash-safe publishing of a
participant's files, stale staging folders, the software versions.

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
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from swigapp._version import __version__
from swigapp.io.files import atomic_write_text, dumps
from swigapp.io.naming import MARKER_SUFFIX, PIPELINE, is_marker, label_of

BIDS_VERSION = "1.10.0"
CODE_URL = "https://github.com/swigapp/swigapp"
#: Files of the output that BIDS does not describe (reports, logs, the group table).
BIDSIGNORE = (
    "*.html", "sub-*/log", "group_qc.tsv", "*_xfm.mat", "*_xfm.json", "*_fitresidual.nii.gz",
    "*_fitresidual.json",
)  # fmt: skip
BIDSIGNORE_TEXT = "\n".join(BIDSIGNORE) + "\n"
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


def container() -> dict[str, str] | None:
    """GeneratedBy.Container when running in the swigapp image (set by its Dockerfile)."""
    tag = os.environ.get("SWIGAPP_CONTAINER")
    return {"Type": "docker", "Tag": tag} if tag else None


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
