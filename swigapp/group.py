"""Group level: collect the participants' QC figures into a table, flag outliers, report.

Only complete participants count: one whose completion marker (its QC JSON, published
last, see :mod:`swigapp.io.publishing`) is missing was interrupted or is still being
written; it is left out with a warning, or refused when asked for by label.
"""

from __future__ import annotations

import html
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from swigapp.io.files import atomic_write_text, cell_number, write_tsv
from swigapp.io.naming import marker_path
from swigapp.io.publishing import participants

LOG = logging.getLogger(__name__)

#: Robust z-scores beyond this flag a subject (median / 1.4826 MAD).
OUTLIER_Z = 3.5


class GroupError(ValueError):
    """The output folder holds no participant results to summarise."""


def _row(qc: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"participant_id": f"sub-{qc['Subject']}"}
    row["session_id"] = f"ses-{qc['Session']}" if qc.get("Session") else "n/a"
    estimated = qc.get("EstimatedMaps", [])
    for tissue in ("GM", "WM"):
        for m in ("T1", "T2", "PD"):
            scale = 1000.0 if m != "PD" else 1.0
            unit = "_ms" if m != "PD" else ""
            # an estimate is no measurement: its medians are left out of the table
            value = "n/a" if m in estimated else scale * qc["TissueMedians"][tissue][m]
            row[f"{tissue}_{m}{unit}"] = value
    row["acquired_maps"] = ",".join(qc.get("AcquiredMaps", ("PD", "T1", "T2")))
    row["brain_volume_ml"] = qc["BrainVolume_ml"]
    for m, value in qc["LRResidual"].items():
        row[f"lr_residual_{m}"] = "n/a" if m in estimated else value
    for g, value in qc["GuideSSIM"].items():
        row[f"guide_ssim_{g}"] = value
    for g, value in qc["RegistrationMI"].items():
        row[f"registration_mi_{g}"] = value
    for m, value in qc.get("UncertaintyRelativeMedian", {}).items():
        row[f"uncertainty_rel_{m}"] = value
    row["run_time_s"] = sum(qc["Seconds"].values())
    fallen = qc.get("RegionalFallback", [])
    row["fallback_fraction"] = sum(f["fraction_of_brain"] for f in fallen)
    row["warnings"] = len(qc.get("Warnings", []))
    return row


def robust_z(values: Sequence[float]) -> np.ndarray:
    """(x - median) / (1.4826 MAD); zeros when the MAD is 0 (all equal) or n < 3."""
    x = np.asarray(values, dtype=float)
    if x.size < 3:
        return np.zeros_like(x)
    med = np.nanmedian(x)
    mad = 1.4826 * np.nanmedian(np.abs(x - med))
    return np.zeros_like(x) if mad == 0 or not math.isfinite(mad) else (x - med) / mad


def collect(output_dir: str | Path, subjects: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One row per complete participant/session from ``sub-*/log/*_qc.json`` (sorted),
    with the columns whose robust z-score exceeds :data:`OUTLIER_Z` listed in ``outliers``.

    Incomplete participants (outputs without a marker) are left out with a warning naming
    them; GroupError if one of ``subjects`` (labels without ``sub-``) is incomplete.
    """
    out = Path(output_dir)
    paths, incomplete = participants(out)
    if subjects:
        keep = {f"sub-{s}" for s in subjects}
        paths = [p for p in paths if p.parts[-3] in keep]
        asked = [label for label in incomplete if label.split("_")[0] in keep]
        if asked:
            raise GroupError(
                f"{out}: {', '.join(asked)}: incomplete (no completion marker "
                "sub-X/log/<label>_qc.json): the participant run was interrupted or is still "
                "running; re-run the participant level"
            )
    else:
        for label in incomplete:
            LOG.warning(
                "%s: incomplete (no completion marker %s): interrupted or still running; "
                "left out of the group table",
                label,
                marker_path("", label),
            )
    if not paths:
        raise GroupError(
            f"{out}: no participant results (sub-*/log/*_qc.json); run the participant level first"
        )
    rows = [_row(json.loads(p.read_text())) for p in paths]
    text = ("participant_id", "session_id", "warnings", "acquired_maps")
    columns = [k for k in rows[0] if k not in text]
    flags: list[list[str]] = [[] for _ in rows]
    for column in columns:
        z = robust_z([cell_number(r.get(column)) for r in rows])
        for i, value in enumerate(z):
            if abs(value) > OUTLIER_Z:
                flags[i].append(column)
    for row, flag in zip(rows, flags, strict=True):
        if row["warnings"]:
            flag.append("warnings")
        row["outliers"] = ",".join(flag) if flag else "n/a"
    return rows


def render(rows: Sequence[dict[str, Any]]) -> str:
    """The group report: distributions per QC column, outliers flagged, the table."""
    from swigapp.reports.figures import distributions
    from swigapp.reports.subject import page

    keys = [k for k in rows[0] if k not in ("participant_id", "session_id", "outliers")]
    parts = [
        f"<p>{len(rows)} participant run(s); flagged in red: robust z-score above "
        f"{OUTLIER_Z} (median / MAD), or the participant's own QC warnings (data "
        "consistency, guide agreement, guide coverage, imperfect input; listed in its "
        "report and QC JSON).</p>"
    ]
    for start in range(0, len(keys), 6):
        uri = distributions(rows, keys[start : start + 6])
        parts.append(f"<img alt='distributions' src='{uri}'>")
    header = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = []
    for row in rows:
        cls = " class='flag'" if row["outliers"] != "n/a" else ""
        cells = "".join(
            f"<td>{v:.4g}</td>" if isinstance(v, float) else f"<td>{html.escape(str(v))}</td>"
            for v in row.values()
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    parts.append(f"<h2>Table</h2><table><tr>{header}</tr>{''.join(body)}</table>")
    return page("swigapp group report", "\n".join(parts))


def run_group(output_dir: str | Path, subjects: Sequence[str] | None = None) -> list[Path]:
    """Write ``group_qc.tsv`` and ``group_report.html`` into ``output_dir``."""
    out = Path(output_dir)
    rows = collect(out, subjects)
    tsv = write_tsv(rows, out / "group_qc.tsv")
    report = atomic_write_text(out / "group_report.html", render(rows))
    return [tsv, report]
