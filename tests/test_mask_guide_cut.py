"""The brain mask's cuts by a guide where PD or T2 was estimated (swigapp.masking.guide_cut
and guide_ratio_cut, swigapp.participant.refine_mask)."""

import json
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from swigapp.masking import (
    GUIDE_RATIO_SHARE,
    GUIDE_SHARE,
    MAX_GUIDE_CUT,
    MAX_RATIO_CUT,
    MIN_RATIO_CUT,
    SHELL_DEPTH_LR,
    bright_csf,
    guide_cut,
    guide_ratio_cut,
    opened_core,
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


BIG = (64, 64, 64)
BIG_RADIUS = np.sqrt(((np.indices(BIG) - np.array([31.5, 31.5, 40.0])[:, None, None, None]) ** 2)
                     .sum(axis=0))  # fmt: skip


def muscle_subject() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A map-based mask (1 mm voxels) that holds the brain (ball of radius 18) and a block
    of neck muscle below it, joined to it over a wide face (no opening can cut it off); the
    T2w guide's own contrast synthesised from the maps (brain 1.0 with a bright core,
    muscle 0.9: T2 estimated GM-like from its T1), and the guide: the same in the brain,
    0.15 of it in the muscle (its short T2)."""
    brain = BIG_RADIUS <= 18
    muscle = np.zeros(BIG, bool)
    muscle[20:44, 20:44, 2:28] = True
    muscle &= ~brain
    mask = brain | muscle
    synth = np.where(brain, 1.0, 0.9).astype(np.float32)
    synth[BIG_RADIUS <= 4] = 2.5
    guide = synth.copy()
    guide[muscle] *= 0.15
    return mask, brain, synth, guide


def test_the_ratio_cut_removes_the_muscle_whose_guide_the_maps_do_not_explain():
    mask, brain, synth, guide = muscle_subject()
    far = mask & ~brain & (ndimage.distance_transform_edt(~brain) > 3)  # beyond smoothing
    cut, removed = guide_ratio_cut(mask, guide * 3.0, synth, (1.0, 1.0, 1.0))  # any scale
    assert cut[brain].mean() > 0.995 and not (cut & far).any()
    assert removed == pytest.approx(1 - cut.sum() / mask.sum()) and removed > 0.25
    # the opening alone does not cut it: a guide the maps explain leaves the mask whole
    same, removed = guide_ratio_cut(mask, guide, guide, (1.0, 1.0, 1.0))
    assert removed == 0.0 and np.array_equal(same, mask)
    assert opened_core(mask, (1.0, 1.0, 1.0))[far].mean() > 0.9
    # beyond the guide's field of view nothing is cut
    covered = np.ones(BIG, bool)
    covered[:32] = False
    cut, _ = guide_ratio_cut(mask, guide, synth, (1.0, 1.0, 1.0), covered)
    assert cut[:28][far[:28]].mean() > 0.8 and not (cut & far)[36:].any()


def test_a_ratio_cut_of_less_than_one_percent_is_edge_partial_volume_and_dropped(monkeypatch):
    _, brain, synth, _ = muscle_subject()
    guide = synth.copy()  # a skull-stripped brain: no muscle
    guide[17:26, 17:26, 46:55] *= 0.05  # dark at the edge, about 0.3 % of the mask
    cut, removed = guide_ratio_cut(brain, guide, synth, (1.0, 1.0, 1.0))
    assert removed == 0.0 and np.array_equal(cut, brain) and MIN_RATIO_CUT == 0.01
    monkeypatch.setattr("swigapp.masking.MIN_RATIO_CUT", 0.0)  # what the floor keeps
    cut, removed = guide_ratio_cut(brain, guide, synth, (1.0, 1.0, 1.0))
    assert 0.0 < removed < 0.01 and cut.sum() < brain.sum()


def test_a_ratio_cut_of_more_than_half_the_mask_leaves_it_alone():
    mask, _, synth, guide = muscle_subject()
    guide[BIG_RADIUS <= 15] *= 0.15  # the guide dark over the brain too: not seeing it
    cut, removed = guide_ratio_cut(mask, guide, synth, (1.0, 1.0, 1.0))
    assert removed == 0.0 and np.array_equal(cut, mask) and MAX_RATIO_CUT == 0.5


def test_the_ratio_cut_takes_the_muscle_off_a_real_head_given_t1_alone():
    """The committed real head (SynthSeg, 2 mm), T1 alone: PD and T2 estimated from T1 are
    brain-like in the face and scalp muscle (T1 GM-like), so the map-based mask takes it in
    (measured 1.37x the true brain, muscle 19 % of it); the T2w guide over its contrast
    synthesised from the maps cuts it (measured 1.16x, muscle 8 %; seeds 1-3: 1.05-1.16x)."""
    from swigapp.estimate import tissue_prior
    from swigapp.masking import mask_from_maps
    from swigapp.operators import grid, kspace
    from swigapp.phantom.subject import PhantomConfig, make_subject
    from swigapp.synthesis import synthesize

    fixture = Path(__file__).parent / "data" / "synthseg02_2mm_labels.nii.gz"
    s = make_subject(0, 2, PhantomConfig(size="tiny", anatomy=str(fixture), head=True))
    shape, vox, truth = s.truth.pd.shape, grid.voxel_sizes(s.affine), s.truth.brain_mask
    t1 = np.clip(kspace.upsample(np.clip(s.lr_maps["T1"], 0, None).astype(np.float64), shape),
                 0, None)  # fmt: skip
    est = tissue_prior({"T1": t1}, ["T1"], t1 > 0.1 * np.percentile(t1, 99))
    mask = mask_from_maps(est["PD"], est["T1"], voxel_size=vox, t2=est["T2"])
    muscle = s.truth.fractions["muscle"]
    assert mask.sum() > 1.3 * truth.sum() and muscle[mask].sum() > 0.15 * truth.sum()
    cut, removed = guide_ratio_cut(mask, s.guides["T2w"], synthesize(est, s.protocols["T2w"]),
                                   vox)  # fmt: skip
    assert cut.sum() < 1.2 * truth.sum() and muscle[cut].sum() < 0.1 * truth.sum()
    assert (truth & ~cut).sum() < 0.03 * truth.sum()  # the brain stays
    assert 0 < removed < MAX_RATIO_CUT


def test_refine_mask_cuts_by_the_ratio_only_where_t2_was_estimated(tmp_path):
    mask, brain, synth, guide = muscle_subject()
    masked = Masked(_save(tmp_path / "mask.nii.gz", mask), "maps (PD and T1 thresholds)")
    files = [_save(tmp_path / f"{n}.nii.gz", d)
             for n, d in (("T2w", guide), ("cov", np.ones(BIG)), ("synth", synth))]  # fmt: skip
    registrations = [GuideRegistration("T2w", *files).to_record()]
    protocols = {"T2w": DEFAULT_PROTOCOLS["T2w"].as_dict()}
    valid = np.ones((32, 32, 32, 3), np.float32)
    valid[..., 2] = 0  # T2 not acquired (PD and T1 were: an IR or VFA site)
    out = Masked.from_record(refine_mask(masked.to_record(), _save(tmp_path / "v.nii.gz", valid,
                                         2.0), registrations, protocols, tmp_path))  # fmt: skip
    assert out.guide_ratio_cut["name"] == "T2w"
    assert out.guide_ratio_cut["share"] == GUIDE_RATIO_SHARE
    assert out.guide_ratio_cut["removed"] > 0.25 and not out.guide_cut  # PD acquired: no shell cut
    cut = np.asarray(nib.load(out.mask_file).dataobj) > 0
    far = mask & ~brain & (ndimage.distance_transform_edt(~brain) > 3)
    assert cut[brain].mean() > 0.995 and not (cut & far).any()
    valid[..., 2] = 1  # T2 acquired: its criterion saw the muscle, no ratio cut
    valid[..., 0] = 0
    only_pd = Masked.from_record(refine_mask(masked.to_record(), _save(
        tmp_path / "v2.nii.gz", valid, 2.0), registrations, protocols, tmp_path))  # fmt: skip
    assert not only_pd.guide_ratio_cut
    json.dumps(out.to_record())


def test_register_again_only_after_a_ratio_cut_and_within_the_cut_mask(tmp_path, monkeypatch):
    from swigapp.participant import register_again

    calls = []

    def fake_register(lr_up, mask_file, guide_file, protocol, name, out_dir, settings, lr_file):
        calls.append((mask_file, guide_file, name, lr_file))
        return {"name": name, "registered_file": f"{out_dir}/{name}_registered.nii.gz",
                "seconds": 20.0}  # fmt: skip

    monkeypatch.setattr("swigapp.participant.register", fake_register)
    first = [GuideRegistration(g, f"first_{g}.nii.gz", "cov.nii.gz", "synth.nii.gz",
                               seconds=30.0).to_record() for g in ("T1w", "T2w")]  # fmt: skip
    guides = {"T1w": "t1w.nii.gz", "T2w": "t2w.nii.gz"}
    protocols = {g: DEFAULT_PROTOCOLS[g].as_dict() for g in guides}
    masked = Masked("cut.nii.gz", "maps (PD and T1 thresholds)")
    shell = replace(masked, guide_cut={"name": "T2w", "share": 0.5, "removed": 0.05})
    for record in (masked, shell):  # no cut, or only the shell's: the registrations stand
        kept = register_again(record.to_record(), first, "lr.nii.gz", "up.nii.gz", guides,
                              protocols, tmp_path)  # fmt: skip
        assert kept == first and not calls
    ratio = replace(masked, guide_ratio_cut={"name": "T2w", "share": 0.3, "removed": 0.18})
    again = register_again(ratio.to_record(), first, "lr.nii.gz", "up.nii.gz", guides, protocols,
                           tmp_path)  # fmt: skip
    assert [c[2] for c in calls] == ["T1w", "T2w"] and [a["name"] for a in again] == ["T1w", "T2w"]
    assert all(c[0] == "cut.nii.gz" and c[3] == "lr.nii.gz" for c in calls)
    assert [c[1] for c in calls] == ["t1w.nii.gz", "t2w.nii.gz"]
    assert again[0]["registered_file"] == f"{tmp_path}/T1w/T1w_registered.nii.gz"
    assert [a["seconds"] for a in again] == [50.0, 50.0]  # both registrations of each guide


def test_the_report_row_says_which_cuts_were_made():
    from swigapp.reports.subject import _mask_line

    masked = Masked("mask.nii.gz", "maps (PD and T1 thresholds)")
    assert _mask_line(masked) == "maps (PD and T1 thresholds)"
    ratio = {"name": "T2w", "share": 0.3, "removed": 0.185}
    shell = {"name": "T2w", "share": 0.5, "depth_lr": 2.0, "removed": 0.05}
    line = _mask_line(replace(masked, guide_ratio_cut=ratio, guide_cut=shell))
    assert "T2 estimated: cut where the T2w guide over its synthesised contrast is below 0.3" in (
        line
    )
    assert "(18.5 % of the mask), guides registered again within it" in line
    assert "PD estimated: cut where the T2w guide is below 0.5 of its median" in line
    assert line.index("T2 estimated") < line.index("PD estimated")  # the order they were made
