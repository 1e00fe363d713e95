"""Typed results of the participant steps, as the derivatives, the QC and the reports read
them; each has a JSON round trip (``to_record``/``from_record``) for the workflow's traits,
which carry plain dicts between Nipype nodes."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from swigapp.maps import MAP_ORDER


class _Record:
    """A dataclass result's JSON round trip, shared by every step's result."""

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Self:
        """The result that :meth:`to_record` wrote; ValueError naming the keys it does not
        know (a result written by another version, or a typo)."""
        unknown = set(record) - {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        if unknown:
            raise ValueError(f"unknown field(s) of a {cls.__name__} result: {sorted(unknown)}")
        return cls(**record)


@dataclass
class SuperResolution(_Record):
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


@dataclass
class Conformed(_Record):
    """The LR maps' step (:func:`swigapp.participant.conform_maps`).

    ``lr_file``: the LR maps in BIDS units (4D: PD on the internal water-fraction scale, T1
    and T2 in s); ``lr_up_file``: their initial upsampling onto the HR grid;
    ``lr_valid_file``: the LR validity mask; ``hr_shape``; ``input_quality`` (per map: its
    invalid voxels counted); ``units`` (per map: the unit decision in words); ``pd_scale``
    (reference and factor = internal / input; empty without PD); ``notes`` (what was
    accepted although imperfect); the maps ``acquired`` and ``estimated`` (name -> how);
    ``acquisition`` (the acquisition model's record with ``lr_model``); ``seconds``.
    """

    lr_file: str
    lr_up_file: str
    lr_valid_file: str | None = None
    hr_shape: list[int] = field(default_factory=list)
    input_quality: dict[str, dict[str, Any]] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    pd_scale: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    acquired: list[str] = field(default_factory=lambda: list(MAP_ORDER))
    estimated: dict[str, str] = field(default_factory=dict)
    acquisition: dict[str, Any] | None = None
    seconds: float = 0.0
