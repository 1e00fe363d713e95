"""The validated subject bundle: everything :func:`swigapp.io.bids.find_inputs` found, loaded
and checked (the LR maps conditioned by :mod:`swigapp.inputs.qmri`, the guides' protocols,
the guides); InputError names the bad file."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from swigapp.inputs.qmri import prepare_lr_maps
from swigapp.io.bids import SubjectFiles, find_inputs
from swigapp.io.images import InputError, load_image
from swigapp.io.raw_qmri import check_series
from swigapp.physics.protocol import Protocol, ProtocolError

LOG = logging.getLogger("swigapp.io")


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
    #: The T1 map's sidecar: what the LR acquisition model is built from.
    map_sidecar: dict[str, Any] = field(default_factory=dict)


def load_lr_maps(files: SubjectFiles) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Load and check the LR maps (PD as a water fraction, T1/T2 in s) and their affine.

    Imperfect maps are accepted (see :mod:`swigapp.inputs.qmri`): invalid voxels (NaN, Inf,
    negative) are filled, and what was found is logged as one warning per participant.
    """

    lr = prepare_lr_maps(files.maps, files.map_suffixes, files.map_metadata, files.label)
    if lr.notes:
        LOG.warning("%s: imperfect qMRI maps accepted: %s", files.label, "; ".join(lr.notes))
    return lr.maps, lr.affine


def load_protocols(
    files: SubjectFiles, overrides: Mapping[str, Any] | None = None
) -> dict[str, Protocol]:
    """Each guide's acquisition protocol from its sidecar (plus per-guide ``overrides``)."""
    protocols = {}
    for name, path in files.guides.items():
        try:
            override = (overrides or {}).get(name)
            protocols[name] = Protocol.from_sidecar(
                files.metadata[name], overrides=override, source=path
            )
        except ProtocolError as err:
            raise InputError(str(err)) from err
    return protocols


def load_inputs(files: SubjectFiles, overrides: Mapping[str, Any] | None = None) -> SubjectBundle:
    """Load and check everything :func:`find_inputs` found; InputError names the bad file.

    With maps to fit from raw series, the series are checked (grids, sidecar fields) and
    the map files loaded, but the LR maps are prepared only after the fit: ``lr_maps`` is
    then empty and ``lr_affine`` the series' grid.
    """
    if files.fit_plan:
        lr_maps: dict[str, np.ndarray] = {}
        for kind in files.raw_series.values():
            _, lr_affine = check_series(kind)
        for path in files.maps.values():
            load_image(path, finite=False)
    else:
        lr_maps, lr_affine = load_lr_maps(files)
    protocols = load_protocols(files, overrides)
    loaded = {name: load_image(path) for name, path in files.guides.items()}
    for name, (data, _) in loaded.items():
        if (data < 0).mean() > 0.01:
            raise InputError(f"{files.guides[name]}: more than 1 % of the voxels are negative")
        if not (data > 0).any():
            raise InputError(f"{files.guides[name]}: the image is empty (no positive voxel)")
    sources = {**files.maps, **files.guides}
    return SubjectBundle(
        files.subject, files.session, lr_maps, lr_affine, loaded, protocols, sources,
        dict(files.map_metadata.get("T1") or {}),
    )  # fmt: skip


def load_bundle(
    bids_layout: Any,
    subject: str,
    session: str | None = None,
    guides: Sequence[str] = ("T1w", "T2w", "FLAIR"),
    filters: Mapping[str, Mapping[str, Any]] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> SubjectBundle:
    """Find, load and check the LR maps and the requested guides of ``subject``.

    See :func:`find_inputs` (``filters``) and :func:`load_protocols` (``overrides``: per
    guide, a dict or a JSON/YAML file).
    """
    return load_inputs(find_inputs(bids_layout, subject, session, guides, filters), overrides)
