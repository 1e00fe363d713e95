"""Real individual anatomies: label conversion, split, and phantoms from the committed
SynthSeg fixture (tests/data/NOTICE); template phantoms unchanged."""

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from swigapp.phantom import individuals
from swigapp.phantom.individuals import (
    FREESURFER_CLASSES,
    SOURCES,
    SUBJECTS,
    AnatomyNotFoundError,
    antialias,
    converted,
    load_individual,
    load_split,
    one_hot,
    read_labels,
)
from swigapp.phantom.subject import PhantomConfig, make_subject

FIXTURE = Path(__file__).parent / "data" / "synthseg02_2mm_labels.nii.gz"


@pytest.fixture(scope="module")
def fixture_fractions():
    return converted(FIXTURE)


def test_fixture_is_small_and_from_an_apache_source():
    assert FIXTURE.stat().st_size < 400_000
    notice = (FIXTURE.parent / "NOTICE").read_text()
    assert "BBillot/SynthSeg" in notice and "Apache License" in notice


def test_fractions_sum_to_one_in_the_head_and_mix_at_boundaries(fixture_fractions):
    frac = fixture_fractions["fractions"]
    total = sum(frac.values())
    assert all(v.min() >= 0 and v.max() <= 1 for v in frac.values())
    labels, _ = read_labels(FIXTURE)
    inside = labels > 0
    cube = np.ones((3, 3, 3), bool)  # away from any air, every voxel is fully tissue
    inner = ndimage.binary_erosion(inside, cube, iterations=2)
    np.testing.assert_allclose(total[inner], 1.0, atol=2e-3)
    far = ~ndimage.binary_dilation(inside, iterations=4)
    assert total[far].max() < 1e-3  # air stays empty
    gm = frac["gm"]
    assert ((gm > 0.1) & (gm < 0.9)).sum() > 0.2 * (gm >= 0.9).sum()  # partial volume


def test_labels_map_to_the_right_tissues(fixture_fractions):
    labels, _ = read_labels(FIXTURE)
    frac = fixture_fractions["fractions"]
    for label, cls in [(3, "gm"), (2, "wm"), (12, "deep_gm"), (4, "csf"), (515, "bone")]:
        assert FREESURFER_CLASSES[label] == cls
        where = labels == label
        assert where.any()
        assert np.median(frac[cls][where]) > 0.5, (label, cls)
    masks = one_hot(labels, FREESURFER_CLASSES)
    assert set(masks) >= {"gm", "deep_gm", "wm", "csf", "bone", "marrow", "muscle", "fat"}
    with pytest.raises(ValueError, match="without a tissue class"):
        one_hot(np.array([[[0, 9999]]]), FREESURFER_CLASSES)


def test_antialias_of_a_flat_boundary():
    masks = {"gm": np.zeros((8, 8, 8), bool)}
    masks["gm"][:, :, :4] = True
    frac = antialias(masks, 0.55)["gm"]
    assert frac[4, 4, 3] < 1 and frac[4, 4, 4] > 0  # both sides of the edge share it
    np.testing.assert_allclose(frac[4, 4, 3] + frac[4, 4, 4], 1.0, atol=1e-5)


def test_split_is_disjoint_and_covers_every_subject_once():
    split = load_split()
    seen = []
    for name, src in split["sources"].items():
        parts = [src[p] for p in ("training", "validation", "heldout")]
        assert all(parts)
        seen += [n for part in parts for n in part]
        assert src["licence"].startswith(SOURCES[name].licence.split(":")[0])
    assert sorted(seen) == sorted(SUBJECTS) and len(seen) == len(set(seen))
    assert split == individuals.make_split(split["seed"])  # reproducible from its seed


def test_shipped_weights_flags_match_the_licences():
    for name, src in load_split()["sources"].items():
        apache = src["licence"] == "Apache-2.0"
        assert src["shipped_weights_allowed"] == SOURCES[name].shipped_weights
        if apache:
            assert src["shipped_weights_allowed"] and src["training_allowed"]
        assert "BrainWeb" in src["licence"] or apache  # only these sources are in the pool


def test_missing_anatomy_names_the_cache_and_the_fetch_command(tmp_path):
    with pytest.raises(AnatomyNotFoundError) as err:
        load_individual("synthseg-01", "tiny", cache=tmp_path)
    assert str(tmp_path) in str(err.value) and "individuals fetch" in str(err.value)


def test_load_individual_grid(tmp_path):
    anat = load_individual(FIXTURE, "tiny")
    assert all(n % 4 == 0 for n in anat.shape) and anat.shape[2] == 40
    np.testing.assert_allclose(anat.voxel_size, 2.0)
    assert anat.deep_gm is not None and anat.deep_gm.sum() > 0
    assert np.all(anat.deep_gm <= anat.gm + 1e-6)
    assert anat.head is not None and anat.head["bone"].sum() > 0
    np.testing.assert_allclose(anat.mask, np.clip(anat.gm + anat.wm + anat.csf, 0, 1), atol=1e-6)
    # a converted .npz reads back the same anatomy
    saved = individuals.save_fractions(converted(FIXTURE), tmp_path / "fixture.npz")
    again = load_individual(saved, "tiny")
    np.testing.assert_allclose(again.gm, anat.gm, atol=2e-3)


@pytest.mark.parametrize("head", [False, True])
def test_tiny_phantom_from_the_fixture(head):
    config = PhantomConfig(size="tiny", anatomy=str(FIXTURE), head=head, n_lesions=0)
    subject = make_subject(0, seed=1, config=config)
    truth = subject.truth
    assert truth.t1.shape == subject.guides["T1w"].shape and truth.t1.shape[2] == 40
    assert truth.t1.shape[0] % 4 == 0 and truth.t1.shape[1] % 4 == 0
    assert "deepGM" in truth.fractions
    pure = truth.tissue_masks(0.9)
    t1 = {t: float(np.median(truth.t1[pure[t]])) for t in ("WM", "deepGM", "GM")}
    assert t1["WM"] < t1["deepGM"] < t1["GM"], t1
    assert subject.config.record()["anatomy"] == str(FIXTURE)
    if head:  # the labelled skull, not drawn shells
        assert truth.fractions["bone"].sum() > 0 and truth.fractions["fat"].sum() > 0


def test_template_phantoms_are_unchanged():
    """Values of make_subject(0, seed=0) (with and without a head) computed with the code
    before real anatomies existed: the tissue draws exactly, the map sums to 1e-6."""
    plain = make_subject(0, seed=0)
    assert plain.truth.values["GM"]["T1"] == pytest.approx(1.4769610084962852, abs=1e-12)
    assert plain.truth.values["lesion"]["T2"] == pytest.approx(0.24511500210616954, abs=1e-12)
    sums = [float(a.astype(np.float64).sum()) for a in plain.truth.as_dict().values()]
    np.testing.assert_allclose(sums, [140775.95359500498, 255620.75654399395,
                                      22140.189362056553], rtol=1e-6)  # fmt: skip
    guide = float(plain.guides["FLAIR"].astype(np.float64).sum())
    assert guide == pytest.approx(57466192.48860955, rel=1e-6)
    assert "anatomy" not in plain.config.record() and "deepGM" not in plain.truth.fractions
    head = make_subject(0, seed=0, config=PhantomConfig(head=True))
    assert head.truth.values["fat"]["T1"] == pytest.approx(0.39716134064090913, abs=1e-12)
    sums = [float(a.astype(np.float64).sum()) for a in head.truth.as_dict().values()]
    np.testing.assert_allclose(sums, [194430.32542871498, 312189.33943492174,
                                      26743.140741909854], rtol=1e-6)  # fmt: skip
    lr = float(head.lr_maps["T1"].astype(np.float64).sum())
    assert lr == pytest.approx(38976.25897413179, rel=1e-6)
