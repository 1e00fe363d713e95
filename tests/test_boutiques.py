"""The Boutiques descriptor matches the CLI, validates, and launches swigapp for real."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from swigapp.cli.boutiques import SKIPPED, descriptor
from swigapp.cli.parser import build_parser

ROOT = Path(__file__).parent.parent
BOSH = shutil.which("bosh")
needs_bosh = pytest.mark.skipif(BOSH is None, reason="boutiques (bosh) not installed")


def test_committed_descriptor_is_the_generated_one():
    committed = json.loads((ROOT / "boutiques.json").read_text())
    assert committed == descriptor(), "regenerate: python -m swigapp.cli.boutiques > boutiques.json"


def test_every_cli_flag_is_described_and_vice_versa():
    parser = build_parser()
    flags = {a.dest for a in parser._actions if a.dest not in SKIPPED}
    described = {i["id"] for i in descriptor()["inputs"]}
    assert flags == described
    by_id = {i["id"]: i for i in descriptor()["inputs"]}
    assert by_id["plugin"]["value-choices"][0] == "MultiProc"
    assert by_id["participant_label"]["list"] is True
    # a step count or "auto": a string, whose default is the string of no adaptation
    assert by_id["adapt_steps"]["type"] == "String" and by_id["adapt_steps"]["default-value"] == "0"
    assert by_id["inr_max_steps"]["type"] == "Number" and by_id["inr_max_steps"]["integer"]
    assert by_id["skip_bids_validation"]["type"] == "Flag"
    assert by_id["bids_dir"]["optional"] is False and by_id["seed"]["optional"] is True
    # a shipped model's name is no path: bosh would refuse to mount it as a File
    assert by_id["bids_dir"]["type"] == "File" and by_id["model"]["type"] == "String"


@needs_bosh
def test_bosh_validates_descriptor_and_example_invocation():
    run = subprocess.run([BOSH, "validate", str(ROOT / "boutiques.json")],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    run = subprocess.run(
        [BOSH, "invocation", "-i", str(ROOT / "invocation.json"), str(ROOT / "boutiques.json")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


@needs_bosh
def test_bosh_launches_swigapp(tiny_dataset, tmp_path):
    if shutil.which("swigapp") is None:
        pytest.skip("swigapp is not on PATH")
    out = tmp_path / "out"
    invocation = {
        "bids_dir": str(tiny_dataset),
        "output_dir": str(out),
        "analysis_level": "participant",
        "participant_label": ["02"],
        "work_dir": str(tmp_path / "work"),
        "skip_bids_validation": True,
        "synthesize": "FLAIR,PDw",
        "no_template_mask": True,
        "model": "swig_default",
    }
    inv = tmp_path / "invocation.json"
    inv.write_text(json.dumps(invocation))
    run = subprocess.run(
        [BOSH, "exec", "launch", "--no-container", str(ROOT / "boutiques.json"), str(inv)],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    anat = out / "sub-02" / "anat"
    for name in ("swig_T1map", "synth_FLAIR", "synth_PDw"):
        assert (anat / f"sub-02_res-hi_desc-{name}.nii.gz").is_file(), name
    mask = json.loads((anat / "sub-02_res-hi_desc-brain_mask.json").read_text())
    assert "template" not in mask["Method"]
    assert not (out / "sub-01").exists()
