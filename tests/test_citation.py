"""Citable results: version strings agree, CITATION.cff validates, model cards are versioned,
and the methods boilerplate follows what ran."""

import json
import re
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from swigapp import _version
from swigapp.cli import run as cli
from swigapp.io.publishing import init_dataset
from swigapp.models import shipped
from swigapp.physics.protocol import DEFAULT_PROTOCOLS
from swigapp.reports import citations
from swigapp.reports.boilerplate import methods_boilerplate
from swigapp.results import Conformed, GuideRegistration, Masked, SuperResolution, Synthesised

ROOT = Path(__file__).resolve().parents[1]
VERSION = _version.__version__


def _changes_versions() -> list[str]:
    return re.findall(r"^## (\d+\.\d+\.\d+)", (ROOT / "CHANGES.md").read_text(), re.M)


def test_version_strings_agree(tmp_path, capsys):
    assert _changes_versions()[0] == VERSION, "CHANGES.md's newest entry is not this version"
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert str(cff["version"]) == VERSION
    assert json.loads((ROOT / "boutiques.json").read_text())["tool-version"] == VERSION
    docker = re.search(r"^ARG VERSION=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert docker and docker.group(1) == VERSION
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"swigapp {VERSION}"
    desc = json.loads(init_dataset(tmp_path / "out", tmp_path).read_text())
    assert desc["GeneratedBy"][0]["Version"] == VERSION
    assert citations.REFERENCES["swigapp"][1]["version"] == VERSION


def test_citation_cff_validates_against_the_cff_schema():
    from cffconvert import Citation

    text = (ROOT / "CITATION.cff").read_text()
    Citation(text).validate()  # raises on any schema violation
    titles = " ".join(ref["title"] for ref in yaml.safe_load(text)["references"])
    for paper in ("Weighted Image Guided", "low-resolution labels", "Implicit Neural"):
        assert paper in titles
    # the check can fail: a file without authors is refused
    broken = re.sub(r"^authors:\n  - name: swigapp developers\n", "", text, flags=re.M)
    assert broken != text
    with pytest.raises(Exception, match="authors"):
        Citation(broken).validate()


def test_every_shipped_model_card_states_its_version_and_release():
    released = _changes_versions()
    changes = (ROOT / "CHANGES.md").read_text()
    for name in shipped.available():
        card = shipped.model_card(name)
        assert int(card["version"]) >= 1, name
        assert card["introduced_in"] in released, name
        assert f"`{name}`" in changes, f"CHANGES.md does not name {name}"
    assert shipped.model_card("swig_default")["version"] == "8"
    assert shipped.model_card("swig_default")["sha256"][:16] in changes  # listed with its version
    assert shipped.model_card("swig_stage6")["sha256"][:16] == "e7e8912953938e17"
    assert shipped.model_card("swig_stage7")["sha256"][:16] == "1cbe88c5a173d872"


def test_shipping_new_weights_bumps_the_model_version(tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setattr(shipped, "weights_dir", lambda: weights)

    def run(payload: bytes) -> Path:
        run_dir = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        run_dir.mkdir()
        (run_dir / "model.pt").write_bytes(payload)
        card = {"name": run_dir.name, "weights_file": "model.pt", "sha256": "x"}
        (run_dir / "model_card.json").write_text(json.dumps(card))
        return run_dir

    shipped.export_model(run(b"first"), "demo_model")
    card = shipped.model_card("demo_model")
    assert (card["version"], card["introduced_in"]) == ("1", VERSION)
    shipped.export_model(run(b"first"), "demo_model")  # same weights: same version
    assert shipped.model_card("demo_model")["version"] == "1"
    monkeypatch.setattr("swigapp._version.__version__", "9.9.9")
    shipped.export_model(run(b"second"), "demo_model")
    card = shipped.model_card("demo_model")
    assert (card["version"], card["introduced_in"]) == ("2", "9.9.9")
    assert card["sha256"] != "x"


def test_weights_trained_on_held_out_anatomies_cannot_be_shipped(tmp_path, monkeypatch):
    from swigapp.phantom.individuals import anatomy_record

    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setattr(shipped, "weights_dir", lambda: weights)

    def run(names: list[str]) -> Path:
        run_dir = tmp_path / "-".join(names)
        run_dir.mkdir()
        (run_dir / "model.pt").write_bytes("".join(names).encode())
        data = {"anatomies": names, "anatomy_sources": anatomy_record(names)}
        card = {"weights_file": "model.pt", "training": {"data": data}}
        (run_dir / "model_card.json").write_text(json.dumps(card))
        return run_dir

    record = anatomy_record(["template", "synthseg-02", "brainweb-41", "synthseg-05"])
    assert set(record["sources"]) == {"synthseg", "brainweb"}
    assert record["sources"]["synthseg"]["subjects"] == {
        "synthseg-02": "training",
        "synthseg-05": "heldout",
    }
    assert record["sources"]["synthseg"]["licence"] == "Apache-2.0"
    with pytest.raises(ValueError, match=r"synthseg-05 \(heldout\)"):
        shipped.export_model(run(["synthseg-02", "synthseg-05"]), "demo_model")
    older = run(["synthsr-5", "template"])  # a card from before anatomy_sources existed
    card = json.loads((older / "model_card.json").read_text())
    del card["training"]["data"]["anatomy_sources"]
    (older / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match=r"synthsr-5 \(validation\)"):
        shipped.export_model(older, "demo_model")
    assert not (weights / "demo_model.json").exists()
    shipped.export_model(run(["synthseg-02", "brainweb-41"]), "demo_model")
    card = shipped.model_card("demo_model")
    sources = card["training"]["data"]["anatomy_sources"]["sources"]
    assert sources["brainweb"]["subjects"] == {"brainweb-41": "training"}


def _grid(path: Path, shape, voxel: float, volumes: int = 3) -> str:
    affine = np.diag([voxel, voxel, voxel, 1.0])
    nib.save(nib.Nifti1Image(np.ones((*shape, volumes), np.float32), affine), path)
    return str(path)


@pytest.fixture
def record(tmp_path):
    """A participant's step results and run parameters as the workflow passes them."""
    card = shipped.model_card("swig_default")
    results = {
        "conform": Conformed(
            lr_file=_grid(tmp_path / "lr.nii.gz", (20, 24, 10), 4.0),
            lr_up_file=_grid(tmp_path / "up.nii.gz", (40, 48, 20), 2.0),
        ),
        "mask": Masked(
            "brain_mask.nii.gz",
            "maps (PD and T1 thresholds) within the registered ICBM 2009 "
            "template shipped with nilearn (2 mm)",
        ),
        "registration": {
            g: GuideRegistration(
                g,
                f"{g}_registered.nii.gz",
                f"{g}_coverage.nii.gz",
                f"{g}_target.nii.gz",
                metric=metric,
            )
            for g, metric in (("T1w", -1.1), ("T2w", -0.9))
        },
        "superres": SuperResolution(
            **{
                "method": "swig",
                "model": {
                    "name": "swig_default",
                    "version": card["version"],
                    "introduced_in": card["introduced_in"],
                    "sha256": card["sha256"],
                    "path": "swig_default.pt",
                },
                "slice_axes": [0, 1, 2],
                "adapt_losses": [],
                "inr": None,
                "device": "cpu",
                "lr_residual": {"PD": 0.03, "T1": 0.04, "T2": 0.05},
                "lr_residual_input": {"PD": 0.01, "T1": 0.02, "T2": 0.03},
            }
        ),
        "synthesis": Synthesised(
            guide_ssim={"T1w": 0.91, "T2w": 0.93}, synth_files={"FLAIR": "synth_FLAIR.nii.gz"}
        ),
    }
    params = {
        "transform": "rigid",
        "adapt_steps": 0,
        "seed": 0,
        "guide_protocols": {g: DEFAULT_PROTOCOLS[g].as_dict() for g in ("T1w", "T2w")},
        "synth_protocols": {"FLAIR": DEFAULT_PROTOCOLS["FLAIR"].as_dict()},
        "versions": {"swigapp": VERSION, "torch": "2.13.0", "antspyx": "0.6.3"},
    }
    return results, params


def _numbers(markdown: str) -> set[int]:
    cited = re.findall(r"\[([\d, ]+)\]", markdown.split("## References")[0])
    return {int(n) for group in cited for n in group.split(",")}


def test_boilerplate_names_what_ran_with_its_references(record):
    results, params = record
    text = methods_boilerplate("sub-01", results, params)
    md = text.markdown
    card = shipped.model_card("swig_default")
    assert f"model swig_default version {card['version']}" in md
    assert card["sha256"] in md
    assert "4x4x4 mm voxels, matrix 20x24x10" in md
    assert "downsampling factors 2x2x2" in md
    assert "rigid transform (6 degrees of freedom)" in md
    assert "sampled at 20 % of the target's voxels" in md  # no option recorded: 0.1.0
    assert "MPRAGE (TR 2300 ms, TI 900 ms" in md
    assert "FLAIR, magnitude inversion recovery (TR 9000 ms, TI 2500 ms, TE 120 ms" in md
    assert "T1w 0.910, T2w 0.930" in md  # guide SSIM
    assert "PD 0.030, T1 0.040, T2 0.050" in md  # LR residual
    assert f"{card['training']['steps']} steps" in md
    assert "(domain randomisation)" in md  # the shipped model's card records it
    assert "not adapted" in md
    assert "Warnings" not in md
    # every cited number has a reference, every reference is cited, BibTeX holds the same
    refs = re.findall(r"^(\d+)\. ", md.split("## References")[1], re.M)
    assert _numbers(md) == {int(n) for n in refs} == set(range(1, len(text.keys) + 1))
    assert re.findall(r"^@\w+\{([^,]+),", text.bibtex, re.M) == list(text.keys)
    assert "samadifardheris2025swig" in text.keys and "mcginnis2023inr" not in text.keys
    assert "<li id='ref-1'>" in text.html and "SWIG" in text.html


def test_the_mask_paragraph_says_when_a_guide_cut_the_mask(record):
    results, params = record
    said = "PD was not acquired, and its estimate cannot tell how much of a voxel is tissue"
    assert said not in methods_boilerplate("sub-01", results, params).markdown
    cut = {"name": "T2w", "share": 0.5, "depth_lr": 1.0, "removed": 0.084}
    results = results | {"mask": replace(results["mask"], guide_cut=cut)}
    md = methods_boilerplate("sub-01", results, params).markdown
    assert said in md and "registered T2w was below 0.5 of its median" in md
    assert "within 1 low-resolution voxel(s) of the mask's edge" in md
    assert "(8.4 % of the mask" in md and "ICBM 2009 template" in md


def test_the_mask_paragraph_says_when_the_ratio_cut_took_the_scalp_and_guides_moved(record):
    results, params = record
    said = "T2 was not acquired, and its estimate cannot tell muscle and skin from brain"
    assert said not in methods_boilerplate("sub-01", results, params).markdown
    cut = {"name": "T2w", "share": 0.3, "removed": 0.185}
    results = results | {"mask": replace(results["mask"], guide_ratio_cut=cut)}
    md = methods_boilerplate("sub-01", results, params).markdown
    assert said in md and "divided by its own contrast synthesised from the maps" in md
    assert "below 0.3 of that ratio's median over the mask" in md and "(18.5 % of the mask)" in md
    assert "registered again to their synthesised contrasts within the cut mask" in md


def test_changing_an_option_changes_the_paragraph(record):
    results, params = record
    base = methods_boilerplate("sub-01", results, params).markdown
    affine = methods_boilerplate("sub-01", results, params | {"transform": "affine"}).markdown
    assert "affine transform (12 degrees of freedom)" in affine and affine != base
    sparse = methods_boilerplate("sub-01", results, params | {"registration_sampling": 0.1})
    assert "sampled at 10 % of the target's voxels" in sparse.markdown

    results["superres"].adapt_losses = [0.5, 0.25]
    adapted = methods_boilerplate("sub-01", results, params | {"adapt_steps": 2}).markdown
    assert "adapted to this participant for 2 steps" in adapted and "0.25" in adapted

    one = dict(results, superres=replace(results["superres"], slice_axes=[2]))
    assert "along voxel axis 2" in methods_boilerplate("sub-01", one, params).markdown

    none = dict(results, synthesis=replace(results["synthesis"], synth_files={}))
    assert (
        "No other contrast was synthesised"
        in methods_boilerplate("sub-01", none, params | {"synth_protocols": {}}).markdown
    )

    bad = dict(results, synthesis=replace(results["synthesis"], guide_ssim={"T1w": 0.6}))
    assert (
        "agrees poorly with the acquired T1w (SSIM 0.600"
        in methods_boilerplate("sub-01", bad, params).markdown
    )

    imperfect = dict(results, conform=replace(results["conform"], **{
        "input_quality": {"T2": {"invalid_in_head": 12, "invalid_fraction_in_head": 0.004}},
        "units": {"T1": "ms -> s (sidecar Units)", "T2": "s (sidecar Units)"},
        "pd_scale": {"factor": 0.01, "rule": "decimal scale 1e2", "reference_value": 69.0,
                     "reference": "median PD in WM-like voxels (T1 0.5-1.1 s)"},
        "notes": ["sub-01_T2map.nii.gz: 12 invalid voxels in the head"],
    }))  # fmt: skip
    md = methods_boilerplate("sub-01", imperfect, params).markdown
    assert "T1 ms -> s (sidecar Units)" in md and "T2 s (sidecar" not in md
    assert "PD multiplied by 0.01 to a water fraction (decimal scale 1e2" in md
    assert "(T2 12 (0.4 % of the head)) were treated as missing data" in md
    assert "Imperfect input accepted: sub-01_T2map.nii.gz: 12 invalid voxels" in md

    inr = replace(
        results["superres"],
        **{
            "method": "inr",
            "model": None,
            "slice_axes": [],
            "inr": {
                "config": {
                    "features": 128,
                    "sigma": 0.15,
                    "trunk_layers": 3,
                    "width": 128,
                    "max_steps": 1500,
                },
                "steps": 500,
                "stopped_by": "mi_plateau",
            },
        },
    )
    fitted = methods_boilerplate("sub-01", dict(results, superres=inr), params)
    assert "fitted to this participant alone for 500 steps (stopped by mi plateau" in (
        fitted.markdown
    )
    assert "mcginnis2023inr" in fitted.keys and "samadifardheris2025swig" not in fitted.keys


def test_a_local_model_file_is_described_by_its_own_card(record, tmp_path):
    results, params = record
    (tmp_path / "model_card.json").write_text(
        json.dumps(
            {
                "sha256": "ab" * 32,
                "parameters": 1234,
                "training_seconds": 12.0,
                "hardware": {"device": "cuda"},
                "training": {
                    "steps": 77,
                    "batch_size": 2,
                    "learning_rate": 0.001,
                    "weights": {"guide": 1.0, "lr": 5.0, "supervised": 0.0},
                    "data": {"source": "bids", "subjects": 9},
                },
            }
        )
    )
    model = {"name": "model.pt", "path": str(tmp_path / "model.pt"), "sha256": "ab" * 32}
    local = dict(results, superres=replace(results["superres"], model=model))
    md = methods_boilerplate("sub-01", local, params).markdown
    assert "model file model.pt; sha256 abab" in md
    assert "trained from scratch for 77 steps" in md and "9 subjects of a BIDS cohort" in md
    assert "supervision by the phantoms" not in md  # weight 0: not part of the loss
    model["sha256"] = "cd" * 32  # a card that is not this file's is not used
    md = methods_boilerplate("sub-01", local, params).markdown
    assert "No model card was found" in md
