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
class Predicted(_Record):
    """A method's maps before the guard (:func:`swigapp.participant.predict_maps`):
    ``maps_file`` (4D: PD a.u., T1 s, T2 s), ``spread_file`` (their orientation-ensemble
    spread, or None), the ``method``, its provenance ``record``, the ``adaptation`` it ran,
    the LR residual of the upsampled input (``residual_input``), the LR maps and their
    upsampling it ran on (``lr_file``, ``lr_up_file``: the conformed maps, or the
    estimates a second pass refined) with their ``acquisition`` record and validity
    (``lr_valid_file``), ``seconds``."""

    method: str
    maps_file: str
    spread_file: str | None = None
    record: dict[str, Any] = field(default_factory=dict)
    adaptation: dict[str, Any] = field(default_factory=dict)
    residual_input: dict[str, float] = field(default_factory=dict)
    lr_file: str = ""
    lr_up_file: str = ""
    acquisition: dict[str, Any] | None = None
    lr_valid_file: str | None = None
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


@dataclass
class Masked(_Record):
    """The brain mask step (:func:`swigapp.participant.make_mask`): ``mask_file`` (0/1 on
    the HR grid), how it was made (``method``, in words), where PD was estimated the cut by
    a guide (:func:`swigapp.participant.refine_mask`; ``guide_cut``: the guide's ``name``,
    the ``share`` of its median below which voxels were cut, the ``depth_lr`` in LR voxels
    from the mask's edge the cut reached to at most, and the share of the mask ``removed``;
    empty when none was made), where T2 was estimated the cut by the guide over its
    synthesised contrast (``guide_ratio_cut``: ``name``, ``share`` of the ratio's median,
    ``removed``; empty when none was made), ``seconds``."""

    mask_file: str
    method: str
    seconds: float = 0.0
    guide_cut: dict[str, Any] = field(default_factory=dict)
    guide_ratio_cut: dict[str, Any] = field(default_factory=dict)


@dataclass
class GuideRegistration(_Record):
    """One guide's registration (:func:`swigapp.participant.register`): the guide's
    ``name``; ``registered_file`` (the guide on the HR grid), ``coverage_file`` (0-1: the
    part of each HR voxel inside its field of view), ``fixed_file`` (the synthesised
    target), ``transform_files`` (ANTs, guide -> qMRI space), the Mattes MI ``metric``,
    ``coverage`` (the covered fraction of the brain mask), the last pyramid level's
    ``shrink``, ``seconds``."""

    name: str
    registered_file: str
    coverage_file: str
    fixed_file: str
    transform_files: list[str] = field(default_factory=list)
    metric: float = 0.0
    coverage: float = 1.0
    shrink: int = 1
    seconds: float = 0.0


@dataclass
class Synthesised(_Record):
    """The synthesis step (:func:`swigapp.participant.synthesize_contrasts`): each guide's
    own contrast from the SR maps (``guide_synth_files``, with ``guide_ssim`` to the
    registered acquired guide in the brain) and each requested contrast
    (``synth_files``), ``seconds``."""

    guide_synth_files: dict[str, str] = field(default_factory=dict)
    synth_files: dict[str, str] = field(default_factory=dict)
    guide_ssim: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
