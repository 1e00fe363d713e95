"""Write phantom subjects as a valid BIDS raw dataset, with the HR truth as a derivative.

Layout per subject::

    sub-XX/anat/sub-XX_acq-lowres_{PDmap,T1map,T2map}.nii.gz   LR maps (T1/T2 in s)
    sub-XX/anat/sub-XX_{T1w,T2w,FLAIR}.nii.gz                   HR guides + protocol sidecars
    derivatives/phantom-truth/sub-XX/anat/sub-XX_desc-truth_{PDmap,T1map,T2map}.nii.gz
    derivatives/phantom-truth/sub-XX/anat/sub-XX_label-{GM,WM,CSF,lesion}_probseg.nii.gz
    derivatives/phantom-truth/sub-XX/anat/sub-XX_desc-{brain,lesion}_mask.nii.gz
    (the brain mask's sidecar records seed, tissue values, guide motion and protocols)

The dataset is built in a temporary folder beside ``out_dir`` and moved into place only
when complete, so a crash leaves no partial dataset.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from swigapp._version import __version__
from swigapp.io.bids import MAP_SUFFIX
from swigapp.io.files import save_nifti, umasked, write_json
from swigapp.phantom import raw
from swigapp.phantom.subject import PhantomConfig, PhantomSubject, make_subject

LOG = logging.getLogger("swigapp.phantom")

BIDS_VERSION = "1.10.0"
TRUTH_PIPELINE = "phantom-truth"
MAP_UNITS = {"PD": "arbitrary (water = 1)", "T1": "s", "T2": "s"}
GENERATED_BY = {
    "Name": "swigapp-phantom",
    "Version": __version__,
    "CodeURL": "https://github.com/swigapp/swigapp",
}


class DatasetExistsError(FileExistsError):
    """The output folder exists and is not empty."""


def write_dataset(
    out_dir: str | Path,
    n_subjects: int = 1,
    seed: int = 0,
    config: PhantomConfig | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Generate ``n_subjects`` phantom subjects and write them as a BIDS dataset at ``out_dir``.

    Raises :class:`DatasetExistsError` if ``out_dir`` exists and is not empty (unless
    ``overwrite``). Returns the dataset path.
    """
    out_dir = Path(out_dir).absolute()
    if n_subjects < 1:
        raise ValueError(f"need at least 1 subject, got {n_subjects}")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        if not overwrite:
            raise DatasetExistsError(f"{out_dir}: exists and is not empty (use --overwrite)")
    config = config or PhantomConfig()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    staging.chmod(umasked(0o777))  # mkdtemp makes 0700: the dataset must be readable by all
    try:
        _write_top_level(staging, n_subjects, seed, config)
        for index in tqdm(range(n_subjects), desc="phantom subjects", disable=not progress):
            subject = make_subject(index, seed=seed, config=config)
            write_subject(staging, subject)
            LOG.info("wrote sub-%s", subject.label)
        if out_dir.exists():
            shutil.rmtree(out_dir) if out_dir.is_dir() else out_dir.unlink()
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _write_top_level(root: Path, n_subjects: int, seed: int, config: PhantomConfig) -> None:
    write_json(
        root / "dataset_description.json",
        {
            "Name": "swigapp phantom: low-resolution qMRI maps with high-resolution guides",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "raw",
            "License": "CC0",
            "Authors": ["swigapp-phantom"],
            "GeneratedBy": [GENERATED_BY | {"Description": f"seed {seed}"}],
        },
    )
    lowres = (
        "k-space truncated"
        if config.acquisition == "3d"
        else f"2D multi-slice: in-plane k-space truncated, {config.slice_profile} slice profile"
    )
    source = "the ICBM 2009 template anatomy"
    if config.anatomy is not None:
        source = "real individual anatomies (participants.tsv: anatomy; see "
        source += "swigapp.phantom.individuals for their sources and licences)"
    (root / "README").write_text(
        f"Synthetic dataset made by swigapp-phantom from {source}.\n"
        f"Subjects: {n_subjects}; seed: {seed}; configuration: {config.record()}.\n"
        f"Low-resolution PD/T1/T2 maps ({lowres}, T1/T2 in seconds) and "
        "high-resolution weighted guides (T1w MPRAGE, T2w TSE, T2-FLAIR) synthesised by "
        "signal equations, with head motion, receive bias and Rician noise.\n"
        f"The high-resolution ground truth is in derivatives/{TRUTH_PIPELINE}.\n"
    )
    columns = {
        "phantom_seed": {"Description": "base seed of swigapp-phantom"},
        "phantom_index": {"Description": "index of the subject under that seed"},
    }
    rows = [[f"sub-{i + 1:02d}", str(seed), str(i)] for i in range(n_subjects)]
    if config.anatomy is not None:
        columns["anatomy"] = {"Description": "the individual anatomy the subject was made from"}
        rows = [[*r, str(config.anatomy_of(i))] for i, r in enumerate(rows)]
    lines = ["\t".join(["participant_id", *columns]), *("\t".join(r) for r in rows)]
    (root / "participants.tsv").write_text("\n".join(lines) + "\n")
    write_json(root / "participants.json", columns)
    truth_root = root / "derivatives" / TRUTH_PIPELINE
    write_json(
        truth_root / "dataset_description.json",
        {
            "Name": "swigapp phantom ground truth (high-resolution maps and tissue fractions)",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "derivative",
            "GeneratedBy": [GENERATED_BY],
            "SourceDatasets": [{"URL": "bids:raw:"}],
            "DatasetLinks": {"raw": "../../"},
        },
    )


def write_subject(root: Path, subject: PhantomSubject) -> None:
    """Write one subject's raw files and truth derivatives under dataset ``root``."""
    sub = f"sub-{subject.label}"
    anat = root / sub / "anat"
    common = {
        "MagneticFieldStrength": 3,
        "Manufacturer": "swigapp-phantom (simulated)",
        "MRAcquisitionType": "3D",
    }
    supplied = {m for kind in subject.config.raw_qmri for m in raw.PROVIDES[kind]}
    for name, data in subject.lr_maps.items():
        if name in supplied or name not in subject.config.maps:
            continue
        stem = anat / f"{sub}_acq-lowres_{MAP_SUFFIX[name]}"
        save_nifti(f"{stem}.nii.gz", data, subject.lr_affine)
        write_json(f"{stem}.json", _lr_sidecar(subject, name, common))
    if subject.config.raw_qmri:
        write_raw_series(anat, sub, subject, common)
    for name, data in subject.guides.items():
        stem = anat / f"{sub}_{name}"
        save_nifti(f"{stem}.nii.gz", data, subject.affine)
        sidecar = common | subject.protocols[name].to_sidecar()
        write_json(f"{stem}.json", sidecar)
    truth_dir = root / "derivatives" / TRUTH_PIPELINE / sub / "anat"
    raw_ref = f"bids:raw:{sub}/anat/{sub}_acq-lowres_T1map.nii.gz"
    affine = subject.truth_affine  # the HR grid on the LR maps' axes
    stripped = not subject.config.head
    for name, data in subject.truth.as_dict().items():
        stem = truth_dir / f"{sub}_desc-truth_{MAP_SUFFIX[name]}"
        save_nifti(f"{stem}.nii.gz", data, affine)
        write_json(
            f"{stem}.json",
            {"Units": MAP_UNITS[name], "SkullStripped": stripped, "Sources": [raw_ref]},
        )
    for tissue, frac in subject.truth.fractions.items():
        save_nifti(truth_dir / f"{sub}_label-{tissue}_probseg.nii.gz", frac, affine)
    save_nifti(truth_dir / f"{sub}_desc-lesion_mask.nii.gz", subject.truth.lesion_mask, affine)
    save_nifti(truth_dir / f"{sub}_desc-brain_mask.nii.gz", subject.truth.brain_mask, affine)
    # the generation record rides on the brain mask's sidecar (a valid BIDS location)
    write_json(
        truth_dir / f"{sub}_desc-brain_mask.json",
        {
            "Type": "Brain",
            "Sources": [raw_ref],
            "Seed": list(subject.seed),
            "TissueValues": subject.truth.values,
            "GuideMotion": {k: dataclasses.asdict(v) for k, v in subject.motion.items()},
            "GuideProtocols": {k: v.as_dict() for k, v in subject.protocols.items()},
            "Configuration": subject.config.record(),
        },
    )


def write_raw_series(anat: Path, sub: str, subject: PhantomSubject, common: dict) -> None:
    """The subject's raw qMRI series (:mod:`swigapp.phantom.raw`) at the LR resolution, with
    the LR maps' geometry in their sidecars."""
    geometry = {
        k: v for k, v in _lr_sidecar(subject, "T1", common).items()
        if k not in ("Units", "EstimationMethod", "LowResolutionFactors", "AcquisitionModel")
    }  # fmt: skip
    rng = np.random.default_rng([*subject.seed, 7])
    for kind in subject.config.raw_qmri:
        images = raw.series_images(kind, subject.lr_maps, rng)
        names = []
        for image in images:
            entities = "".join(f"_{k}-{v}" for k, v in image.entities.items())
            stem = anat / f"{sub}_acq-lowres{entities}_{image.suffix}"
            save_nifti(f"{stem}.nii.gz", image.data, subject.lr_affine)
            sidecar = geometry | image.sidecar
            if image.suffix == "UNIT1":
                sidecar["BasedOn"] = [f"bids::{sub}/anat/{n}" for n in names]
            write_json(f"{stem}.json", sidecar)
            names.append(f"{stem.name}.nii.gz")


def _lr_sidecar(subject: PhantomSubject, name: str, common: dict) -> dict:
    """Sidecar of one LR map: 3D k-space truncation, or the 2D stack's slice geometry (mm)."""
    if subject.config.acquisition == "3d":
        return common | {
            "Units": MAP_UNITS[name],
            "EstimationMethod": "simulated: k-space truncation of the ground truth + noise",
            "LowResolutionFactors": list(subject.config.lr_factors),
        }
    acq = subject.acquisition.to_record()
    return common | {
        "MRAcquisitionType": "2D",
        "SliceThickness": acq["slice_thickness_mm"],
        "SpacingBetweenSlices": acq["slice_spacing_mm"],
        "SliceEncodingDirection": "ijk"[acq["slice_axis"]],
        "Units": MAP_UNITS[name],
        "EstimationMethod": (
            "simulated: 2D multi-slice acquisition of the ground truth (in-plane k-space "
            f"truncation, {acq['profile']} slice profile) + noise"
        ),
        "LowResolutionFactors": acq["factors"],
        "AcquisitionModel": acq,
    }
