"""Acquisition protocols: which forward model a weighted image follows, with its parameters.

A :class:`Protocol` is built from a BIDS sidecar (ScanningSequence, SequenceVariant,
MRAcquisitionType, PulseSequenceType plus RepetitionTime, EchoTime, InversionTime,
FlipAngle, ...) or from a small JSON/YAML override file. Times are in seconds and
FlipAngle in degrees, as BIDS stores them.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml

from swigapp.physics import signal

LOG = logging.getLogger("swigapp.physics")

Model = Literal["SE", "IR", "GRE", "MPRAGE"]
MODELS: tuple[str, ...] = ("SE", "IR", "GRE", "MPRAGE")

#: Readout defaults used when an MPRAGE sidecar lacks them (3T Siemens-like, echo spacing
#: ~7 ms, 176 partitions per shot); a warning is logged when they are used.
MPRAGE_DEFAULT_TAU = 0.007
MPRAGE_DEFAULT_N = 176


class ProtocolError(ValueError):
    """A sidecar or override does not describe a usable acquisition protocol."""


@dataclass(frozen=True)
class Protocol:
    """Parameters of one acquisition and the forward model that synthesises it.

    Times in seconds (tr, te, ti, tau), flip in degrees. ``tr`` is the repetition time of
    the model's cycle: RepetitionTime for SE/IR/GRE, RepetitionTimePreparation for MPRAGE.
    """

    model: Model
    tr: float
    te: float = 0.0
    ti: float | None = None
    flip_deg: float | None = None
    tau: float | None = None
    n_pulses: int | None = None
    echo_train_length: int | None = None
    source: str = "<unknown>"

    def __post_init__(self) -> None:
        need = {
            "IR": ("ti",),
            "GRE": ("flip_deg",),
            "MPRAGE": ("ti", "flip_deg", "tau", "n_pulses"),
        }
        if self.model not in MODELS:
            raise ProtocolError(f"{self.source}: unknown signal model {self.model!r}")
        for name in need.get(self.model, ()):
            if getattr(self, name) is None:
                raise ProtocolError(f"{self.source}: {self.model} protocol needs {name!r}")
        for name in ("tr", "te", "ti", "tau"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise ProtocolError(f"{self.source}: {name}={value} must be finite and >= 0 s")
        if self.tr <= 0:
            raise ProtocolError(f"{self.source}: repetition time must be > 0 s (got {self.tr})")
        if self.model == "MPRAGE":
            try:
                signal.mprage_delays(self.tr, self.ti, self.tau, self.n_pulses, self.n_pulses / 2)
            except ValueError as err:
                raise ProtocolError(f"{self.source}: {err}") from err

    @property
    def flip_rad(self) -> float:
        """Flip angle in radians."""
        return math.radians(self.flip_deg) if self.flip_deg is not None else 0.0

    def signal(
        self,
        pd: torch.Tensor,
        t1: torch.Tensor,
        t2: torch.Tensor,
        b1: torch.Tensor | None = None,
        inversion_efficiency: float = 1.0,
    ) -> torch.Tensor:
        """Synthesise this protocol's image from maps (PD a.u., T1 and T2 in s), in torch.

        ``b1``: relative B1+ per voxel, scaling the flip of GRE and MPRAGE (SE and IR are
        taken as ideal); ``inversion_efficiency``: of the MPRAGE inversion (1: perfect).
        """
        flip = self.flip_rad if b1 is None else self.flip_rad * b1
        if self.model == "SE":
            return signal.spin_echo(pd, t1, t2, tr=self.tr, te=self.te)
        if self.model == "IR":
            return signal.inversion_recovery(pd, t1, t2, tr=self.tr, te=self.te, ti=self.ti)
        if self.model == "GRE":
            return signal.spoiled_gre(pd, t1, t2, tr=self.tr, te=self.te, flip=flip)
        return signal.mprage(
            pd,
            t1,
            t2,
            tr=self.tr,
            ti=self.ti,
            flip=flip,
            tau=self.tau,
            n_pulses=self.n_pulses,
            te=self.te,
            inversion_efficiency=inversion_efficiency,
        )

    def signal_np(
        self,
        pd: np.ndarray,
        t1: np.ndarray,
        t2: np.ndarray,
        b1: np.ndarray | None = None,
        inversion_efficiency: float = 1.0,
    ) -> np.ndarray:
        """numpy convenience: same code as :meth:`signal`, computed in float64."""
        args = [torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in (pd, t1, t2)]
        b1_t = None if b1 is None else torch.as_tensor(np.asarray(b1, dtype=np.float64))
        with torch.no_grad():
            return self.signal(*args, b1=b1_t, inversion_efficiency=inversion_efficiency).numpy()

    def to_sidecar(self) -> dict[str, Any]:
        """BIDS sidecar fields that describe this protocol (round-trips via from_sidecar)."""
        out: dict[str, Any] = {}
        if self.model == "SE":
            out |= {
                "ScanningSequence": "SE",
                "SequenceVariant": "SK\\SP",
                "RepetitionTime": self.tr,
            }
            out["PulseSequenceType"] = "TSE" if (self.echo_train_length or 1) > 1 else "SE"
        elif self.model == "IR":
            out |= {"ScanningSequence": "SE\\IR", "SequenceVariant": "SK\\SP\\MP"}
            out |= {"RepetitionTime": self.tr, "InversionTime": self.ti}
            out["PulseSequenceType"] = "Inversion recovery TSE"
        elif self.model == "GRE":
            out |= {"ScanningSequence": "GR", "SequenceVariant": "SP", "RepetitionTime": self.tr}
            out |= {"FlipAngle": self.flip_deg, "PulseSequenceType": "Spoiled gradient echo"}
        else:
            out |= {"ScanningSequence": "GR\\IR", "SequenceVariant": "SK\\SP\\MP"}
            out |= {"PulseSequenceType": "MPRAGE", "RepetitionTime": self.tr}
            out |= {"RepetitionTimePreparation": self.tr, "InversionTime": self.ti}
            out |= {"FlipAngle": self.flip_deg, "RepetitionTimeExcitation": self.tau}
            out["NumberShots"] = self.n_pulses
        out["EchoTime"] = self.te
        if self.echo_train_length is not None:
            out["EchoTrainLength"] = self.echo_train_length
        return out

    @classmethod
    def from_sidecar(
        cls,
        sidecar: Mapping[str, Any] | str | Path,
        overrides: Mapping[str, Any] | str | Path | None = None,
        source: str | None = None,
    ) -> Protocol:
        """Build a protocol from a BIDS sidecar (dict or .json path) and optional overrides.

        ``overrides`` (dict, or a JSON/YAML file) replaces sidecar fields; it may also set
        ``"Model"`` to one of SE, IR, GRE, MPRAGE to bypass sequence detection. Raises
        :class:`ProtocolError` naming the file and the missing or invalid field.
        """
        meta, src = load_mapping(sidecar, source)
        if overrides is not None:
            extra, extra_src = load_mapping(overrides, None)
            meta = {**meta, **extra}
            src = f"{src} (overrides: {extra_src})"
        model = _detect_model(meta, src)

        def need(field: str) -> float:
            if meta.get(field) is None:
                raise ProtocolError(
                    f"{src}: {model} model needs {field!r}, which the sidecar lacks "
                    "(add it to the sidecar or give a protocol override file)"
                )
            return _as_float(meta[field], field, src)

        etl = meta.get("EchoTrainLength")
        etl = int(etl) if etl is not None else None
        te = _as_float(meta["EchoTime"], "EchoTime", src) if "EchoTime" in meta else None
        if te is None:
            if model in ("SE", "IR"):
                need("EchoTime")
            te = 0.0
            LOG.warning("%s: no EchoTime; assuming TE = 0 s (no T2* weighting)", src)
        if model == "MPRAGE":
            tr = meta.get("RepetitionTimePreparation")
            tr = _as_float(tr, "RepetitionTimePreparation", src) if tr is not None else None
            if tr is None:
                tr = need("RepetitionTime")
            tau = meta.get("RepetitionTimeExcitation")
            if tau is None:
                LOG.warning(
                    "%s: no RepetitionTimeExcitation; assuming echo spacing %.4f s",
                    src,
                    MPRAGE_DEFAULT_TAU,
                )
                tau = MPRAGE_DEFAULT_TAU
            n = meta.get("NumberShots")
            if n is None:
                LOG.warning(
                    "%s: no NumberShots; assuming %d pulses per shot", src, MPRAGE_DEFAULT_N
                )
                n = MPRAGE_DEFAULT_N
            if isinstance(n, list | tuple):
                n = n[0]
            return cls(
                model="MPRAGE",
                tr=tr,
                te=te,
                ti=need("InversionTime"),
                flip_deg=need("FlipAngle"),
                tau=_as_float(tau, "RepetitionTimeExcitation", src),
                n_pulses=int(n),
                echo_train_length=etl,
                source=src,
            )
        tr = need("RepetitionTime")
        if model == "IR":
            ti = need("InversionTime")
            return cls(model="IR", tr=tr, te=te, ti=ti, echo_train_length=etl, source=src)
        if model == "GRE":
            flip = need("FlipAngle")
            return cls(model="GRE", tr=tr, te=te, flip_deg=flip, echo_train_length=etl, source=src)
        return cls(model="SE", tr=tr, te=te, echo_train_length=etl, source=src)

    def with_source(self, source: str) -> Protocol:
        """Copy of this protocol with another source label."""
        return replace(self, source=source)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (for provenance)."""
        return asdict(self)


def load_mapping(
    obj: Mapping[str, Any] | str | Path, source: str | None
) -> tuple[dict[str, Any], str]:
    """A mapping from a dict or a JSON/YAML file, with a label naming its source."""
    if isinstance(obj, Mapping):
        return dict(obj), source or "<sidecar>"
    path = Path(obj)
    src = source or str(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ProtocolError(f"{src}: cannot read protocol file ({err.strerror})") from err
    try:
        data = yaml.safe_load(text) if path.suffix in (".yml", ".yaml") else json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ProtocolError(f"{src}: not valid {path.suffix.lstrip('.').upper()}: {err}") from err
    if not isinstance(data, dict):
        raise ProtocolError(f"{src}: expected a mapping of fields, got {type(data).__name__}")
    return data, src


def _as_float(value: Any, field: str, src: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError) as err:
        raise ProtocolError(f"{src}: {field}={value!r} is not a number") from err
    if not math.isfinite(out):
        raise ProtocolError(f"{src}: {field}={value!r} is not finite")
    return out


def _codes(value: Any) -> set[str]:
    """Split a DICOM multi-valued code ('GR\\IR', ['GR', 'IR']) into upper-case tokens."""
    if value is None:
        return set()
    items = value if isinstance(value, list | tuple) else str(value).replace("/", "\\").split("\\")
    return {str(v).strip().upper() for v in items if str(v).strip()}


def _detect_model(meta: Mapping[str, Any], src: str) -> Model:
    explicit = meta.get("Model")
    if explicit is not None:
        key = str(explicit).upper()
        if key not in MODELS:
            raise ProtocolError(f"{src}: Model={explicit!r} is not one of {', '.join(MODELS)}")
        return key  # type: ignore[return-value]
    seq = _codes(meta.get("ScanningSequence"))
    pst = str(meta.get("PulseSequenceType", "")).upper().replace("-", "").replace("_", "")
    if "MPRAGE" in pst or "MP2RAGE" in pst or "TFL" in pst or {"GR", "IR"} <= seq:
        return "MPRAGE"
    if "IR" in seq or "FLAIR" in pst or "STIR" in pst or "INVERSION" in pst:
        return "IR"
    if "GR" in seq or "GRADIENT" in pst or "FLASH" in pst or "SPGR" in pst:
        return "GRE"
    if "SE" in seq or "SPIN" in pst or "TSE" in pst or "FSE" in pst:
        return "SE"
    if not seq and not pst:
        raise ProtocolError(
            f"{src}: cannot tell the sequence: no 'ScanningSequence' or 'PulseSequenceType' "
            "(add them, or give a protocol override file with 'Model': SE|IR|GRE|MPRAGE)"
        )
    raise ProtocolError(
        f"{src}: unsupported sequence ScanningSequence={meta.get('ScanningSequence')!r}, "
        f"PulseSequenceType={meta.get('PulseSequenceType')!r} (supported: {', '.join(MODELS)})"
    )


#: Typical 3T protocols (Siemens-like), used by the phantom and as synthesis defaults.
DEFAULT_PROTOCOLS: dict[str, Protocol] = {
    "T1w": Protocol(
        model="MPRAGE",
        tr=2.3,
        te=0.003,
        ti=0.9,
        flip_deg=9.0,
        tau=0.007,
        n_pulses=176,
        source="default 3T MPRAGE",
    ),
    "T2w": Protocol(model="SE", tr=5.0, te=0.095, echo_train_length=16, source="default 3T TSE"),
    "FLAIR": Protocol(
        model="IR", tr=9.0, te=0.12, ti=2.5, echo_train_length=16, source="default 3T T2-FLAIR"
    ),
    "PDw": Protocol(model="SE", tr=4.0, te=0.012, echo_train_length=8, source="default 3T PDw"),
    "SE-T1w": Protocol(model="SE", tr=0.5, te=0.015, source="default 3T SE-T1w"),
}
