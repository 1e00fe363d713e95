"""Crash safety of the output dataset: the completion marker protocol, staging clean-up that
spares live runs, SIGKILLed participant runs, and two runs sharing one output dataset."""

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from swigapp.cli import run as cli
from swigapp.group import GroupError, collect
from swigapp.io import naming, publishing

HOUR = 3600.0


def _qc(subject: str) -> str:
    qc = {"Subject": subject, "Session": None, "LRResidual": {"T1": 0.01},
          "GuideSSIM": {"T1w": 0.9}, "RegistrationMI": {"T1w": -1.0}, "BrainVolume_ml": 1400.0,
          "Seconds": {"inference": 1.0}, "TissueMedians": {
              t: {"T1": 1.3, "T2": 0.1, "PD": 0.8} for t in ("GM", "WM")}}  # fmt: skip
    return json.dumps(qc)


def _files(subject: str, version: str) -> dict[str, str]:
    return {
        f"sub-{subject}/log/sub-{subject}_qc.json": _qc(subject),
        f"sub-{subject}/anat/sub-{subject}_a.json": f"a {version}",
        f"sub-{subject}/anat/sub-{subject}_b.json": f"b {version}",
        f"sub-{subject}.html": f"report {version}",
    }


def test_publish_writes_the_marker_last_and_removes_the_old_one_first(
    tmp_path, monkeypatch, caplog
):
    out = tmp_path / "out"
    written = publishing.publish(_files("01", "v1"), out)
    assert written[-1] == out / "sub-01/log/sub-01_qc.json"
    publishing.publish(_files("02", "v1"), out)
    assert publishing.participants(out) == (
        [out / "sub-01/log/sub-01_qc.json", out / "sub-02/log/sub-02_qc.json"],
        [],
    )
    # a re-publish of sub-01 that dies after its first rename
    real_replace, calls = os.replace, []

    def dying_replace(src, dst):
        calls.append(Path(dst))
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        real_replace(src, dst)

    monkeypatch.setattr(publishing.os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        publishing.publish(_files("01", "v2"), out)
    monkeypatch.undo()
    assert not (out / "sub-01/log/sub-01_qc.json").exists()  # removed before any rename
    assert (out / "sub-01/anat/sub-01_a.json").read_text() == "a v2"
    assert (out / "sub-01/anat/sub-01_b.json").read_text() == "b v1"
    assert publishing.participants(out)[1] == ["sub-01"]
    with caplog.at_level(logging.WARNING, logger="swigapp.group"):
        rows = collect(out)
    assert [r["participant_id"] for r in rows] == ["sub-02"]
    assert "sub-01: incomplete" in caplog.text and "sub-01/log/sub-01_qc.json" in caplog.text
    with pytest.raises(GroupError, match="sub-01: incomplete"):
        collect(out, ["01"])
    assert [r["participant_id"] for r in collect(out, ["02"])] == ["sub-02"]
    assert cli.main([str(tmp_path), str(out), "group", "--participant-label", "01"]) == 3
    assert not (out / "group_qc.tsv").exists()
    assert cli.main([str(tmp_path), str(out), "group"]) == 0
    rows = (out / "group_qc.tsv").read_text().splitlines()
    assert [row.split("\t")[0] for row in rows[1:]] == ["sub-02"]
    # a failure while staging leaves the complete participant as it was
    publishing.publish(_files("01", "v2"), out)
    bad = {**_files("01", "v3"), "sub-01/anat/sub-01_c.nii.gz": tmp_path / "missing.nii.gz"}
    with pytest.raises(FileNotFoundError):
        publishing.publish(bad, out)
    assert (out / "sub-01/log/sub-01_qc.json").is_file()
    assert (out / "sub-01/anat/sub-01_b.json").read_text() == "b v2"
    assert [r["participant_id"] for r in collect(out)] == ["sub-01", "sub-02"]
    assert not list(out.glob(".swigapp-staging-*"))


def test_participants_reads_sessions_and_markers():
    assert naming.label_of("sub-01_ses-a_res-hi_desc-swig_T1map.nii.gz") == "sub-01_ses-a"
    assert naming.label_of("sub-01.html") == "sub-01"
    assert naming.label_of("dataset_description.json") == ""
    assert naming.is_marker("sub-01/log/sub-01_ses-a_qc.json")
    assert not naming.is_marker("sub-01/log/sub-02_qc.json")
    assert not naming.is_marker("sub-01/anat/sub-01_qc.json")
    marker = naming.marker_path("/o", "sub-01_ses-a")
    assert marker == Path("/o/sub-01/log/sub-01_ses-a_qc.json")


def _staging(out: Path, **owner) -> Path:
    path = publishing.make_staging(out)
    record = json.loads((path / publishing.OWNER_FILE).read_text())
    (path / publishing.OWNER_FILE).write_text(json.dumps({**record, **owner}))
    (path / "files").mkdir()
    (path / "files" / "x.json").write_text("{}")
    return path


def test_clean_stale_removes_only_what_dead_or_old_runs_left(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    mine = publishing.make_staging(out)
    owner = json.loads((mine / publishing.OWNER_FILE).read_text())
    assert owner["pid"] == os.getpid() and owner["host"] and owner["process_start"] is not None
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = _staging(out, pid=int(done.stdout))  # this host, process gone
    reused = _staging(out, process_start=owner["process_start"] - 1)  # our pid, other process
    elsewhere = _staging(out, host="node-b", pid=1)  # another host, recent: may be writing
    elsewhere_old = _staging(out, host="node-b", pid=1, created=time.time() - 25 * HOUR)
    unknown = out / ".swigapp-staging-unknown"  # killed before it wrote its owner
    unknown.mkdir()
    unknown_old = out / ".swigapp-staging-unknown-old"
    unknown_old.mkdir()
    temp = out / ".dataset_description.json.abc123"  # an atomic write's temporary file
    temp.write_text("{")
    temp_old = out / "..bidsignore.def456"
    temp_old.write_text("*")
    for path in (elsewhere_old, unknown_old, temp_old):
        os.utime(path, (time.time() - 25 * HOUR,) * 2)
    removed = publishing.clean_stale(out)
    assert sorted(removed) == sorted([dead, reused, elsewhere_old, unknown_old, temp_old])
    for path in (dead, reused, elsewhere_old, unknown_old, temp_old):
        assert not path.exists(), path
    for path in (mine, elsewhere, unknown, temp):
        assert path.exists(), path
    assert (elsewhere / "files" / "x.json").read_text() == "{}"
    # the age limit is a parameter; the live owner is kept whatever its age
    os.utime(mine, (time.time() - 25 * HOUR,) * 2)
    assert sorted(publishing.clean_stale(out, max_age_s=0.0)) == sorted([elsewhere, unknown, temp])
    assert [p.name for p in out.iterdir()] == [mine.name]


def test_init_dataset_is_safe_for_concurrent_writers(tmp_path):
    """Writers racing (with two different contents, so that they really rewrite) never
    let a reader see a missing or half-written dataset_description.json."""
    out = tmp_path / "out"
    path = publishing.init_dataset(out, tmp_path / "bids")
    stop, errors = threading.Event(), []

    def write(bids: Path):
        for _ in range(150):
            publishing.init_dataset(out, bids)

    def read():
        while not stop.is_set():
            try:
                desc = json.loads(path.read_text())
                assert desc["GeneratedBy"][0]["Name"] == "swigapp"
                publishing.check_output_dataset(out)
                assert (out / ".bidsignore").read_text() == publishing.BIDSIGNORE_TEXT
            except Exception as err:  # collected, asserted below
                errors.append(err)

    readers = [threading.Thread(target=read) for _ in range(2)]
    writers = [threading.Thread(target=write, args=(tmp_path / f"bids{i % 2}",)) for i in range(4)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in readers:
        thread.join()
    assert errors == []
    assert sorted(p.name for p in out.iterdir()) == [".bidsignore", "dataset_description.json"]
    publishing.init_dataset(out, tmp_path / "bids1")
    before = path.stat().st_mtime_ns
    publishing.init_dataset(out, tmp_path / "bids1")  # same content: not rewritten
    assert path.stat().st_mtime_ns == before


# --- SIGKILLed and concurrent participant runs (subprocesses on the tiny phantom) --------

#: Seconds each rename of a publishing run under test sleeps (publishing.PUBLISH_DELAY_ENV).
RENAME_DELAY = 0.15


class Run:
    """``swigapp ... participant`` for one label in a subprocess of its own process group
    (killing the group kills any worker too); stdout and stderr go to ``log``."""

    def __init__(self, bids: Path, out: Path, work: Path, label: str, log: Path, delay=0.0):
        cmd = [sys.executable, "-m", "swigapp.cli.run", str(bids), str(out), "participant",
               "--participant-label", label, "-w", str(work), "--plugin", "Linear",
               "--omp-nthreads", "1", "--skip-bids-validation"]  # fmt: skip
        env = {**os.environ, publishing.PUBLISH_DELAY_ENV: str(delay)}
        self.log, self.out = log, out
        with log.open("w") as handle:
            self.proc = subprocess.Popen(
                cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def text(self) -> str:
        return self.log.read_text()

    def staging(self) -> Path | None:
        """This run's staging folder, if it has one now."""
        for path in self.out.glob(".swigapp-staging-*"):
            try:
                if json.loads((path / publishing.OWNER_FILE).read_text())["pid"] == self.proc.pid:
                    return path
            except (OSError, ValueError, KeyError):
                continue
        return None

    def staged(self) -> int:
        """How many files wait in this run's staging folder (-1: none)."""
        path = self.staging()
        return -1 if path is None else sum(1 for p in path.rglob("*") if p.is_file()) - 1

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)

    def wait(self, timeout: float = 300) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise


def _snapshot(out: Path, label: str) -> dict[str, bytes]:
    """A participant's deterministic outputs (NIfTI, JSON, transforms under anat)."""
    return {p.relative_to(out).as_posix(): p.read_bytes()
            for p in sorted((out / label / "anat").iterdir())}  # fmt: skip


def _published(out: Path, label: str) -> list[str]:
    """Every file a participant run publishes (anat, log, report) that exists now."""
    paths = [*(out / label).rglob("*"), out / f"{label}.html"]
    return sorted(p.relative_to(out).as_posix() for p in paths if p.is_file())


def _check_visible(out: Path, label: str, ref: dict[str, bytes], everything: list[str]) -> bool:
    """No half-published participant: every visible output is whole (byte-identical to
    the uninterrupted run's), and a present marker means every output is there."""
    marker = naming.marker_path(out, label)
    complete = marker.is_file()
    for rel, data in ref.items():
        path = out / rel
        if path.exists():
            assert path.read_bytes() == data, f"{rel}: half-written or different"
    if complete:
        assert json.loads(marker.read_text())["Subject"] == label.removeprefix("sub-")
        missing = sorted(set(everything) - set(_published(out, label)))
        assert missing == [], f"{label} has its marker but lacks {missing}"
    return complete


def _wait_for(predicate, run: Run, what: str, timeout: float = 180) -> None:
    """Poll until ``predicate(run)``; the run must not end before."""
    end = time.monotonic() + timeout
    while not predicate(run):
        assert run.proc.poll() is None, f"the run ended before {what}:\n{run.text()[-3000:]}"
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_killed_and_concurrent_runs_never_show_half_a_participant(tiny_dataset, tmp_path):
    """Two participants run concurrently into one output dataset, then sub-01 is run again
    from scratch and SIGKILLed at 12 moments over its run (startup, each processing step,
    the report, and inside publishing: after staging, half renamed, only the marker left),
    each time resumed with the same work dir, while sub-02 re-publishes beside it. After
    every kill no participant is half published; at the end both are byte-identical to
    the uninterrupted runs and no staging folder is left."""
    out, logs = tmp_path / "out", tmp_path / "logs"
    logs.mkdir()
    # 1. two participants at once into one output dataset, separate work dirs
    first = [Run(tiny_dataset, out, tmp_path / f"w{s}", s, logs / f"first{s}.log")
             for s in ("01", "02")]  # fmt: skip
    for run in first:
        assert run.wait() == 0, run.text()[-3000:]
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Name"] == "swigapp"
    assert (out / ".bidsignore").read_text() == publishing.BIDSIGNORE_TEXT
    assert publishing.participants(out) == (
        [naming.marker_path(out, "sub-01"), naming.marker_path(out, "sub-02")],
        [],
    )
    refs = {label: _snapshot(out, label) for label in ("sub-01", "sub-02")}
    everything = {label: _published(out, label) for label in refs}
    for label, ref in refs.items():
        assert len(ref) >= 20 and f"{label}/anat/{label}_res-hi_desc-swig_T1map.nii.gz" in ref
        assert f"{label}.html" in everything[label]
        assert f"{label}/log/{label}_methods.md" in everything[label]
    assert [r["participant_id"] for r in collect(out)] == ["sub-01", "sub-02"]
    n_files = len(everything["sub-01"])

    # 2. sub-01 again with a fresh work dir, killed again and again; sub-02 re-publishes
    work = tmp_path / "w01-killed"
    beside = Run(tiny_dataset, out, tmp_path / "w02", "02", logs / "beside.log", delay=1.0)

    def staged_down_to(count: int):
        """Reached when the run has staged every file, then renamed all but ``count``."""
        seen = {"all": False}

        def reached(run: Run) -> bool:
            staged = run.staged()
            seen["all"] = seen["all"] or staged == n_files
            return seen["all"] and 0 < staged <= count

        return reached

    def printed(text: str):
        return lambda run: text in run.text()

    kills = [  # (moment, when it is reached, seconds to wait then)
        ("interpreter start", lambda run: True, 1.5),
        ("after the staging clean-up", printed("participant run(s)"), 0.0),
        ("conforming the maps", printed("conform_maps: started"), 0.2),
        ("brain mask", printed("brain_mask: started"), 3.0),
        ("T1w registration", printed("register_T1w: started"), 2.0),
        ("T2w registration", printed("register_T2w: started"), 2.0),
        ("super-resolution", printed("super_resolve: started"), 1.0),
        ("synthesis", printed("synthesize: started"), 0.3),
        ("QC figures and report", printed("write_derivatives: started"), 2.0),
        ("publishing: all staged, old marker removed", staged_down_to(n_files), 0.05),
        ("publishing: half renamed", staged_down_to(n_files // 2), 0.0),
        ("publishing: all but the marker renamed", staged_down_to(1), 0.0),
    ]
    left_behind = []
    for i, (moment, reached, wait_s) in enumerate(kills):
        if i == 2:  # this run's clean-up happens while sub-02 is publishing
            _wait_for(lambda r: r.staging() is not None, beside, "sub-02 publishing")
            live_staging = beside.staging()
        run = Run(tiny_dataset, out, work, "01", logs / f"kill{i:02d}.log", delay=RENAME_DELAY)
        if i == 2:
            _wait_for(printed("participant run(s)"), run, "the clean-up")
            assert live_staging.is_dir(), "the clean-up removed the staging of a live run"
        _wait_for(reached, run, moment)
        time.sleep(wait_s)
        assert run.proc.poll() is None, f"{moment}: the run ended before the kill"
        run.kill()
        if run.staging() is not None:
            left_behind.append(run.staging())
        complete = _check_visible(out, "sub-01", refs["sub-01"], everything["sub-01"])
        _check_visible(out, "sub-02", refs["sub-02"], everything["sub-02"])
        incomplete = publishing.participants(out)[1]
        assert ("sub-01" in incomplete) != complete, moment
        if i >= len(kills) - 3:  # the old marker is gone: sub-01 reads as incomplete
            assert not complete and left_behind, moment
            with pytest.raises(GroupError, match="sub-01: incomplete"):
                collect(out, ["01"])
    assert beside.wait() == 0, beside.text()[-3000:]
    assert "FAILED" not in beside.text()

    # 3. resumed to the end: whole, byte-identical, nothing left behind, sub-02 intact
    final = Run(tiny_dataset, out, work, "01", logs / "final.log")
    assert final.wait() == 0, final.text()[-3000:]
    assert "write_derivatives: done" in final.text()
    for label in ("sub-01", "sub-02"):
        assert _check_visible(out, label, refs[label], everything[label])
        assert _snapshot(out, label) == refs[label]
    assert not list(out.glob(".swigapp-staging-*"))
    assert all(not path.exists() for path in left_behind)
    assert [r["participant_id"] for r in collect(out)] == ["sub-01", "sub-02"]
    desc_now = json.loads((out / "dataset_description.json").read_text())
    assert desc_now == desc
