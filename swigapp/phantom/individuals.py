"""A pool of real individual anatomies for the phantoms: label maps -> tissue fractions.

Sources (:data:`SOURCES`), one subject name each (``synthseg-01``..``-20``, ``synthsr-1``..``-5``,
``brainweb-04``..``-54``):

- SynthSeg's 20 training label maps (``BBillot/SynthSeg``, Apache-2.0): whole heads at 1 mm,
  FreeSurfer labels plus extra-cerebral labels >= 500 (Billot et al., Med Image Anal 2023).
- SynthSR's 5 brain label maps (``BBillot/SynthSR``, Apache-2.0): brains at 1 mm, left and
  right merged, no head (Iglesias et al., Sci Adv 2023; Winterburn et al. 2013 subjects).
- BrainWeb's 20 normal head models (crisp 0.5 mm models as stored in
  ``EECS556/EECS556_brain``): research use with citation, Aubert-Broche et al., IEEE TMI
  25:1410 (2006); training allowed, the data are never committed.

The label maps never enter the repository: :func:`extract` copies them out of local bare git
copies of those repositories into a cache folder (``$SWIGAPP_REALDATA``, default
``~/.cache/swigapp/realdata``), and the first :func:`load_individual` of a subject converts
its map to 1 mm tissue fractions cached beside it (``fractions/<name>.npz``, float16).

Tissues (:data:`FREESURFER_CLASSES`, :data:`BRAINWEB_CLASSES`): ``gm`` is all grey matter
(cortex, cerebellar cortex, hippocampus, amygdala *and* the deep nuclei) and ``deep_gm`` the
part of it in thalamus, caudate, putamen, pallidum, accumbens and ventral DC, so that
``mask = gm + wm + csf`` holds as for the template (deformation, atrophy and head code keep
working) and :func:`swigapp.phantom.tissue.make_truth` gives ``gm - deep_gm`` cortical and
``deep_gm`` deep-GM values. ``csf`` is every CSF label (ventricles and the extra-cerebral CSF),
``head`` the extra-cerebral tissues on the names of :mod:`swigapp.phantom.head` (``bone``,
``marrow``, ``muscle``, ``fat``; ``CSF``: eyes, vitreous being CSF-like fluid).

SynthSeg's labels >= 500 carry no names in the repository (``data/labels table.txt`` lists the
brain labels only; a tutorial calls 507 "extra-cerebral soft tissues"); the others were
inferred from location, size, thickness and neighbours in ``training_seg_01``:
515 skull (a 1-3 mm shell hugging the CSF) -> bone; 516 skull base, vertebrae, clivus (beside
the skull, cancellous) -> marrow; 511 the outermost 3-4 mm layer touching the air (scalp) ->
fat; 507 the bulk soft tissue of face, neck and scalp -> muscle; 502 tubes in the neck
(carotids, jugulars) -> muscle; 506 the two eyeballs -> CSF; 508 extraocular structures,
509 nasal soft tissue, 514 thin extra-cerebral structures (meninges/vessels), 530 a small
structure between eye and brain (optic nerve) -> muscle; 512 the spinal cord -> WM.
Other FreeSurfer labels: 25/57 lesions and 85 optic chiasm -> WM; 30/62 vessel, 31/63
choroid plexus, 72 5th ventricle, 29/61 undetermined, and 136/137/163/164 (structures lining
the lateral and inferior lateral ventricles: choroid plexus by location) -> CSF.
BrainWeb: 1 CSF, 2 GM (BrainWeb has no deep-GM class: ``deep_gm`` is 0), 3 WM, 4 fat and
9 fat around it -> fat, 5 muscle and 6 muscle/skin -> muscle, 7 skull -> bone, 11 marrow ->
marrow; 10 dura (dense connective tissue, intermediate T1, short T2) -> muscle; 8 vessels:
those enclosed by brain and CSF -> GM (blood at 3T, T1 about 1.6-1.9 s and T2 about
0.05-0.25 s, is closest to GM of the brain tissues; Lu et al. 2004, Stanisz et al. 2005),
the others -> muscle.

Partial volume. BrainWeb at 0.5 mm -> 1 mm: one-hot labels averaged over 2x2x2 blocks. 1 mm
label maps -> fractions by anti-aliasing: one-hot per class, Gaussian smoothing with
``sigma`` = :data:`SIGMA` voxels, renormalised to sum 1 (background included, then dropped:
fractions sum to 1 in the head and to 0 in the air). ``sigma`` was chosen against BrainWeb
(:func:`antialias_table`): reference 1 mm fractions by 2x2x2 averaging of the 0.5 mm model,
a crisp 1 mm map from them (majority label per block), anti-aliased; mean absolute error of
the GM fraction at boundary voxels (reference GM fraction strictly between 0 and 1), and of
all classes (half the L1 distance), models 04, 05 and 06 averaged::

    sigma (voxels)  0 (crisp) 0.3   0.4   0.45  0.5   0.55  0.6   0.65  0.7   0.85  1.0
    GM MAE          0.285     0.277 0.201 0.156 0.131 0.123 0.124 0.130 0.137 0.156 0.171
    all-class MAE   0.288     0.280 0.207 0.169 0.152 0.151 0.156 0.166 0.176 0.202 0.224

(``python -m swigapp.phantom.individuals check`` reruns it; the three models agree to
0.002.) 0.55 voxel minimises both; the error left (0.12) is what a crisp 1 mm map cannot
know about where inside a voxel the boundary runs.

Orientation: every map is turned to the closest canonical orientation (RAS+,
:func:`nibabel.as_closest_canonical`), so that the last axis runs inferior -> superior and
axial slices are ``[:, :, k]`` as in the template phantoms.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, zip_longest
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from swigapp.phantom.anatomy import SIZES, Anatomy, Size, _brain_box, _crop_pad

#: Anti-aliasing: SD (voxels of the label map) of the Gaussian applied to one-hot labels.
SIGMA = 0.55
#: Environment variable naming the cache folder of the real data.
CACHE_ENV = "SWIGAPP_REALDATA"
#: World z (mm) of the slab centre for MNI-registered models without deep-GM labels.
SLAB_CENTRE_MNI_Z = 10.0
#: The split file (committed).
SPLIT_FILE = Path(__file__).with_name("anatomy_split.json")
#: Internal classes of a converted map, in the order stored; "cord" joins WM on loading
#: but is left out of the brain box (it runs down the neck).
CLASSES = ("gm", "deep_gm", "wm", "cord", "csf", "bone", "marrow", "muscle", "fat", "fluid")
HEAD_CLASSES = {"bone": "bone", "marrow": "marrow", "muscle": "muscle", "fat": "fat"}
HEAD_CLASSES["fluid"] = "CSF"

_FS_GM = (3, 42, 8, 47, 17, 53, 18, 54)
_FS_DEEP = (10, 49, 11, 50, 12, 51, 13, 52, 26, 58, 28, 60)
_FS_WM = (2, 41, 7, 46, 16, 25, 57, 85)
_FS_CSF = (4, 43, 5, 44, 14, 15, 24, 72, 29, 61, 30, 62, 31, 63, 136, 137, 163, 164)
#: FreeSurfer (and SynthSeg's extra-cerebral) label -> class.
FREESURFER_CLASSES: dict[int, str] = (
    dict.fromkeys(_FS_GM, "gm")
    | dict.fromkeys(_FS_DEEP, "deep_gm")
    | dict.fromkeys(_FS_WM, "wm")
    | dict.fromkeys(_FS_CSF, "csf")
    | {512: "cord", 515: "bone", 516: "marrow", 511: "fat", 506: "fluid"}
    | dict.fromkeys((507, 502, 508, 509, 514, 530), "muscle")
)
#: BrainWeb label -> class (vessels 8: see the module docstring).
BRAINWEB_CLASSES: dict[int, str] = {
    1: "csf", 2: "gm", 3: "wm", 4: "fat", 5: "muscle", 6: "muscle", 7: "bone",
    8: "muscle", 9: "fat", 10: "muscle", 11: "marrow",
}  # fmt: skip
_DEEP_CENTRE_LABELS = (10, 49, 11, 50, 12, 51, 13, 52)  # thalamus, caudate, putamen, pallidum


@dataclass(frozen=True)
class Source:
    """One public repository of label maps and the terms of its use."""

    name: str
    repository: str
    path: str  #: path pattern inside the repository, ``{id}`` the subject id
    ids: tuple[str, ...]
    licence: str
    training: bool  #: may be used to train models
    shipped_weights: bool  #: may be used for the weights swigapp ships
    citation: str
    labels: str  #: "freesurfer" or "brainweb"

    def subject(self, sid: str) -> str:
        """Subject name, e.g. ``synthseg-01``."""
        return f"{self.name}-{sid}"


SOURCES: dict[str, Source] = {
    "synthseg": Source(
        "synthseg",
        "BBillot/SynthSeg",
        "data/training_label_maps/training_seg_{id}.nii.gz",
        tuple(f"{i:02d}" for i in range(1, 21)),
        "Apache-2.0",
        True,
        True,
        "Billot B et al. SynthSeg: segmentation of brain MRI scans of any contrast and "
        "resolution without retraining. Med Image Anal 86:102789 (2023)",
        "freesurfer",
    ),
    "synthsr": Source(
        "synthsr",
        "BBillot/SynthSR",
        "data/labels/brain{id}_labels.nii.gz",
        tuple(str(i) for i in range(1, 6)),
        "Apache-2.0",
        True,
        True,
        "Iglesias JE et al. SynthSR: a public AI tool to turn heterogeneous clinical brain "
        "scans into high-resolution T1-weighted images for 3D morphometry. Sci Adv 9 (2023)",
        "freesurfer",
    ),
    "brainweb": Source(
        "brainweb",
        "EECS556/EECS556_brain",
        "subject{id}_crisp_v.mnc.gz",
        ("04", "05", "06", "18", "20", "38", *(str(i) for i in range(41, 55))),
        "BrainWeb terms: free for research with citation (data not redistributed here)",
        True,
        True,
        "Aubert-Broche B, Griffin M, Pike GB, Evans AC, Collins DL. Twenty new digital brain "
        "phantoms for creation of validation image data bases. IEEE TMI 25:1410-1416 (2006)",
        "brainweb",
    ),
}
#: Every subject name -> (source, id).
SUBJECTS: dict[str, tuple[Source, str]] = {
    src.subject(sid): (src, sid) for src in SOURCES.values() for sid in src.ids
}


class AnatomyNotFoundError(FileNotFoundError):
    """A real anatomy is not in the cache; the message says how to fetch it."""


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The real-data cache: ``path``, else ``$SWIGAPP_REALDATA``, else
    ``~/.cache/swigapp/realdata``."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "swigapp" / "realdata"


def fetch_command() -> str:
    """The command that fills the cache (for messages)."""
    return (
        "python -m swigapp.phantom.individuals fetch --git-dir synthseg=/path/SynthSeg.git "
        "--git-dir synthsr=/path/SynthSR.git --git-dir brainweb=/path/EECS556_brain.git"
    )


def label_path(name: str, cache: str | os.PathLike | None = None) -> Path:
    """Where the extracted label map of subject ``name`` lies in the cache."""
    src, _ = _subject(name)
    suffix = ".mnc.gz" if src.labels == "brainweb" else ".nii.gz"
    return cache_dir(cache) / "labels" / f"{name}{suffix}"


def fractions_path(name: str, cache: str | os.PathLike | None = None) -> Path:
    """Where the converted 1 mm fractions of subject ``name`` lie in the cache."""
    _subject(name)
    return cache_dir(cache) / "fractions" / f"{name}.npz"


def _subject(name: str) -> tuple[Source, str]:
    if name not in SUBJECTS:
        raise KeyError(f"unknown anatomy {name!r}; known: {describe_sources()}")
    return SUBJECTS[name]


def describe_sources() -> str:
    """One line per source: its names, repository and licence."""
    return "; ".join(
        f"{s.subject(s.ids[0])}..{s.subject(s.ids[-1])} ({s.repository}, {s.licence.split(':')[0]})"
        for s in SOURCES.values()
    )


@dataclass
class ExtractReport:
    """What :func:`extract` copied into the cache and what it could not find."""

    extracted: list[str]
    present: list[str]
    missing: dict[str, str]

    def summary(self) -> str:
        """Human-readable summary."""
        lines = [
            f"extracted {len(self.extracted)}, already present {len(self.present)}, "
            f"missing {len(self.missing)}"
        ]
        lines += [f"  missing {name}: {why}" for name, why in sorted(self.missing.items())]
        return "\n".join(lines)


def _source_key(key: str) -> Source:
    k = key.lower().replace("-", "").replace("_", "")
    for src in SOURCES.values():
        repo = src.repository.split("/")[1].lower().replace("_", "")
        if k in (src.name, repo, src.repository.lower().replace("/", "+").replace("_", "")):
            return src
    raise KeyError(f"unknown source {key!r} (one of {', '.join(SOURCES)})")


def extract(
    git_dirs: Mapping[str, str | os.PathLike],
    cache: str | os.PathLike | None = None,
    names: Sequence[str] | None = None,
    overwrite: bool = False,
) -> ExtractReport:
    """Copy the label maps out of local bare git copies of the source repositories.

    ``git_dirs``: source (``synthseg``, ``synthsr``, ``brainweb`` or the repository name) ->
    git directory. Files land in ``<cache>/labels/`` (never in this repository); subjects of
    sources without a git dir, or absent from theirs, are reported missing.
    """
    dirs = {_source_key(k).name: Path(v) for k, v in git_dirs.items()}
    wanted = list(names) if names is not None else list(SUBJECTS)
    report = ExtractReport([], [], {})
    for name in wanted:
        src, sid = _subject(name)
        out = label_path(name, cache)
        if out.exists() and not overwrite:
            report.present.append(name)
            continue
        if src.name not in dirs:
            report.missing[name] = f"no --git-dir for {src.name} ({src.repository})"
            continue
        rel = src.path.format(id=sid)
        try:
            blob = subprocess.run(
                ["git", f"--git-dir={dirs[src.name]}", "show", f"HEAD:{rel}"],
                capture_output=True,
                check=True,
            ).stdout
        except (subprocess.CalledProcessError, FileNotFoundError) as err:
            stderr = getattr(err, "stderr", b"") or b""
            report.missing[name] = f"{rel}: {stderr.decode(errors='replace').strip() or err}"
            continue
        if len(blob) < 1024 or blob.startswith(b"version https://git-lfs"):
            report.missing[name] = f"{rel}: a pointer or truncated file ({len(blob)} bytes)"
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(out.suffix + ".part")
        tmp.write_bytes(blob)
        tmp.replace(out)
        report.extracted.append(name)
    return report


# -- conversion ----------------------------------------------------------------------------


def read_labels(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Integer label map and affine (mm) of a NIfTI/MGH/MINC file, turned to RAS+."""
    import nibabel as nib

    path = Path(path)
    if path.name.endswith(".mnc.gz"):  # nibabel reads MINC1 uncompressed only
        with tempfile.TemporaryDirectory() as tmp:
            plain = Path(tmp) / path.name[:-3]
            with gzip.open(path, "rb") as src, open(plain, "wb") as dst:
                shutil.copyfileobj(src, dst)
            return read_labels(plain)
    img = nib.as_closest_canonical(nib.load(str(path)))
    data = np.rint(np.asarray(img.dataobj, dtype=np.float32)).astype(np.int16)
    return data, np.asarray(img.affine, dtype=float)


def one_hot(labels: np.ndarray, table: Mapping[int, str]) -> dict[str, np.ndarray]:
    """Boolean map of each class of :data:`CLASSES` (absent classes omitted).

    Labels not in ``table`` other than 0 raise ValueError.
    """
    unknown = sorted(set(np.unique(labels).tolist()) - set(table) - {0})
    if unknown:
        raise ValueError(f"labels without a tissue class: {unknown}")
    out = {}
    for cls in CLASSES:
        codes = [k for k, v in table.items() if v == cls]
        if codes:
            mask = np.isin(labels, codes)
            if mask.any():
                out[cls] = mask
    return out


def antialias(masks: Mapping[str, np.ndarray], sigma: float = SIGMA) -> dict[str, np.ndarray]:
    """Fractions (0-1, float32) from crisp class masks: each smoothed by a Gaussian of SD
    ``sigma`` voxels, renormalised with the background so that all classes and the air sum
    to 1 (the fractions alone: 1 in the head, 0 in the air)."""
    out = {}
    for cls, mask in masks.items():
        f = mask.astype(np.float32)
        out[cls] = ndimage.gaussian_filter(f, sigma, mode="nearest") if sigma > 0 else f
    background = ~np.logical_or.reduce(list(masks.values()))
    bg = background.astype(np.float32)
    if sigma > 0:
        bg = ndimage.gaussian_filter(bg, sigma, mode="nearest")
    total = bg + sum(out.values())
    return {k: np.clip(v / np.maximum(total, 1e-6), 0.0, 1.0) for k, v in out.items()}


def block_average(
    labels: np.ndarray, table: Mapping[int, str], block: int = 2
) -> dict[str, np.ndarray]:
    """Fractions of each class over ``block``^3 blocks (0.5 mm crisp -> 1 mm partial volume);
    the array is first cropped to a whole number of blocks."""
    n = [s // block * block for s in labels.shape]
    labels = labels[: n[0], : n[1], : n[2]]
    out = {}
    for cls, mask in one_hot(labels, table).items():
        f = mask.reshape(n[0] // block, block, n[1] // block, block, n[2] // block, block)
        out[cls] = f.mean(axis=(1, 3, 5), dtype=np.float32)
    return out


def _block_affine(affine: np.ndarray, block: int) -> np.ndarray:
    """Affine of a grid of ``block``^3 averages: voxels scaled, origin at the block centre."""
    scale = np.diag([block, block, block, 1.0])
    shift = np.eye(4)
    shift[:3, 3] = (block - 1) / 2.0
    return affine @ shift @ scale


def _brainweb_vessels(labels: np.ndarray) -> np.ndarray:
    """BrainWeb labels with the vessels (8) enclosed by brain and CSF relabelled GM (2)."""
    inner = ndimage.binary_fill_holes(ndimage.binary_closing(np.isin(labels, (1, 2, 3))))
    out = labels.copy()
    out[(labels == 8) & inner] = 2
    return out


def convert(
    labels: np.ndarray, affine: np.ndarray, kind: str = "freesurfer", sigma: float = SIGMA
) -> dict[str, Any]:
    """Label map (RAS+) -> dict of class fractions (:data:`CLASSES`, float32 0-1), ``affine``
    (mm), ``slab_z`` (voxel index of the slab centre) and ``voxel_mm``.

    ``kind`` "brainweb": 0.5 mm labels averaged over 2x2x2 blocks; "freesurfer": labels at
    their own resolution, anti-aliased by :func:`antialias` with ``sigma`` voxels.
    """
    if kind == "brainweb":
        labels = _brainweb_vessels(labels)
        fractions = block_average(labels, BRAINWEB_CLASSES, 2)
        affine = _block_affine(affine, 2)
        slab_z = float(np.linalg.solve(affine, [0.0, 0.0, SLAB_CENTRE_MNI_Z, 1.0])[2])
    elif kind == "freesurfer":
        lo, hi = _nonzero_box(labels > 0, pad=3)
        labels = labels[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
        affine = affine.copy()
        affine[:3, 3] = affine[:3, :3] @ np.asarray(lo, float) + affine[:3, 3]
        fractions = antialias(one_hot(labels, FREESURFER_CLASSES), sigma)
        deep = np.isin(labels, _DEEP_CENTRE_LABELS)
        if deep.any():
            slab_z = float(np.argwhere(deep)[:, 2].mean())
        else:
            brain = np.isin(labels, _FS_GM + _FS_DEEP + _FS_WM)
            slab_z = float(np.argwhere(brain)[:, 2].mean())
    else:
        raise ValueError(f"unknown label kind {kind!r} (freesurfer or brainweb)")
    return {
        "fractions": fractions,
        "affine": affine,
        "slab_z": slab_z,
        "voxel_mm": tuple(float(v) for v in np.sqrt((affine[:3, :3] ** 2).sum(0))),
    }


def _nonzero_box(mask: np.ndarray, pad: int = 0) -> tuple[list[int], list[int]]:
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + 1 + pad, mask.shape)
    return [int(v) for v in lo], [int(v) for v in hi]


def save_fractions(converted: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write converted fractions as a compressed .npz (float16 fractions)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"f_{k}": v.astype(np.float16) for k, v in converted["fractions"].items()}
    tmp = path.with_name(path.name + ".part.npz")
    np.savez_compressed(
        tmp, affine=converted["affine"], slab_z=np.float64(converted["slab_z"]), **arrays
    )
    tmp.replace(path)
    return path


def load_fractions(path: str | os.PathLike) -> dict[str, Any]:
    """Read what :func:`save_fractions` wrote (fractions back to float32)."""
    with np.load(path) as data:
        fractions = {k[2:]: data[k].astype(np.float32) for k in data.files if k.startswith("f_")}
        affine = np.asarray(data["affine"], float)
        slab_z = float(data["slab_z"])
    total = sum(fractions.values())
    scale = 1.0 / np.maximum(total, 1.0)  # float16 rounding: keep the sum at most 1
    fractions = {k: (v * scale).astype(np.float32) for k, v in fractions.items()}
    return {"fractions": fractions, "affine": affine, "slab_z": slab_z}


def converted(
    name: str | os.PathLike, cache: str | os.PathLike | None = None, sigma: float = SIGMA
) -> dict[str, Any]:
    """Fractions of a subject name (converted once, then read from the cache), a converted
    ``.npz`` or a label map file (FreeSurfer labels, or BrainWeb ``.mnc``/``.mnc.gz``)."""
    text = str(name)
    if text in SUBJECTS:
        src, _ = SUBJECTS[text]
        out = fractions_path(text, cache)
        if out.exists():
            return load_fractions(out)
        labels_file = label_path(text, cache)
        if not labels_file.exists():
            raise AnatomyNotFoundError(
                f"anatomy {text!r} ({src.repository}) is not in the cache {cache_dir(cache)}; "
                f"fill it with: {fetch_command()} (or set ${CACHE_ENV})"
            )
        result = convert(*read_labels(labels_file), kind=src.labels, sigma=sigma)
        save_fractions(result, out)
        return load_fractions(out)
    path = Path(text).expanduser()
    if not path.exists():
        raise AnatomyNotFoundError(
            f"no anatomy {text!r}: neither a file nor a subject name ({describe_sources()})"
        )
    if path.suffix == ".npz":
        return load_fractions(path)
    kind = "brainweb" if ".mnc" in path.suffixes else "freesurfer"
    return convert(*read_labels(path), kind=kind, sigma=sigma)


# -- anatomy -------------------------------------------------------------------------------


def load_individual(
    name: str | os.PathLike,
    size: Size = "slab",
    margin_mm: float = 0.0,
    cache: str | os.PathLike | None = None,
) -> Anatomy:
    """A real individual as an :class:`~swigapp.phantom.anatomy.Anatomy` (fractions 0-1).

    ``name``: a subject (:data:`SUBJECTS`), a converted ``.npz`` or a label map file. Grids
    as :func:`swigapp.phantom.anatomy.load_anatomy`: cropped to the brain box, sizes
    multiples of 4; ``tiny`` 2 mm (2x2x2 averages of the 1 mm fractions), 40 axial slices;
    ``slab`` 1 mm, 64 axial slices; both centred on the basal ganglia (centroid of thalamus,
    caudate, putamen and pallidum; BrainWeb: MNI z = +10 mm); ``full`` 1 mm, the whole brain.
    ``margin_mm``: room around the brain box (in-plane only for the slabs), e.g. for a head.
    ``gm`` is all GM, ``deep_gm`` its deep part; ``head`` the extra-cerebral tissues (None for
    brain-only maps); ``mask = gm + wm + csf``.
    """
    if size not in SIZES:
        raise ValueError(f"unknown phantom size {size!r} (one of {', '.join(SIZES)})")
    spec = SIZES[size]
    data = converted(name, cache)
    frac, affine = data["fractions"], data["affine"]
    vox = float(np.sqrt((affine[:3, :3] ** 2).sum(0)).mean())
    factor = round(spec["resolution"] / vox)
    if factor < 1 or abs(factor * vox - spec["resolution"]) > 0.05 * spec["resolution"]:
        raise ValueError(
            f"anatomy {name} has {vox:.2g} mm voxels: size {size!r} needs "
            f"{spec['resolution']} mm or a whole fraction of it"
        )
    shape = next(iter(frac.values())).shape
    zero = np.zeros(shape, np.float32)
    brain = frac.get("gm", zero) + frac.get("wm", zero)
    multiple = spec["multiple"] * factor
    lo, hi = _brain_box(brain >= 0.5, multiple, round(margin_mm / vox))
    if spec["z_slices"] is not None:
        n = spec["z_slices"] * factor
        lo[2] = round(data["slab_z"] - n / 2)
        hi[2] = lo[2] + n
    fields = {}
    for cls in CLASSES:
        if cls in frac:
            fields[cls] = _crop_pad(frac[cls], lo, hi)
    shift = np.eye(4)
    shift[:3, 3] = lo
    affine = affine @ shift
    if factor > 1:
        fields = {k: _downsample(v, factor) for k, v in fields.items()}
        affine = _block_affine(affine, factor)
    zero = np.zeros(next(iter(fields.values())).shape, np.float32)
    gm = fields.get("gm", zero) + fields.get("deep_gm", zero)
    wm = fields.get("wm", zero) + fields.get("cord", zero)
    csf = fields.get("csf", zero)
    mask = np.clip(gm + wm + csf, 0.0, 1.0)
    head = {HEAD_CLASSES[k]: fields[k] for k in HEAD_CLASSES if k in fields}
    has_head = any(k in fields for k in ("bone", "muscle", "fat"))
    return Anatomy(
        gm=gm.astype(np.float32),
        wm=wm.astype(np.float32),
        csf=csf.astype(np.float32),
        mask=mask.astype(np.float32),
        affine=affine,
        deep_gm=fields.get("deep_gm", zero).astype(np.float32),
        head=({k: v.astype(np.float32) for k, v in head.items()} if has_head else None),
    )


def _downsample(a: np.ndarray, f: int) -> np.ndarray:
    n = [s // f for s in a.shape]
    a = a[: n[0] * f, : n[1] * f, : n[2] * f]
    return a.reshape(n[0], f, n[1], f, n[2], f).mean(axis=(1, 3, 5), dtype=np.float32)


# -- split ---------------------------------------------------------------------------------


def load_split(path: str | os.PathLike = SPLIT_FILE) -> dict[str, Any]:
    """The committed subject-level split (training / validation / heldout per source)."""
    return json.loads(Path(path).read_text())


def split_subjects(part: str, path: str | os.PathLike = SPLIT_FILE) -> list[str]:
    """Subject names of one part of the split ("training", "validation", "heldout"), the
    sources interleaved (the first few names span every source)."""
    parts = [src[part] for src in load_split(path)["sources"].values()]
    return [n for n in chain(*zip_longest(*parts)) if n is not None]


def anatomy_record(names: Sequence[str]) -> dict[str, Any]:
    """What a model card says of the individual anatomies it was trained on: per source its
    repository, licence, citation and whether shipped weights may use it, each name's part
    of the split, and the split file's sha256 (the template is not an individual)."""
    import hashlib

    part_of = {
        n: part for part in ("training", "validation", "heldout") for n in split_subjects(part)
    }
    used = sorted(set(names) - {"template"})
    sources = {}
    for name in used:
        src, _ = _subject(name)
        sources.setdefault(
            src.name,
            {
                "repository": src.repository,
                "licence": src.licence,
                "citation": src.citation,
                "shipped_weights_allowed": src.shipped_weights,
                "subjects": {},
            },
        )["subjects"][name] = part_of.get(name, "not in the split")
    return {
        "split_file": SPLIT_FILE.name,
        "split_sha256": hashlib.sha256(SPLIT_FILE.read_bytes()).hexdigest(),
        "sources": sources,
    }


def make_split(
    seed: int = 20240607, counts: Mapping[str, tuple[int, int, int]] | None = None
) -> dict[str, Any]:
    """The split as :data:`SPLIT_FILE` records it: per source, the subject names permuted by
    ``numpy.random.default_rng(seed)`` (one generator, sources in :data:`SOURCES` order),
    then cut into training / validation / heldout of ``counts``."""
    counts = counts or {"synthseg": (12, 4, 4), "synthsr": (3, 1, 1), "brainweb": (12, 4, 4)}
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {
        "seed": seed,
        "method": "numpy.random.default_rng(seed).permutation of each source's subjects, "
        "sources in order synthseg, synthsr, brainweb; then cut training/validation/heldout",
        "sources": {},
    }
    for src in SOURCES.values():
        names = [src.subject(i) for i in src.ids]
        order = [names[i] for i in rng.permutation(len(names))]
        a, b, c = counts[src.name]
        assert a + b + c == len(names)
        out["sources"][src.name] = {
            "repository": src.repository,
            "licence": src.licence,
            "training_allowed": src.training,
            "shipped_weights_allowed": src.shipped_weights,
            "citation": src.citation,
            "training": sorted(order[:a]),
            "validation": sorted(order[a : a + b]),
            "heldout": sorted(order[a + b :]),
        }
    return out


# -- anti-aliasing check -------------------------------------------------------------------


def antialias_table(
    labels_05mm: np.ndarray,
    sigmas: Sequence[float] = (0.0, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.85, 1.0),
) -> list[dict[str, float]]:
    """Error of :func:`antialias` against a BrainWeb model's true 1 mm partial volume.

    Reference: 2x2x2 averages of the 0.5 mm one-hot labels; crisp 1 mm map: the majority class
    of each block. Returns per sigma the mean absolute error of the GM fraction over boundary
    voxels (reference GM strictly between 0 and 1) and the all-class MAE there (half the L1
    distance of the fraction vectors, over voxels where any reference class is mixed).
    """
    labels_05mm = _brainweb_vessels(labels_05mm)
    ref = block_average(labels_05mm, BRAINWEB_CLASSES, 2)
    names = list(ref)
    stack = np.stack([ref[k] for k in names])
    bg = 1.0 - stack.sum(0)
    full = np.concatenate([bg[None], stack])
    crisp = np.argmax(full, axis=0)  # 0: background, k+1: class names[k]
    gm_edge = (ref["gm"] > 0) & (ref["gm"] < 1)
    mixed = (full.max(0) < 1.0 - 1e-6) & (full.max(0) > 0)
    rows = []
    for s in sigmas:
        est = antialias({k: crisp == i + 1 for i, k in enumerate(names)}, s)
        est_stack = np.stack([est[k] for k in names])
        est_full = np.concatenate([(1.0 - est_stack.sum(0))[None], est_stack])
        l1 = 0.5 * np.abs(est_full - full).sum(0)
        gm_err = np.abs(est["gm"] - ref["gm"])[gm_edge].mean()
        rows.append(
            {"sigma": float(s), "gm_mae": float(gm_err), "all_mae": float(l1[mixed].mean())}
        )
    return rows


# -- command line --------------------------------------------------------------------------


def _git_dirs(args: argparse.Namespace) -> dict[str, Path]:
    dirs: dict[str, Path] = {}
    if args.mirror_root:
        for src in SOURCES.values():
            candidate = Path(args.mirror_root) / src.repository.replace("/", "+") / "repo"
            if candidate.exists():
                dirs[src.name] = candidate
    for item in args.git_dir or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--git-dir needs SOURCE=PATH, got {item!r}")
        dirs[_source_key(key).name] = Path(value)
    return dirs


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m swigapp.phantom.individuals {fetch,list,check}``."""
    parser = argparse.ArgumentParser(
        prog="python -m swigapp.phantom.individuals",
        description="Real individual anatomies for swigapp-phantom: " + describe_sources(),
    )
    parser.add_argument("--cache", default=None, help=f"cache folder (default ${CACHE_ENV} "
                        "or ~/.cache/swigapp/realdata)")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="extract the label maps from local bare git copies")
    fetch.add_argument(
        "--git-dir",
        action="append",
        metavar="SOURCE=PATH",
        help="git directory of a source: synthseg=..., synthsr=..., brainweb=... (repeat)",
    )
    fetch.add_argument("--mirror-root", help="folder holding <owner>+<name>/repo git dirs")
    fetch.add_argument("--convert", action="store_true", help="also convert to fractions now")
    fetch.add_argument("--overwrite", action="store_true")
    sub.add_parser("list", help="subjects, their split part and whether they are cached")
    check = sub.add_parser("check", help="anti-aliasing error against BrainWeb models")
    check.add_argument("names", nargs="*", default=["brainweb-04", "brainweb-05", "brainweb-06"])
    args = parser.parse_args(argv)
    if args.command == "fetch":
        dirs = _git_dirs(args)
        if not dirs:
            print("no source git directory given (--git-dir or --mirror-root)", file=sys.stderr)
            return 2
        report = extract(dirs, args.cache, overwrite=args.overwrite)
        print(f"cache: {cache_dir(args.cache)}")
        for name in report.extracted:
            print(f"  extracted {name} -> {label_path(name, args.cache)}")
        print(report.summary())
        if args.convert:
            for name in SUBJECTS:
                if label_path(name, args.cache).exists():
                    start = time.perf_counter()
                    converted(name, args.cache)
                    print(f"  converted {name} ({time.perf_counter() - start:.1f} s)")
        return 0 if not report.missing else 1
    if args.command == "list":
        split = load_split()
        part = {n: p for s in split["sources"].values() for p in ("training", "validation",
                "heldout") for n in s[p]}  # fmt: skip
        for name, (src, _) in SUBJECTS.items():
            state = "converted" if fractions_path(name, args.cache).exists() else (
                "extracted" if label_path(name, args.cache).exists() else "missing")  # fmt: skip
            print(f"{name:14s} {part.get(name, '-'):10s} {state:9s} {src.licence.split(':')[0]}")
        return 0
    rows_all = []
    for name in args.names:
        labels, _ = read_labels(label_path(name, args.cache))
        rows = antialias_table(labels)
        rows_all.append(rows)
        print(name, " ".join(f"{r['sigma']}:{r['gm_mae']:.3f}/{r['all_mae']:.3f}" for r in rows))
    print("sigma   GM MAE   all-class MAE (mean over models)")
    for i, row in enumerate(rows_all[0]):
        gm = np.mean([r[i]["gm_mae"] for r in rows_all])
        al = np.mean([r[i]["all_mae"] for r in rows_all])
        print(f"{row['sigma']:5.2f}   {gm:.3f}    {al:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
