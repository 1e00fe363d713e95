"""The container: the Dockerfile lints clean, and the image (built by ``.ci/run`` with
``scripts/build_image.sh``, named in ``SWIGAPP_IMAGE``) runs the participant level on a
read-only dataset as its non-root user."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
IMAGE = os.environ.get("SWIGAPP_IMAGE")


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint not installed")
def test_dockerfile_passes_hadolint_at_error_level():
    run = subprocess.run(
        ["hadolint", "--failure-threshold", "error", str(ROOT / "Dockerfile")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.skipif(not IMAGE or shutil.which("podman") is None, reason="no image (SWIGAPP_IMAGE)")
def test_image_runs_participant_level(tiny_dataset):
    # the image runs as uid 1000: the data must be readable and the output writable by it
    base = Path(tempfile.mkdtemp(prefix="swigapp-container-"))
    try:
        base.chmod(0o755)
        bids, out = base / "bids", base / "out"
        shutil.copytree(tiny_dataset, bids, ignore=shutil.ignore_patterns("derivatives"))
        out.mkdir()
        if os.geteuid() == 0:
            os.chown(out, 1000, 1000)
        else:
            out.chmod(0o777)
        env = {**os.environ, "CONTAINERS_CONF": str(ROOT / "docker" / "containers.conf")}
        run = subprocess.run(
            ["podman", "run", "--rm", "-v", f"{bids}:/bids:ro", "-v", f"{out}:/out", IMAGE,
             "/bids", "/out", "participant", "--participant-label", "01"],
            capture_output=True, text=True, check=False, timeout=900, env=env,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        anat = out / "sub-01" / "anat"
        for suffix in ("T1map", "T2map", "PDmap"):
            assert (anat / f"sub-01_res-hi_desc-swig_{suffix}.nii.gz").is_file()
        side = json.loads((anat / "sub-01_res-hi_desc-swig_T1map.json").read_text())
        assert side["Units"] == "s"
        desc = json.loads((out / "dataset_description.json").read_text())
        assert desc["GeneratedBy"][0]["Container"]["Type"] == "docker"
        assert (out / "sub-01.html").is_file()
        assert not (bids / "derivatives").exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)
