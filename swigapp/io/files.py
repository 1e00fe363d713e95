"""Small, safe writers for NIfTI images and JSON sidecars."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from swigapp.maps import MAP_ORDER, Maps


def umasked(mode: int) -> int:
    """``mode`` with the process umask applied: the mode a plain open()/mkdir() would give
    (for files and folders made by tempfile, which uses 0600/0700)."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def save_nifti(path: str | Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """Write a float32 (or integer mask) NIfTI-1 image with mm/s units and scanner-space codes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.asarray(data)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    elif not np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.float32)
    img = nib.Nifti1Image(array, np.asarray(affine, dtype=float))
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    nib.save(img, path)
    return path


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as indented JSON (keys in insertion order), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(payload))
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, umasked(0o666))  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def cell_number(value: object) -> float:
    """A table cell as a float: NaN for "n/a" (a map not acquired) and missing cells."""
    return float(value) if isinstance(value, int | float) else float("nan")


def write_tsv(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Rows as a TSV table (union of keys in first-seen order, "n/a" for missing cells, floats
    to 6 significant digits), written atomically."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["\t".join(keys)]
    for row in rows:
        cells = [row.get(k, "n/a") for k in keys]
        lines.append("\t".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in cells))
    return atomic_write_text(path, "\n".join(lines) + "\n")


def load_maps(path: str | Path, acquired: Sequence[str] = MAP_ORDER) -> Maps:
    """A 4D maps file (volumes PD, T1 s, T2 s) as :class:`~swigapp.maps.Maps` (``acquired``:
    the maps that were measured)."""
    img = nib.load(str(path))
    data = np.asarray(img.dataobj, dtype=np.float32)
    return Maps(np.moveaxis(data, -1, 0), np.asarray(img.affine, dtype=float), tuple(acquired))


def save_maps(path: str | Path, maps: Maps) -> str:
    """Write the maps as one 4D NIfTI (volumes PD, T1 s, T2 s); returns the path."""
    data = np.moveaxis(np.asarray(maps.data, np.float32), 0, -1)
    return str(save_nifti(path, data, maps.affine))


def dumps(payload: Mapping[str, Any]) -> str:
    """Deterministic JSON text (indent 2, insertion order, trailing newline)."""
    return json.dumps(payload, indent=2) + "\n"
