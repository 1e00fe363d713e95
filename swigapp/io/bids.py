"""BIDS inputs: find a subject's LR qMRI maps and HR guides with pybids, load and check them.

A :class:`SubjectBundle` is the validated input of one participant (and session): LR maps
in BIDS units (T1/T2 in s; ms and R1/R2 inputs converted), guides with their affines and
protocols. Problems raise :class:`InputError` naming the file and what is wrong.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swigapp.io.images import MAP_ORDER, InputError
from swigapp.io.raw_qmri import find_series, plan_fits

LOG = logging.getLogger("swigapp.io")

#: The quantitative maps in channel/volume order, and their BIDS suffixes (T1/T2 in s).
MAP_SUFFIX = {"PD": "PDmap", "T1": "T1map", "T2": "T2map"}
MAP_SUFFIXES = ("PDmap", "T1map", "T2map", "R1map", "R2map")
GUIDE_SUFFIXES = ("T1w", "T2w", "FLAIR", "PDw")
MAP_NAMES = {"PDmap": "PD", "T1map": "T1", "T2map": "T2", "R1map": "T1", "R2map": "T2"}
#: What gives each map: a map file, or a raw series the app fits.
MAP_SOURCES = {
    "PD": "a PDmap, or a MESE, IRT1, VFA or MP2RAGE (both inversions) series",
    "T1": "a T1map or R1map, or an IRT1, VFA or MP2RAGE/UNIT1 series",
    "T2": "a T2map or R2map, or a MESE series",
}


def layout(bids_dir: str | Path) -> Any:
    """A pybids layout of the raw dataset (derivatives ignored, no validation)."""
    from bids import BIDSLayout

    root = Path(bids_dir)
    if not (root / "dataset_description.json").exists():
        raise InputError(f"{root}: not a BIDS dataset (no dataset_description.json)")
    return BIDSLayout(str(root), validate=False, derivatives=False)


def _one(files: Sequence[Any], what: str, where: str) -> str | None:
    if not files:
        return None
    if len(files) > 1:
        names = ", ".join(Path(f.path).name for f in files)
        raise InputError(f"{where}: several {what} files match ({names}); use a BIDS filter")
    return files[0].path


@dataclass
class SubjectFiles:
    """Where the inputs of one participant/session are: paths and sidecar metadata.

    ``maps``: map name (PD, T1, T2) -> path; ``map_suffixes``: map name -> BIDS suffix of
    that file (T1map or R1map, ...); ``guides``: guide name -> path; ``metadata``: guide
    name -> its sidecar (pybids inheritance applied); ``map_metadata``: map name -> its
    sidecar (``Units`` is honoured).
    """

    subject: str
    session: str | None
    maps: dict[str, str]
    map_suffixes: dict[str, str]
    guides: dict[str, str]
    metadata: dict[str, dict[str, Any]]
    map_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Raw qMRI series (:mod:`swigapp.io.raw_qmri`) by kind, and which of them supplies each
    #: map the app fits (map name -> kind); empty when every map is a file.
    raw_series: dict[str, dict[str, Any]] = field(default_factory=dict)
    fit_plan: dict[str, str] = field(default_factory=dict)

    @property
    def acquired(self) -> list[str]:
        """The maps read from files or fitted from raw series (the others are estimated)."""
        return [m for m in MAP_ORDER if m in self.maps or m in self.fit_plan]

    @property
    def label(self) -> str:
        """``sub-X[_ses-Y]``, the prefix of every output file."""
        return f"sub-{self.subject}" + (f"_ses-{self.session}" if self.session else "")


_LABEL = re.compile(r"^[A-Za-z0-9]+$")


def check_label(label: str, entity: str = "participant") -> str:
    """A participant/session label without its ``sub-``/``ses-`` prefix, checked to be BIDS
    alphanumerics (it is used to build paths: anything else is refused)."""
    prefix = "sub-" if entity == "participant" else "ses-"
    bare = label[len(prefix) :] if label.startswith(prefix) else label
    if not _LABEL.match(bare):
        raise InputError(f"{entity} label {label!r}: BIDS labels are letters and digits only")
    return bare


def find_inputs(
    bids_layout: Any,
    subject: str,
    session: str | None = None,
    guides: Sequence[str] = ("T1w", "T2w", "FLAIR"),
    filters: Mapping[str, Mapping[str, Any]] | None = None,
    fit_qmri: bool = False,
) -> SubjectFiles:
    """Query pybids for the LR maps and the requested guides of ``subject`` (no loading).

    ``filters``: extra pybids query entities per input ("qmri" for the maps and the raw
    series, or a guide name). Maps that are missing, or every map a raw series can give with
    ``fit_qmri``, are planned to be fitted from the participant's raw qMRI series
    (:mod:`swigapp.io.raw_qmri`). Guides requested but absent are skipped with a warning; at
    least one must exist.
    """
    filters = filters or {}
    where = f"sub-{subject}" + (f"_ses-{session}" if session else "")
    base: dict[str, Any] = {"subject": subject, "extension": [".nii.gz", ".nii"]}
    if session:
        base["session"] = session
    for name in list(filters):
        if name != "qmri" and name not in GUIDE_SUFFIXES:
            raise InputError(
                f"BIDS filter for unknown input {name!r} (qmri, {', '.join(GUIDE_SUFFIXES)})"
            )
    qmri = {**base, **filters.get("qmri", {})}
    maps, suffixes, map_metadata = _find_maps(bids_layout, qmri, where)
    series: dict[str, dict[str, Any]] = {}
    plan: dict[str, str] = {}
    wanted = list(MAP_ORDER) if fit_qmri else [m for m in MAP_ORDER if m not in maps]
    if wanted:
        series = find_series(bids_layout, qmri, where)
        plan = plan_fits(series, wanted)
        if fit_qmri and not plan:
            raise InputError(
                f"{where}: --fit-qmri, but no raw qMRI series (MESE, IRT1, VFA, MP2RAGE)"
            )
        for name, kind in plan.items():
            if name in maps:
                LOG.info("%s: %s fitted from the %s series (--fit-qmri), not read from %s",
                         where, name, kind, Path(maps[name]).name)  # fmt: skip
                del maps[name], suffixes[name], map_metadata[name]
        series = {k: v for k, v in series.items() if k in plan.values()}
    _check_missing([m for m in MAP_ORDER if m not in maps and m not in plan], where)
    found, metadata = _find_guides(bids_layout, base, filters, guides, where)
    return SubjectFiles(
        subject, session, maps, suffixes, found, metadata, map_metadata, series, plan
    )


def _find_maps(
    bids_layout: Any, query: Mapping[str, Any], where: str
) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, Any]]]:
    """The LR maps found (name -> path), their suffixes and sidecars; the first suffix of
    :data:`MAP_SUFFIXES` that names a map wins (T1map before R1map)."""
    maps: dict[str, str] = {}
    suffixes: dict[str, str] = {}
    map_metadata: dict[str, dict[str, Any]] = {}
    for suffix in MAP_SUFFIXES:
        name = MAP_NAMES[suffix]
        if name in maps:
            continue
        path = _one(bids_layout.get(**{**query, "suffix": suffix}), suffix, where)
        if path is not None:
            maps[name], suffixes[name] = path, suffix
            map_metadata[name] = dict(bids_layout.get_metadata(path))
    return maps, suffixes, map_metadata


def _check_missing(missing: Sequence[str], where: str) -> None:
    """InputError when no map is acquired or fitted; a warning naming the maps that will be
    estimated otherwise."""
    if len(missing) == len(MAP_ORDER):
        raise InputError(
            f"{where}: no qMRI map: at least one of "
            + "; ".join(f"{m}: {MAP_SOURCES[m]}" for m in missing)
        )
    if missing:
        LOG.warning(
            "%s: %s not acquired (looked for %s): estimated from the acquired maps for the "
            "physics only (guide synthesis, registration targets), not written unless "
            "--write-estimated",
            where, " and ".join(missing), "; ".join(f"{m}: {MAP_SOURCES[m]}" for m in missing),
        )  # fmt: skip


def _find_guides(
    bids_layout: Any,
    base: Mapping[str, Any],
    filters: Mapping[str, Mapping[str, Any]],
    guides: Sequence[str],
    where: str,
) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """The requested guides found (name -> path) and their sidecars; a missing guide is
    warned about, none found is an InputError."""
    found: dict[str, str] = {}
    metadata: dict[str, dict[str, Any]] = {}
    for name in guides:
        if name not in GUIDE_SUFFIXES:
            raise InputError(f"unknown guide {name!r} (one of {', '.join(GUIDE_SUFFIXES)})")
        query = {**base, **filters.get(name, {}), "suffix": name}
        path = _one(bids_layout.get(**query), name, where)
        if path is None:
            LOG.warning("%s: no %s guide found; continuing without it", where, name)
            continue
        found[name] = path
        metadata[name] = dict(bids_layout.get_metadata(path))
    if not found:
        raise InputError(f"{where}: none of the guides {', '.join(guides)} was found")
    return found, metadata


def run_validator(bids_dir: str | Path, timeout: float = 600) -> list[str] | None:
    """Run bids-validator-deno on a dataset; its error messages, or None if not installed."""
    import json
    import shutil
    import subprocess
    import sys

    beside = Path(sys.executable).parent / "bids-validator-deno"
    exe = shutil.which("bids-validator-deno") or (str(beside) if beside.exists() else None)
    if exe is None:
        return None
    run = subprocess.run(
        [exe, "--format", "json", str(bids_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    try:
        issues = json.loads(run.stdout)["issues"]["issues"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return [f"bids-validator-deno failed (exit {run.returncode}): {run.stderr.strip()[:300]}"]
    return [
        f"{i.get('code')}: {i.get('location', '')} {i.get('issueMessage', '')}".strip()
        for i in issues
        if i.get("severity") == "error"
    ]
