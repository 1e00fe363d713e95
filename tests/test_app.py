"""The BIDS App end to end on a tiny 2-subject phantom: outputs, provenance, validators,
determinism, resume after a failure, group level."""

import json
import shutil
import stat
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from swigapp import metrics
from swigapp.cli import run as cli
from swigapp.metrics import guide_ssim
from swigapp.models.shipped import model_card
from swigapp.phantom.bids import TRUTH_PIPELINE
from swigapp.physics.protocol import Protocol
from swigapp.synthesis import synthesize

MAPS = {"PD": "PDmap", "T1": "T1map", "T2": "T2map"}


def _read_only(root: Path) -> dict[Path, int]:
    """Make every file and folder of ``root`` read-only; return the old modes."""
    modes = {}
    for path in [root, *root.rglob("*")]:
        modes[path] = path.stat().st_mode
        path.chmod(modes[path] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return modes


def _snapshot(root: Path) -> dict[str, tuple[int, float]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def app_run(tiny_dataset, tmp_path_factory):
    """Run the participant level on both subjects with the input dataset read-only."""
    base = tmp_path_factory.mktemp("app")
    out, work = base / "out", base / "work"
    before = _snapshot(tiny_dataset)
    modes = _read_only(tiny_dataset)
    try:
        rc = cli.main([str(tiny_dataset), str(out), "participant", "-w", str(work),
                       "--nprocs", "2", "--omp-nthreads", "1"])  # fmt: skip
    finally:
        for path, mode in sorted(modes.items(), reverse=True):
            path.chmod(mode)
    assert _snapshot(tiny_dataset) == before, "the input dataset was modified"
    return {"rc": rc, "out": out, "work": work, "bids": tiny_dataset}


def _load(path):
    img = nib.load(path)
    return np.asarray(img.dataobj, dtype=np.float32), img


def test_participant_level_succeeds_and_names_outputs(app_run):
    assert app_run["rc"] == 0
    anat = app_run["out"] / "sub-01" / "anat"
    expected = [
        *(f"sub-01_res-hi_desc-swig_{s}.nii.gz" for s in MAPS.values()),
        "sub-01_res-hi_desc-brain_mask.nii.gz",
        "sub-01_res-hi_desc-registered_T1w.nii.gz",
        "sub-01_res-hi_desc-registered_T2w.nii.gz",
        "sub-01_res-hi_desc-synth_FLAIR.nii.gz",
        "sub-01_res-hi_desc-synthguide_T1w.nii.gz",
        "sub-01_from-T1w_to-qmri_mode-image_xfm.mat",
        "sub-01_from-T2w_to-qmri_mode-image_xfm.mat",
    ]
    for name in expected:
        assert (anat / name).is_file(), name
    assert (app_run["out"] / "sub-01.html").is_file()
    assert (app_run["out"] / "sub-02.html").is_file()
    assert not list(app_run["out"].glob(".swigapp-staging-*"))


def test_sr_maps_are_physical_and_beat_the_lr_input(app_run):
    """On the HR grid of the guides, in seconds, and closer to the truth than the LR maps."""
    out, bids = app_run["out"], app_run["bids"]
    truth_dir = bids / "derivatives" / TRUTH_PIPELINE / "sub-01" / "anat"
    mask = _load(truth_dir / "sub-01_desc-brain_mask.nii.gz")[0] > 0.5
    guide = nib.load(bids / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
    for m, suffix in MAPS.items():
        sr, img = _load(out / "sub-01" / "anat" / f"sub-01_res-hi_desc-swig_{suffix}.nii.gz")
        truth = _load(truth_dir / f"sub-01_desc-truth_{suffix}.nii.gz")[0]
        assert sr.shape == truth.shape == guide.shape
        np.testing.assert_allclose(img.header.get_zooms(), guide.header.get_zooms(), atol=1e-4)
        assert np.isfinite(sr).all()
        lr_up = _load(app_run["work"] / "swigapp_wf" / "single_subject_01_wf" / "conform_maps"
                      / "lr_up_maps.nii.gz")[0][..., list(MAPS).index(m)]  # fmt: skip
        rng = metrics.DATA_RANGE[m]
        assert metrics.ssim(sr, truth, rng, mask=mask) > metrics.ssim(lr_up, truth, rng, mask=mask)
    t1 = _load(out / "sub-01" / "anat" / "sub-01_res-hi_desc-swig_T1map.nii.gz")[0]
    gm = _load(truth_dir / "sub-01_label-GM_probseg.nii.gz")[0] > 0.9
    assert 1.0 < float(np.median(t1[gm])) < 2.0  # seconds, 3T grey matter
    true_t1 = _load(truth_dir / "sub-01_desc-truth_T1map.nii.gz")[0]
    lr_t1 = _load(app_run["work"] / "swigapp_wf" / "single_subject_01_wf" / "conform_maps"
                  / "lr_up_maps.nii.gz")[0][..., 1]  # fmt: skip
    sr_error = float(np.mean(np.abs(t1 - true_t1)[gm]))
    assert sr_error < 0.8 * float(np.mean(np.abs(lr_t1 - true_t1)[gm]))  # GM T1 error (s)


def test_uncertainty_maps_are_written_shown_and_track_the_error(app_run):
    """The orientation ensemble's spread: one map per map, in its units, 0 outside the brain,
    in the QC JSON and the report, and larger where the error is (Spearman rho)."""
    from scipy import stats

    out, bids = app_run["out"], app_run["bids"]
    anat, truth_dir = (
        out / "sub-01" / "anat",
        bids / "derivatives" / TRUTH_PIPELINE / "sub-01" / "anat",
    )
    mask = _load(truth_dir / "sub-01_desc-brain_mask.nii.gz")[0] > 0.5
    for m, suffix in MAPS.items():
        sd = _load(anat / f"sub-01_res-hi_desc-swigUncertainty_{suffix}.nii.gz")[0]
        sr = _load(anat / f"sub-01_res-hi_desc-swig_{suffix}.nii.gz")[0]
        side = json.loads((anat / f"sub-01_res-hi_desc-swigUncertainty_{suffix}.json").read_text())
        assert side["Units"] == ("s" if m != "PD" else side["Units"]) and side["SliceAxes"]
        assert side["Sources"] == [f"bids::sub-01/anat/sub-01_res-hi_desc-swig_{suffix}.nii.gz"]
        assert side["SkullStripped"] is False and "mm voxels" in side["Resolution"]
        assert sd.shape == sr.shape and (sd >= 0).all() and np.isfinite(sd).all()
        assert (sd[sr == 0] == 0).all()
        if m == "PD":
            continue
        truth = _load(truth_dir / f"sub-01_desc-truth_{suffix}.nii.gz")[0]
        inside = mask & (sd > 0)
        assert 0.001 < float(np.median(sd[inside] / sr[inside])) < 0.2  # relative spread
        # the shipped card's calibration is applied and stated: SD = scale x spread + floor x
        # |map|, so the stated SD is never below the floor where the maps are the network's
        card = model_card("swig_default")["uncertainty_calibration"]
        assert side["Calibration"][m] == card[m] and "Calibrated so that" in side["Description"]
        assert float(np.median(sd[inside] / sr[inside])) > card[m]["floor"]
        rho = stats.spearmanr(sd[inside], np.abs(sr - truth)[inside]).statistic
        assert rho > 0.2, (m, rho)
    qc = json.loads((out / "sub-01" / "log" / "sub-01_qc.json").read_text())
    assert set(qc["UncertaintyMedian"]) == {"PD", "T1", "T2"}
    assert "BrainMaskGuideCut" not in qc  # PD acquired: the map-based mask stands
    assert 0 < qc["UncertaintyMedian"]["T1"] < 0.2  # seconds
    assert "<h2>Uncertainty</h2>" in (out / "sub-01.html").read_text()
    # the QC warnings travel with the QC JSON (the console prints them, the group flags them)
    fallback = qc["GuideFallbackFraction"] > 0
    assert any("field of view covers" in w for w in qc["Warnings"]) == fallback


def test_sidecars_carry_units_sources_and_provenance(app_run):
    out, bids = app_run["out"], app_run["bids"]
    anat = out / "sub-01" / "anat"
    side = json.loads((anat / "sub-01_res-hi_desc-swig_T1map.json").read_text())
    assert side["Units"] == "s"
    assert side["SkullStripped"] is False
    assert "mm voxels" in side["Resolution"]
    for uri in side["Sources"]:
        scheme, dataset, rel = uri.split(":", 2)
        assert scheme == "bids"
        root = bids if dataset == "raw" else out
        assert (root / rel).exists(), uri
    assert side["Model"]["sha256"] == model_card()["sha256"]
    assert side["Model"]["version"] == model_card()["version"]
    assert side["Model"]["introduced_in"] == model_card()["introduced_in"]
    assert side["Seed"] == 0 and side["AdaptSteps"] == 0
    assert side["SliceAxes"] == [0, 1]  # 1x1x4 mm LR maps: the two 1 mm axes are averaged
    assert set(side["GuideProtocols"]) == {"T1w", "T2w"}
    assert side["GuideProtocols"]["T1w"]["model"] == "MPRAGE"
    assert side["GuideProtocols"]["T1w"]["source"] == "bids:raw:sub-01/anat/sub-01_T1w.nii.gz"
    assert side["SoftwareDependencies"]["swigapp"]
    dc = side["DataConsistency"]
    assert 0 <= dc["LRResidual"] < 0.2
    # the SR maps explain the acquired T1w better than the LR input's maps do
    work = app_run["work"] / "swigapp_wf" / "single_subject_01_wf"
    up = np.moveaxis(_load(work / "conform_maps" / "lr_up_maps.nii.gz")[0], -1, 0)
    registered = _load(anat / "sub-01_res-hi_desc-registered_T1w.nii.gz")[0]
    brain = _load(anat / "sub-01_res-hi_desc-brain_mask.nii.gz")[0] > 0
    from_lr = synthesize(
        dict(zip(MAPS, up, strict=True)), Protocol(**side["GuideProtocols"]["T1w"])
    )
    assert dc["GuideSSIM"]["T1w"] > guide_ssim(from_lr, registered, brain) + 0.02
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative"
    assert desc["GeneratedBy"][0]["Name"] == "swigapp"
    assert desc["DatasetLinks"]["raw"] == bids.absolute().as_uri()
    reg = json.loads((anat / "sub-01_res-hi_desc-registered_T1w.json").read_text())
    assert reg["Transforms"] == ["sub-01_from-T1w_to-qmri_mode-image_xfm.mat"]


def test_pybids_indexes_the_derivatives(app_run):
    from bids import BIDSLayout

    layout = BIDSLayout(app_run["out"], validate=False, is_derivative=True)
    for subject in ("01", "02"):
        for suffix in MAPS.values():
            found = layout.get(subject=subject, suffix=suffix, desc="swig", extension=".nii.gz")
            assert len(found) == 1, (subject, suffix)
            assert found[0].get_metadata()["Units"] in ("s", "arbitrary")
        masks = layout.get(subject=subject, suffix="mask", desc="brain", extension=".nii.gz")
        assert len(masks) == 1


@pytest.mark.skipif(
    shutil.which("bids-validator-deno") is None, reason="bids-validator-deno not installed"
)
def test_derivatives_pass_the_bids_validator(app_run):
    run = subprocess.run(
        ["bids-validator-deno", "--format", "json", str(app_run["out"])],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    issues = json.loads(run.stdout)["issues"]["issues"]
    errors = [i for i in issues if i["severity"] == "error"]
    assert errors == [], errors[:3]


def test_report_is_self_contained(app_run):
    html = (app_run["out"] / "sub-01.html").read_text()
    assert html.count("src='data:image/png;base64,") >= 8
    assert "http://" not in html and "https://" not in html.replace(
        "https://github.com/swigapp/swigapp", ""
    )
    for text in ("Registration", "SSIM", "grey and white matter", "Provenance", "MPRAGE"):
        assert text in html


def test_methods_boilerplate_is_written_and_shown(app_run):
    """The run's methods text (Markdown, HTML, BibTeX) names what ran; the report shows it."""
    log = app_run["out"] / "sub-01" / "log"
    md = (log / "sub-01_methods.md").read_text()
    card = model_card()
    assert f"model swig_default version {card['version']}" in md and card["sha256"] in md
    assert "2x2x8 mm voxels" in md and "downsampling factors 1x1x4" in md  # tiny: 2 mm HR
    assert "along each of the voxel axes 0 and 1" in md
    qc = json.loads((log / "sub-01_qc.json").read_text())
    for guide, value in qc["GuideSSIM"].items():
        assert f"{guide} {value:.3f}" in md
    bib = (log / "sub-01_methods.bib").read_text()
    assert "@misc{samadifardheris2025swig," in bib and "@article{mattes2003mi," in bib
    assert "<section class='methods'>" in (log / "sub-01_methods.html").read_text()
    assert "Methods: sub-01" in (app_run["out"] / "sub-01.html").read_text()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (.ci/run installs Debian's when it can)"
)
def test_report_renders_at_1280_px_in_headless_chromium(app_run, tmp_path):
    """A screenshot of the report as a reader sees it: it renders, its figures are drawn,
    and nothing spills past the page's right margin at 1280 px."""
    from matplotlib.image import imread

    shot = tmp_path / "report.png"
    page = (app_run["out"] / "sub-01.html").as_uri()
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=1280,6000", f"--screenshot={shot}", page],
        capture_output=True, timeout=180, check=False,
    )  # fmt: skip
    assert shot.is_file(), "chromium wrote no screenshot"
    gray = imread(shot)[..., :3].mean(axis=-1)
    assert gray.shape == (6000, 1280)
    dark_rows = (gray < 0.15).mean(axis=1) > 0.05  # rows crossing brain images
    assert dark_rows[:3000].sum() > 500, "the map mosaics did not render"
    assert (gray[:, -60:] > 0.95).all(), "something spills into the right margin"


def test_rerun_into_new_folder_is_byte_identical(app_run, tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    opts = ["--participant-label", "sub-01", "--nprocs", "2", "--omp-nthreads", "1"]
    rc = cli.main([str(app_run["bids"]), str(out), "participant", "-w", str(work), *opts])
    assert rc == 0
    first = sorted((app_run["out"] / "sub-01" / "anat").iterdir())
    assert len(first) >= 20
    for path in first:
        again = out / "sub-01" / "anat" / path.name
        assert again.read_bytes() == path.read_bytes(), path.name
    assert (out / "dataset_description.json").read_bytes() == (
        app_run["out"] / "dataset_description.json"
    ).read_bytes()


def test_group_level_table_and_report(app_run):
    rc = cli.main([str(app_run["bids"]), str(app_run["out"]), "group"])
    assert rc == 0
    lines = (app_run["out"] / "group_qc.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    assert len(lines) == 3
    rows = [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]
    assert [r["participant_id"] for r in rows] == ["sub-01", "sub-02"]
    for row in rows:
        assert 1000 < float(row["GM_T1_ms"]) < 2000
        assert 600 < float(row["WM_T1_ms"]) < float(row["GM_T1_ms"])
        assert 0 < float(row["run_time_s"])
    report = (app_run["out"] / "group_report.html").read_text()
    assert "data:image/png;base64," in report and "sub-02" in report


def test_failed_step_leaves_no_derivative_and_rerun_resumes(tiny_dataset, tmp_path, monkeypatch):
    """A failing inference node: exit 1, nothing in the output; the re-run with the same
    work dir reuses the finished registrations and completes. A third run that changes only
    the guard (``--no-fallback``) reuses the prediction (the adapted network's maps) and
    runs the guard again."""
    import swigapp.participant as participant

    out, work = tmp_path / "out", tmp_path / "work"
    opts = ["--participant-label", "01", "--skip-bids-validation", "--synthesize", "PDw"]
    opts += ["--adapt-steps", "2"]
    args = [str(tiny_dataset), str(out), "participant", "-w", str(work), "--plugin", "Linear"]
    args += opts

    def broken(*_args, **_kwargs):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(participant, "predict_maps", broken)
    assert cli.main(args) == 1
    assert not (out / "sub-01").exists()
    assert not list(out.glob("*.html"))
    reg = work / "swigapp_wf" / "single_subject_01_wf" / "register_guides_wf" / "register_T1w"
    result = reg / "result_register_T1w.pklz"
    assert result.exists()
    stamp = result.stat().st_mtime_ns
    assert list((work / "crash").glob("crash-*super_resolve*"))
    monkeypatch.undo()
    assert cli.main(args) == 0
    assert result.stat().st_mtime_ns == stamp, "the registration ran again"
    anat = out / "sub-01" / "anat"
    assert (anat / "sub-01_res-hi_desc-synth_PDw.nii.gz").is_file()
    side = json.loads((anat / "sub-01_res-hi_desc-swig_T2map.json").read_text())
    assert side["AdaptSteps"] == 2 and len(side["AdaptLosses"]) == 2
    assert all(np.isfinite(side["AdaptLosses"]))
    node = work / "swigapp_wf" / "single_subject_01_wf"
    predicted = node / "super_resolve" / "result_super_resolve.pklz"
    guarded = node / "guard_maps" / "result_guard_maps.pklz"
    stamps = predicted.stat().st_mtime_ns, guarded.stat().st_mtime_ns
    assert cli.main([*args, "--no-fallback"]) == 0
    assert predicted.stat().st_mtime_ns == stamps[0], "the prediction ran again"
    assert guarded.stat().st_mtime_ns != stamps[1], "the guard did not run again"
    qc = json.loads((out / "sub-01" / "log" / "sub-01_qc.json").read_text())
    assert qc["RegionalFallback"] == []


def test_sessions_are_kept_apart(tiny_dataset, tmp_path):
    """A dataset with sessions: outputs, report and group row per session."""
    bids = tmp_path / "bids"
    (bids / "sub-01").mkdir(parents=True)
    shutil.copy(tiny_dataset / "dataset_description.json", bids)
    for session in ("a", "b"):
        anat = bids / "sub-01" / f"ses-{session}" / "anat"
        anat.mkdir(parents=True)
        for src in (tiny_dataset / "sub-01" / "anat").iterdir():
            name = src.name.replace("sub-01_", f"sub-01_ses-{session}_")
            shutil.copy(src, anat / name)
    out = tmp_path / "out"
    opts = ["--skip-bids-validation", "--no-template-mask", "--guides", "T1w"]
    rc = cli.main([str(bids), str(out), "participant", "-w", str(tmp_path / "w"), *opts,
                   "--session-label", "b"])  # fmt: skip
    assert rc == 0
    anat = out / "sub-01" / "ses-b" / "anat"
    assert (anat / "sub-01_ses-b_res-hi_desc-swig_T1map.nii.gz").is_file()
    assert (anat / "sub-01_ses-b_from-T1w_to-qmri_mode-image_xfm.mat").is_file()
    assert not (out / "sub-01" / "ses-a").exists()
    assert (out / "sub-01_ses-b.html").is_file()
    assert cli.main([str(bids), str(out), "group"]) == 0
    rows = (out / "group_qc.tsv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].split("\t")[:2] == ["sub-01", "ses-b"]
