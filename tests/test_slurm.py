"""A 2-subject cohort through a real Slurm scheduler (Nipype's SLURM plugin).

Runs when a cluster is up and ``SLURM_CONF`` points at it: ``.ci/run`` starts a single-node
cluster with ``scripts/slurm_local.sh`` when it can install slurm-wlm and munge.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from swigapp.cli import run as cli


def _cluster_idle() -> bool:
    if not os.environ.get("SLURM_CONF") or shutil.which("sinfo") is None:
        return False
    run = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, check=False)
    return "idle" in run.stdout or "mix" in run.stdout


pytestmark = pytest.mark.skipif(not _cluster_idle(), reason="no idle Slurm cluster (SLURM_CONF)")


def _completed_jobs() -> list[str]:
    conf = Path(os.environ["SLURM_CONF"]).read_text()
    match = re.search(r"^JobCompLoc=(\S+)", conf, flags=re.M)
    if match is None or not Path(match.group(1)).exists():
        return []
    lines = Path(match.group(1)).read_text().splitlines()
    return [ln for ln in lines if "JobState=COMPLETED" in ln]


def test_cohort_through_slurm(tiny_dataset, tmp_path):
    before = len(_completed_jobs())
    out, work = tmp_path / "out", tmp_path / "work"
    args = [str(tiny_dataset), str(out), "participant", "-w", str(work), "--plugin", "SLURM",
            "--plugin-args", '{"sbatch_args": "--mem=1500"}', "--skip-bids-validation"]  # fmt: skip
    assert cli.main(args) == 0
    for label in ("01", "02"):
        anat = out / f"sub-{label}" / "anat"
        for suffix in ("T1map", "T2map", "PDmap"):
            assert (anat / f"sub-{label}_res-hi_desc-swig_{suffix}.nii.gz").is_file()
        assert (out / f"sub-{label}.html").is_file()
    jobs = _completed_jobs()[before:]
    # every node of both subjects ran as a Slurm job (8 nodes each with 2 guides)
    assert len(jobs) >= 16, jobs[-3:]
    names = " ".join(jobs)
    for node in ("super_resolve.single_subject_01_wf", "super_resolve.single_subject_02_wf",
                 "register_T1w.register_guides_wf.single_subject_02_wf"):  # fmt: skip
        assert node in names
    assert list((work / "swigapp_wf" / "batch").glob("batchscript_*super_resolve.sh"))
