"""The NIST/Caliber system phantom as real acquisitions for ``benchmarks.real``.

Source: ``JamesCKorte/mrbias`` (BSD-3-Clause; ``../shared/REALDATA.md``), test set A: a
Caliber MRI system phantom (serial 130-0093, NIST batch 2) on a Siemens Skyra 3T. Used here:

- the inversion-recovery series (2D, coronal, 1 slice through the T1 array, 0.98 mm
  in-plane, 6 mm slice, TR 4.5 s, TE 6.9 ms, 10 TIs from 35 to 3000 ms);
- the multi-echo spin echo (1 slice through the T2 array, 32 echoes, TE 10-320 ms, TR 5 s);
- the turbo spin echo (TR 5 s, TE 63 ms, 0.49 mm in-plane, 4 mm slices at both arrays): a
  real guide from another acquisition;
- NIST's reference T1 and T2 of each sphere at 20 C (batch 2, 3T) and the in-plane sphere
  centres of mrbias's ROI template for this scanner (``siemens_skyra_3p0T``).

What it exercises: real scanner physics with known values (the fits and the app's handling
of values far outside brain tissue) and a real guide contrast from a separate acquisition,
2.4 mm (IR) and 0.4 mm (MESE) off the series' slice. ``extract`` reads the DICOM series
from a stored copy (``fetch``) into NIfTI and JSON; nothing of it is committed.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import yaml

REPO = "JamesCKorte/mrbias"
TESTSET = "data/mrbias_testset_A"
REFERENCE = "mrbias/roi_reference_values/caliber_system_phantom/batch2_sn_gte_130-0042"
REFERENCE_FILES = {"T1": "T1-Batch2_3T_dl-20210726.csv", "T2": "T2-Batch2_3T_dl-20210726.csv"}
ROI_TEMPLATE = "mrbias/roi_detection_templates/siemens_skyra_3p0T"
TEMPERATURE_C = 20.0
#: Sphere ROI radius (mm): mrbias's 5 mm, less 1 mm so that a 2 mm LR voxel at the rim
#: (partial volume with the sphere wall) is not scored.
ROI_RADIUS_MM = 4.0
FILES = (
    "vfa.nii.gz",
    "vfa.json",
    "gre.nii.gz",
    "gre.json",
    "ir.nii.gz",
    "ir.json",
    "mese.nii.gz",
    "mese.json",
    "tse.nii.gz",
    "tse.json",
    "reference.json",
)


def _git(git_dir: Path, *args: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), *args], capture_output=True, check=True
    ).stdout


def _dicoms(git_dir: Path, series: str, first_only: bool = False) -> list:
    """The DICOM datasets of one series folder of the stored copy (or only its first)."""
    import pydicom

    names = _git(git_dir, "ls-tree", "--name-only", "HEAD", f"{series}/").decode().split()
    names = [n for n in names if not n.endswith("VERSION")][: 1 if first_only else None]
    return [pydicom.dcmread(io.BytesIO(_git(git_dir, "show", f"HEAD:{n}"))) for n in names]


def slice_affine(ds) -> np.ndarray:
    """RAS+ voxel-to-mm affine of one DICOM slice, array indexed (column, row)."""
    row_cos, col_cos = (np.asarray(ds.ImageOrientationPatient[i : i + 3], float) for i in (0, 3))
    dy, dx = (float(v) for v in ds.PixelSpacing)
    lps = np.eye(4)
    lps[:3, 0] = row_cos * dx
    lps[:3, 1] = col_cos * dy
    lps[:3, 2] = np.cross(row_cos, col_cos) * float(ds.SliceThickness)
    lps[:3, 3] = np.asarray(ds.ImagePositionPatient, float)
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def _image(ds) -> np.ndarray:
    return ds.pixel_array.T.astype(np.float32) * float(getattr(ds, "RescaleSlope", 1) or 1)


def volume(stack: list) -> tuple[np.ndarray, np.ndarray]:
    """The slices of one 3D series sorted along their normal: (X, Y, Z) and its RAS+ affine
    (the third column the step between slice centres)."""
    row, col = (np.asarray(stack[0].ImageOrientationPatient[i : i + 3], float) for i in (0, 3))
    normal = np.cross(row, col)
    stack = sorted(stack, key=lambda d: float(normal @ np.asarray(d.ImagePositionPatient, float)))
    affine = slice_affine(stack[0])
    first, last = (np.asarray(d.ImagePositionPatient, float) for d in (stack[0], stack[-1]))
    affine[:3, 2] = np.diag([-1.0, -1.0, 1.0]) @ (last - first) / (len(stack) - 1)
    return np.stack([_image(d) for d in stack], axis=2), affine


def extract(git_dir: Path, folder: Path) -> None:
    """Write ``FILES`` into ``folder`` from the stored copy of mrbias at ``git_dir``."""
    folder.mkdir(parents=True, exist_ok=True)
    series = _git(git_dir, "ls-tree", "-d", "--name-only", "HEAD", f"{TESTSET}/").decode().split()
    ir, mese, tse, vfa, gre = [], [], [], {}, []
    for name in series:
        desc = str(_dicoms(git_dir, name, first_only=True)[0].SeriesDescription)
        if desc.startswith("T1-VFA"):
            slices = _dicoms(git_dir, name)
            vfa[float(slices[0].FlipAngle)] = slices
            continue
        kind = {"T2": mese, "tse": tse, "gre": gre}.get(
            desc, ir if desc.startswith("T1-VIR") else None
        )
        if kind is not None:
            kind += _dicoms(git_dir, name)
    flips = sorted(vfa)
    volumes = [volume(vfa[f]) for f in flips]
    nib.save(
        nib.Nifti1Image(np.stack([v for v, _ in volumes], -1), volumes[0][1]),
        folder / "vfa.nii.gz",
    )
    first = vfa[flips[0]][0]
    meta = {"RepetitionTime": float(first.RepetitionTime) / 1000,
            "EchoTime": float(first.EchoTime) / 1000, "FlipAngle": flips}  # fmt: skip
    (folder / "vfa.json").write_text(json.dumps(meta, indent=1))
    gre_data, gre_affine = volume(gre)
    nib.save(nib.Nifti1Image(gre_data, gre_affine), folder / "gre.nii.gz")
    meta = {"RepetitionTime": float(gre[0].RepetitionTime) / 1000,
            "EchoTime": float(gre[0].EchoTime) / 1000,
            "FlipAngle": float(gre[0].FlipAngle)}  # fmt: skip
    (folder / "gre.json").write_text(json.dumps(meta, indent=1))
    tse = [d for d in tse if float(d.SliceThickness) == 4.0]  # the 3-slice TSE (both arrays)
    ir.sort(key=lambda d: float(d.InversionTime))
    mese.sort(key=lambda d: float(d.EchoTime))
    tse.sort(key=lambda d: float(d.ImagePositionPatient[1]))
    for stem, stack, extra in (
        ("ir", ir, {"InversionTime": [float(d.InversionTime) / 1000 for d in ir]}),
        ("mese", mese, {"EchoTime": [float(d.EchoTime) / 1000 for d in mese]}),
    ):
        data = np.stack([_image(d) for d in stack], axis=-1)[:, :, None, :]
        nib.save(nib.Nifti1Image(data, slice_affine(stack[0])), folder / f"{stem}.nii.gz")
        meta = {
            "RepetitionTime": float(stack[0].RepetitionTime) / 1000,
            "EchoTime": float(stack[0].EchoTime) / 1000,
            **extra,
        }
        (folder / f"{stem}.json").write_text(json.dumps(meta, indent=1))
    # each TSE slice keeps its own affine (its own position): one file, affines in the JSON
    nib.save(
        nib.Nifti1Image(np.stack([_image(d) for d in tse], -1), np.eye(4)), folder / "tse.nii.gz"
    )
    (folder / "tse.json").write_text(
        json.dumps(
            {
                "RepetitionTime": float(tse[0].RepetitionTime) / 1000,
                "EchoTime": float(tse[0].EchoTime) / 1000,
                "affines": [slice_affine(d).tolist() for d in tse],
            },
            indent=1,
        )
    )
    reference: dict = {}
    for quantity, name in REFERENCE_FILES.items():
        text = _git(git_dir, "show", f"HEAD:{REFERENCE}/{name}").decode()
        rows = [
            r for r in csv.DictReader(io.StringIO(text)) if float(r["Temp (C)"]) == TEMPERATURE_C
        ]
        rois = yaml.safe_load(
            _git(git_dir, "show", f"HEAD:{ROI_TEMPLATE}/default_{quantity}_rois.yaml")
        )
        reference[quantity] = {
            r["Solution"]: {
                "value_s": float(r[f"{quantity} reported (ms)"]) / 1000,
                "uncertainty_s": float(r[f"{quantity} uncertainty (ms)"]) / 1000,
                "centre_voxel": rois[f"{quantity.lower()}_roi_{r['Solution'].split('-')[1]}"][
                    "ctr_vox_coords"
                ],
                "t1_s": float(r["T1 reported (ms)"]) / 1000,
            }
            for r in rows
        }
    (folder / "reference.json").write_text(json.dumps(reference, indent=1))


def phantom_mask(images: np.ndarray) -> np.ndarray:
    """The phantom (X, Y, Z): the series' mean above 15 % of its 99th percentile, largest
    connected part, holes (sphere walls, fiducials, the central bar) filled slice by slice."""
    from scipy import ndimage

    mean = images.mean(axis=-1)
    disc = mean > 0.15 * np.percentile(mean, 99)
    labels, n = ndimage.label(disc)
    largest = labels == 1 + int(np.argmax(ndimage.sum(disc, labels, range(1, n + 1))))
    return np.stack([ndimage.binary_fill_holes(largest[..., k])
                     for k in range(largest.shape[2])], axis=2)  # fmt: skip


def voxel_mm(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """Coordinates (..., 3) of every voxel centre of a grid through ``affine`` (mm, or
    another grid's voxel indices for a voxel-to-voxel affine)."""
    index = np.stack(np.meshgrid(*map(np.arange, shape), indexing="ij"), -1).astype(float)
    return index @ affine[:3, :3].T + affine[:3, 3]


def sphere_centres_mm(reference: dict, affine: np.ndarray) -> dict[str, np.ndarray]:
    """World coordinates (mm) of each sphere's ROI centre, from the template's in-plane
    voxel centre on the series' grid (the same scanner and field of view)."""
    return {
        name: (affine @ [*r["centre_voxel"][:2], 0.0, 1.0])[:3] for name, r in reference.items()
    }


def sphere_region(
    shape: tuple[int, ...],
    affine: np.ndarray,
    centres: dict[str, np.ndarray],
    radius_mm: float = ROI_RADIUS_MM,
    in_plane: bool = True,
) -> np.ndarray:
    """Boolean image of the union of the sphere ROIs: discs of ``radius_mm`` in the slice
    plane (``in_plane``: one slice through the spheres), else balls."""
    world = voxel_mm(shape, affine)
    region = np.zeros(shape, bool)
    for centre in centres.values():
        region |= _distance(world, centre, affine, in_plane) <= radius_mm
    return region


def _distance(
    world: np.ndarray, centre: np.ndarray, affine: np.ndarray, in_plane: bool
) -> np.ndarray:
    """Distance (mm) from ``centre``; within the slice plane (the slice axis ignored) when
    ``in_plane``."""
    delta = world - centre
    if in_plane:
        normal = affine[:3, 2] / np.linalg.norm(affine[:3, 2])
        delta = delta - (delta @ normal)[..., None] * normal
    return np.linalg.norm(delta, axis=-1)


def sphere_stats(
    image: np.ndarray,
    affine: np.ndarray,
    centres: dict[str, np.ndarray],
    radius_mm: float = ROI_RADIUS_MM,
    in_plane: bool = True,
) -> dict[str, tuple[float, float, int]]:
    """Per sphere: mean, standard error of the mean and number of the finite voxels whose
    centres lie within ``radius_mm`` of the ROI centre (in the slice plane when
    ``in_plane``), on the image's own grid."""
    world = voxel_mm(image.shape, affine)
    out = {}
    for name, centre in centres.items():
        values = image[(_distance(world, centre, affine, in_plane) <= radius_mm)
                       & np.isfinite(image)]  # fmt: skip
        n = values.size
        sem = float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        out[name] = (float(values.mean()) if n else float("nan"), sem, n)
    return out


def tse_guide(folder: Path, affine: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, float]:
    """The real TSE slice nearest the series' slice, on the series' grid: 2x2 block average
    (0.49 -> 0.98 mm), then linear interpolation in its plane (the slice offset is kept as
    acquired); returns the image and the offset between the two slices' centres (mm)."""
    from scipy.ndimage import map_coordinates

    meta = json.loads((folder / "tse.json").read_text())
    stack = np.asarray(nib.load(folder / "tse.nii.gz").dataobj, dtype=np.float64)
    centre = affine @ [(shape[0] - 1) / 2, (shape[1] - 1) / 2, 0, 1]
    offsets = []
    for a in meta["affines"]:
        a = np.asarray(a)
        normal = a[:3, 2] / np.linalg.norm(a[:3, 2])
        offsets.append(abs(float((centre[:3] - a[:3, 3]) @ normal)))
    k = int(np.argmin(offsets))
    fine, fine_affine = stack[..., k], np.asarray(meta["affines"][k])
    coarse = fine.reshape(fine.shape[0] // 2, 2, fine.shape[1] // 2, 2).mean(axis=(1, 3))
    coarse_affine = fine_affine @ np.array(
        [[2, 0, 0, 0.5], [0, 2, 0, 0.5], [0, 0, 1, 0], [0, 0, 0, 1.0]]
    )
    world = voxel_mm(shape, affine)
    inside = (world - coarse_affine[:3, 3]) @ np.linalg.inv(coarse_affine[:3, :3]).T
    image = map_coordinates(coarse, [inside[..., 0], inside[..., 1]], order=1, cval=0.0)
    return image.astype(np.float32), offsets[k]


def _case(folder: Path, stem: str):
    from benchmarks.real import RealCase
    from swigapp.physics.protocol import Protocol

    img = nib.load(folder / f"{stem}.nii.gz")
    images = np.asarray(img.dataobj, dtype=np.float64)
    meta = json.loads((folder / f"{stem}.json").read_text())
    reference = json.loads((folder / "reference.json").read_text())
    quantity, kind = ("T1", "IRT1") if stem == "ir" else ("T2", "MESE")
    centres = sphere_centres_mm(reference[quantity], img.affine)
    tr = meta["RepetitionTime"]
    tse, offset = tse_guide(folder, img.affine, images.shape[:3])
    tse_meta = json.loads((folder / "tse.json").read_text())
    guides = {
        "T2w": (
            tse,
            Protocol(
                "SE",
                tr=tse_meta["RepetitionTime"],
                te=tse_meta["EchoTime"],
                source=f"real TSE, 4 mm slice {offset:.1f} mm off",
            ),
        )
    }
    assumed = [
        f"the T2w guide is a real TSE (TE {1000 * tse_meta['EchoTime']:.0f} ms, 0.49 mm, 4 mm "
        f"slice) acquired separately, {offset:.1f} mm from the series' slice, 2x2-averaged "
        "onto its grid",
        f"NIST reference values of batch 2 at {TEMPERATURE_C:.0f} C (the room temperature "
        "was not recorded)",
        "the images are 12-bit and clipped at 4095 (the MESE's long-T2 spheres and fluid "
        "on most echoes); an LR voxel over a clipped sample is given at 4095 too (its "
        "value is unknown), so the app leaves it out of its fit as it does at full "
        "resolution",
    ]
    if kind == "IRT1":
        values = meta["InversionTime"]
        k = values.index(0.125)
        guides["T1w"] = (
            images[..., k],
            Protocol("IR", tr=tr, te=meta["EchoTime"], ti=0.125, source="TI 125 ms"),
        )
        common = {"RepetitionTime": tr, "EchoTime": meta["EchoTime"], "FlipAngle": 90}
        held_out = (k,)
        assumed.append("the T1w guide (TI 125 ms) is left out of the series and the reference")
    else:
        values = meta["EchoTime"]
        guides["PDw"] = (images[..., 0], Protocol("SE", tr=tr, te=values[0], source="echo 1"))
        common = {"RepetitionTime": tr, "FlipAngle": 90, "RefocusingFlipAngle": 180}
        held_out = ()
        assumed.append(
            "the PDw guide (echo 1) stays in the series (the EPG fit needs the whole train)"
        )
    mask = phantom_mask(images)
    return RealCase(
        f"nist{stem}",
        kind,
        images,
        values,
        img.affine,
        mask,
        common,
        guides,
        factor=2,
        held_out=held_out,
        assumed=assumed,
        region=sphere_region(images.shape[:3], img.affine, centres),
        region_name="spheres",
        spheres={n: (reference[quantity][n], c) for n, c in centres.items()},
    )


def gre_guide(folder: Path, affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The real 3D GRE (1 mm isotropic) on the VFA's grid: averaged along its slice axis
    over the VFA's slice spacing, then linear interpolation through the affines."""
    from scipy import ndimage

    img = nib.load(folder / "gre.nii.gz")
    data = np.asarray(img.dataobj, dtype=np.float64)
    size = round(float(np.linalg.norm(affine[:3, 2]) / np.linalg.norm(img.affine[:3, 2])))
    data = ndimage.uniform_filter1d(data, size=max(size, 1), axis=2)
    coords = np.moveaxis(voxel_mm(shape, np.linalg.inv(img.affine) @ affine), -1, 0)
    return ndimage.map_coordinates(data, coords, order=1, cval=0.0).astype(np.float32)


def load_vfa(folder: Path):
    """The phantom's 3D variable-flip-angle slab (both arrays, 1 x 1 x 3 mm): T1 of every
    sphere, with NIST's T1 of the T2 array's spheres too."""
    from benchmarks.real import RealCase
    from swigapp.physics.protocol import Protocol

    img = nib.load(folder / "vfa.nii.gz")
    images = np.asarray(img.dataobj, dtype=np.float64)
    meta = json.loads((folder / "vfa.json").read_text())
    gre_meta = json.loads((folder / "gre.json").read_text())
    reference = json.loads((folder / "reference.json").read_text())
    gre_affine = nib.load(folder / "gre.nii.gz").affine
    spheres = {}
    for quantity, records in reference.items():
        for name, r in records.items():
            value = r["value_s"] if quantity == "T1" else r["t1_s"]
            centre = (gre_affine @ [*r["centre_voxel"], 1.0])[:3]
            spheres[name] = ({"value_s": value}, centre)
    flips, tr, te = meta["FlipAngle"], meta["RepetitionTime"], meta["EchoTime"]
    k = flips.index(15.0)
    guides = {
        "T1w": (images[..., k], Protocol("GRE", tr=tr, te=te, flip_deg=15.0,
                                         source="flip angle 15 deg")),
        "PDw": (gre_guide(folder, img.affine, images.shape[:3]),
                Protocol("GRE", tr=gre_meta["RepetitionTime"], te=gre_meta["EchoTime"],
                         flip_deg=gre_meta["FlipAngle"], source="real 3D GRE, 1 mm")),
    }  # fmt: skip
    assumed = [
        "the T1w guide (flip angle 15 deg, which mrbias also leaves out) is left out of the "
        "series and the reference",
        "the PDw guide is a real 3D GRE (TR 6.3 ms, 10 deg, 1 mm) acquired separately, "
        "averaged over each 3 mm slice onto the slab's grid",
        "no B1 map: the app's VFA T1 is not corrected for B1, nor is the reference",
        f"NIST's T1 of both arrays' spheres (batch 2, 3T, {TEMPERATURE_C:.0f} C); ROIs are "
        f"balls of {ROI_RADIUS_MM:g} mm about mrbias's template centres",
    ]
    centres = {n: c for n, (_, c) in spheres.items()}
    return RealCase(
        "nistvfa", "VFA", images, flips, img.affine, phantom_mask(images),
        {"RepetitionTime": tr, "EchoTime": te}, guides, factor=2, held_out=(k,),
        assumed=assumed, region=sphere_region(images.shape[:3], img.affine, centres,
                                              in_plane=False),
        region_name="spheres", spheres=spheres,
    )  # fmt: skip


def load_ir(folder: Path):
    """The phantom's inversion-recovery slice through the T1 array."""
    return _case(folder, "ir")


def load_mese(folder: Path):
    """The phantom's multi-echo spin-echo slice through the T2 array."""
    return _case(folder, "mese")


def main() -> None:
    """Extract the phantom's series (``benchmarks.real --mirror-root`` does the same)."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mirror-root",
        type=Path,
        required=True,
        help="folder of stored copies (fetch JamesCKorte/mrbias first)",
    )
    parser.add_argument(
        "--data", type=Path, default=Path.home() / ".cache" / "swigapp" / "realdata" / "nist"
    )
    args = parser.parse_args()
    extract(args.mirror_root / REPO.replace("/", "+") / "repo", args.data)
    print(f"wrote {', '.join(FILES)} into {args.data}")


if __name__ == "__main__":
    main()
