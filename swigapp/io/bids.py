"""BIDS inputs: find a subject's LR qMRI maps and HR guides with pybids, load and check them.

A :class:`SubjectBundle` is the validated input of one participant (and session): LR maps
in BIDS units (T1/T2 in s; ms and R1/R2 inputs converted), guides with their affines and
protocols. Problems raise :class:`InputError` naming the file and what is wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from swigapp.physics.protocol import Protocol, ProtocolError
from swigapp.physics.units import to_seconds

LOG = logging.getLogger("swigapp.io")

MAP_SUFFIXES = ("PDmap", "T1map", "T2map", "R1map", "R2map")
GUIDE_SUFFIXES = ("T1w", "T2w", "FLAIR", "PDw")
MAP_NAMES = {"PDmap": "PD", "T1map": "T1", "T2map": "T2", "R1map": "T1", "R2map": "T2"}


class InputError(ValueError):
    """An input file is missing, unreadable or implausible."""


@dataclass
class SubjectBundle:
    """Validated inputs of one participant/session."""

    subject: str
    session: str | None
    lr_maps: dict[str, np.ndarray]
    lr_affine: np.ndarray
    guides: dict[str, tuple[np.ndarray, np.ndarray]]
    protocols: dict[str, Protocol]
    sources: dict[str, str] = field(default_factory=dict)


def layout(bids_dir: str | Path) -> Any:
    """A pybids layout of the raw dataset (derivatives ignored, no validation)."""
    from bids import BIDSLayout

    root = Path(bids_dir)
    if not (root / "dataset_description.json").exists():
        raise InputError(f"{root}: not a BIDS dataset (no dataset_description.json)")
    return BIDSLayout(str(root), validate=False, derivatives=False)


def load_image(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Load a 3D NIfTI as float32 data and affine; InputError for corrupt, non-3D or NaN data."""
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as err:  # nibabel raises many types for corrupt files
        raise InputError(f"{path}: cannot read NIfTI ({err})") from err
    data = np.squeeze(data) if data.ndim == 4 and data.shape[3] == 1 else data
    if data.ndim != 3:
        raise InputError(f"{path}: expected a 3D image, got shape {data.shape}")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise InputError(f"{path}: {bad} voxels are NaN or infinite")
    return data, np.asarray(img.affine, dtype=float)


def _one(files: Sequence[Any], what: str, where: str) -> str | None:
    if not files:
        return None
    if len(files) > 1:
        names = ", ".join(Path(f.path).name for f in files)
        raise InputError(f"{where}: several {what} files match ({names}); use a BIDS filter")
    return files[0].path


def load_bundle(
    bids_layout: Any,
    subject: str,
    session: str | None = None,
    guides: Sequence[str] = ("T1w", "T2w", "FLAIR"),
    filters: Mapping[str, Mapping[str, Any]] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> SubjectBundle:
    """Find, load and check the LR maps and the requested guides of ``subject``.

    ``filters``: extra pybids query entities per input ("qmri" for the maps, or a guide
    name); ``overrides``: per-guide protocol overrides (dict or file path). Guides that are
    requested but absent are skipped with a warning; at least one must be present.
    """
    filters = filters or {}
    where = f"sub-{subject}" + (f"_ses-{session}" if session else "")
    base: dict[str, Any] = {"subject": subject, "extension": [".nii.gz", ".nii"]}
    if session:
        base["session"] = session
    lr_maps: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}
    lr_affine = None
    for suffix in MAP_SUFFIXES:
        name = MAP_NAMES[suffix]
        if name in lr_maps:
            continue
        query = {**base, **filters.get("qmri", {}), "suffix": suffix}
        path = _one(bids_layout.get(**query), suffix, where)
        if path is None:
            continue
        data, affine = load_image(path)
        if lr_affine is None:
            lr_affine, shape = affine, data.shape
        elif data.shape != shape or not np.allclose(affine, lr_affine, atol=1e-3):
            raise InputError(f"{path}: grid differs from the other qMRI maps of {where}")
        if suffix != "PDmap" and (data < 0).any():
            raise InputError(f"{path}: negative values in a relaxation map")
        data, _ = to_seconds(data, suffix, mask=data > 0, source=path)
        lr_maps[name] = data
        sources[name] = path
    missing = [m for m in ("PD", "T1", "T2") if m not in lr_maps]
    if missing:
        raise InputError(
            f"{where}: missing qMRI map(s) {', '.join(missing)} (T1map/R1map, T2map/R2map, PDmap)"
        )
    loaded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    protocols: dict[str, Protocol] = {}
    for name in guides:
        if name not in GUIDE_SUFFIXES:
            raise InputError(f"unknown guide {name!r} (one of {', '.join(GUIDE_SUFFIXES)})")
        query = {**base, **filters.get(name, {}), "suffix": name}
        path = _one(bids_layout.get(**query), name, where)
        if path is None:
            LOG.warning("%s: no %s guide found; continuing without it", where, name)
            continue
        meta = bids_layout.get_metadata(path)
        try:
            override = (overrides or {}).get(name)
            protocols[name] = Protocol.from_sidecar(meta, overrides=override, source=path)
        except ProtocolError as err:
            raise InputError(str(err)) from err
        loaded[name] = load_image(path)
        sources[name] = path
    if not loaded:
        raise InputError(f"{where}: none of the guides {', '.join(guides)} was found")
    return SubjectBundle(subject, session, lr_maps, lr_affine, loaded, protocols, sources)
