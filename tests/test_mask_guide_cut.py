"""The brain mask's cut by a guide where PD was estimated (swigapp.masking.guide_cut,
swigapp.participant.refine_mask)."""

import json

import nibabel as nib
import numpy as np
import pytest

from swigapp.masking import (
    GUIDE_SHARE,
    MAX_GUIDE_CUT,
    SHELL_DEPTH_LR,
    bright_csf,
    guide_cut,
)
from swigapp.participant import refine_mask
from swigapp.physics.protocol import DEFAULT_PROTOCOLS
from swigapp.results import GuideRegistration, Masked

SHAPE = (40, 40, 40)
LR_VOXEL = (2.0, 2.0, 2.0)  # the LR voxel in HR voxels: 2 mm LR on a 1 mm grid
RADIUS = np.sqrt(((np.indices(SHAPE) - 19.5) ** 2).sum(axis=0))


def shell_subject() -> tuple[np.ndarray, np.ndarray]:
    """A map-based mask (ball of radius 16) that holds a partial-volume shell beyond the
    brain (radius 15), and a T2w-like guide: WM 0.8, a bright CSF core (ventricles) 2.0, a
    dark spot inside (0.1), the shell at 0.25 of the tissue."""
    mask = RADIUS <= 16
    guide = np.where(RADIUS <= 15, 0.8, 0.2).astype(np.float32)
    guide[RADIUS <= 3] = 2.0
    guide[17:19, 25:27, 19:21] = 0.1  # dark inside the brain (a flow void): kept
    return mask, guide


def test_guides_with_bright_csf_are_t2w_and_pdw():
    assert bright_csf(DEFAULT_PROTOCOLS["T2w"]) and bright_csf(DEFAULT_PROTOCOLS["PDw"])
    assert not bright_csf(DEFAULT_PROTOCOLS["T1w"]) and not bright_csf(DEFAULT_PROTOCOLS["FLAIR"])


def test_the_cut_removes_the_dark_surface_shell_and_keeps_the_inside():
    mask, guide = shell_subject()
    cut, removed = guide_cut(mask, guide, LR_VOXEL)
    brain = RADIUS <= 15
    assert np.array_equal(cut, brain)  # the shell gone, the dark spot inside filled back
    assert removed == pytest.approx(1 - brain.sum() / mask.sum())
    assert 0.1 < removed < MAX_GUIDE_CUT and 0.2 < GUIDE_SHARE * 0.8  # shell: 0.25 of tissue
    # beyond the guide's field of view nothing is cut
    covered = np.ones(SHAPE, bool)
    covered[:, :, 30:] = False
    cut, _ = guide_cut(mask, guide, LR_VOXEL, covered)
    assert cut[:, :, 30:][mask[:, :, 30:]].all() and not cut[:, :, :10][~brain[:, :, :10]].any()


def test_the_cut_stays_in_the_shell_where_the_mask_is_open_at_a_slab_face(monkeypatch):
    """A slab (the mask reaches the array's top and bottom faces) whose guide is dark in deep
    WM that reaches the top face (a biased T2w): no hole to fill, yet only the shell goes."""
    mask, guide = shell_subject()
    mask, guide = mask[:, :, 8:25], guide[:, :, 8:25]
    brain = (RADIUS <= 15)[:, :, 8:25]
    deep = (RADIUS[:, :, 8:25] <= 5) & (np.indices(mask.shape)[2] >= 12)
    guide[deep] = 0.3  # below half the median, 10 voxels (5 LR voxels) or more inside
    cut, removed = guide_cut(mask, guide, LR_VOXEL)
    assert np.array_equal(cut, brain)
    assert removed == pytest.approx(1 - brain.sum() / mask.sum())
    # without the depth limit the deep WM would go: the limit is what keeps it
    monkeypatch.setattr("swigapp.masking.SHELL_DEPTH_LR", np.inf)
    cut, _ = guide_cut(mask, guide, LR_VOXEL)
    assert not cut[deep].any()


def test_the_cut_reaches_two_lr_voxels_along_each_axis(monkeypatch):
    """LR voxels of 1 x 1 x 4 HR voxels: a guide dark in a layer 3 voxels deep at the box's
    sides and 9 at its top and bottom loses 2 voxels at the sides, 8 at top and bottom."""
    assert SHELL_DEPTH_LR == 2.0
    monkeypatch.setattr("swigapp.masking.MAX_GUIDE_CUT", 0.5)
    shape = (60, 60, 60)
    mask = np.zeros(shape, bool)
    mask[2:58, 2:58, 2:58] = True
    guide = np.full(shape, 0.1, np.float32)
    guide[5:55, 5:55, 11:49] = 1.0  # bright inside: the median over the mask
    cut, _ = guide_cut(mask, guide, (1.0, 1.0, 4.0))
    expected = np.zeros(shape, bool)
    expected[4:56, 4:56, 10:50] = True
    assert np.array_equal(cut, expected)


def test_a_guide_dark_over_much_of_the_brain_leaves_the_mask_alone():
    mask, guide = shell_subject()
    guide[:, :20] *= 0.1  # half the head dark: a bias field or a failed registration
    cut, removed = guide_cut(mask, guide, LR_VOXEL)
    assert removed == 0.0 and np.array_equal(cut, mask)
    assert MAX_GUIDE_CUT < 0.5


def _save(path, data, voxel: float = 1.0) -> str:
    affine = np.diag([voxel, voxel, voxel, 1.0])
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), affine), path)
    return str(path)


def test_refine_mask_cuts_only_where_pd_was_estimated_and_says_so(tmp_path):
    mask, guide = shell_subject()
    masked = Masked(_save(tmp_path / "mask.nii.gz", mask), "maps (PD and T1 thresholds)")
    registrations = [
        GuideRegistration(g, _save(tmp_path / f"{g}.nii.gz", image),
                          _save(tmp_path / f"{g}_cov.nii.gz", np.ones(SHAPE)), "").to_record()
        for g, image in (("T1w", 2.0 - guide), ("T2w", guide))
    ]  # fmt: skip
    protocols = {g: DEFAULT_PROTOCOLS[g].as_dict() for g in ("T1w", "T2w")}
    valid = np.ones((20, 20, 20, 3), np.float32)  # (x, y, z, map), 2 mm: all acquired
    full = _save(tmp_path / "valid_full.nii.gz", valid, 2.0)
    assert refine_mask(masked.to_record(), full, registrations, protocols, tmp_path) == (
        masked.to_record()
    )
    valid[..., 0] = 0  # PD not acquired
    out = Masked.from_record(
        refine_mask(
            masked.to_record(),
            _save(tmp_path / "valid_t1.nii.gz", valid, 2.0),
            registrations,
            protocols,
            tmp_path,
        )
    )
    assert out.guide_cut["name"] == "T2w" and out.guide_cut["share"] == GUIDE_SHARE
    assert out.guide_cut["depth_lr"] == SHELL_DEPTH_LR
    assert np.array_equal(np.asarray(nib.load(out.mask_file).dataobj) > 0, RADIUS <= 15)
    assert out.method == masked.method
    # without a guide whose CSF is bright, the mask stays
    only_t1 = refine_mask(masked.to_record(), _save(tmp_path / "v.nii.gz", valid, 2.0),
                          registrations[:1], protocols, tmp_path)  # fmt: skip
    assert only_t1 == masked.to_record()
    json.dumps(out.to_record())  # travels between the workflow's nodes
