"""Typed results of the participant steps, as the derivatives, the QC and the reports read
them; each has a JSON round trip (``to_record``/``from_record``) for the workflow's traits,
which carry plain dicts between Nipype nodes."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SuperResolution:
    """The super-resolution step (:func:`swigapp.participant.super_resolve`).

    ``sr_file``: the maps (4D: PD a.u., T1 s, T2 s); ``uncertainty_file``: their
    orientation-ensemble spread (same units) or None; ``method``, ``model`` (name, version,
    sha256, path of the weights; None for a fit with no network), ``adapt_losses``, ``inr``
    (the INR fit's summary), ``slice_axes``, ``device``; where no guide saw, the brain's
    share (``guide_fallback_fraction``) and what stands there (``guide_fallback``); the
    regional checks (``regions``) and the regions that fell back
    (``regional_fallback``); the ``adaptation`` it ran; the LR residual per map of the
    upsampled input (``lr_residual_input``) and of the maps (``lr_residual``); the step's
    wall time (``seconds``).
    """

    method: str
    sr_file: str = ""
    uncertainty_file: str | None = None
    model: dict[str, Any] | None = None
    adapt_losses: list[float] = field(default_factory=list)
    inr: dict[str, Any] | None = None
    slice_axes: list[int] = field(default_factory=list)
    device: str = "cpu"
    guide_fallback_fraction: float = 0.0
    guide_fallback: str = ""
    regions: dict[str, dict[str, Any]] = field(default_factory=dict)
    regional_fallback: list[dict[str, Any]] = field(default_factory=list)
    adaptation: dict[str, Any] = field(default_factory=dict)
    lr_residual_input: dict[str, float] = field(default_factory=dict)
    lr_residual: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> SuperResolution:
        """The result that :meth:`to_record` wrote; ValueError on a key it does not know."""
        unknown = set(record) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown field(s) of a super-resolution result: {sorted(unknown)}")
        return cls(**record)
