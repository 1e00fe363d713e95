"""Participant-level wall time and peak memory on one full 1 mm phantom subject.

    python -m benchmarks.app [--repeats 1] [--nprocs 2] [--size full]
        [--compare-registration] [--single-orientation] [--compare-with REV]

Generates a phantom BIDS dataset (one subject, 1 mm guides, 2 mm LR maps), runs
``swigapp BIDS OUT participant`` in a subprocess (default MultiProc plugin), samples the
resident memory of the whole process tree (main process plus Nipype workers, summed) every
0.2 s, and reads the per-step wall times the run records in ``sub-01/log/sub-01_qc.json``.
Writes ``benchmarks/results/app.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from swigapp.phantom.bids import write_dataset
from swigapp.phantom.subject import PhantomConfig

RESULTS = Path(__file__).parent / "results"


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
        todo += _children(p)
    return total


def run_once(
    bids: Path, work: Path, nprocs: int, extra: list[str] | None = None, tree: Path | None = None
) -> dict:
    """One participant run; ``tree``: run the swigapp of that source tree instead."""
    out = work / "out"
    env = os.environ | {"PYTHONPATH": str(tree)} if tree else None
    cmd = [sys.executable, "-m", "swigapp.cli.run", str(bids), str(out), "participant",
           "-w", str(work / "work"), "--nprocs", str(nprocs), "--skip-bids-validation",
           *(extra or [])]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.Popen(  # from ``tree``: ``-m`` puts the working folder first on the path
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=tree
    )
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss_bytes(proc.pid))
        time.sleep(0.2)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"swigapp failed: {proc.stderr.read()[-2000:]}")
    qc = json.loads((out / "sub-01" / "log" / "sub-01_qc.json").read_text())
    return {"wall_s": wall, "peak_rss_gib": peak / 2**30, "steps": qc["Seconds"]}


def _table(runs: list[dict]) -> list[str]:
    steps = {k: statistics.median(r["steps"][k] for r in runs) for k in runs[0]["steps"]}
    wall = statistics.median(r["wall_s"] for r in runs)
    peak = max(r["peak_rss_gib"] for r in runs)
    return [
        "| step | seconds |",
        "|---|---|",
        *(f"| {k} | {v:.1f} |" for k, v in steps.items()),
        f"| **wall time, whole run (incl. start-up, Nipype)** | **{wall:.1f}** |",
        "",
        f"Peak resident memory of the process tree: **{peak:.2f} GiB**.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--size", choices=("tiny", "slab", "full"), default="full")
    parser.add_argument(
        "--compare-registration",
        action="store_true",
        help="also time --registration-full-resolution (0.2.0's registration), the settings "
        "alternating run by run",
    )
    parser.add_argument(
        "--single-orientation",
        action="store_true",
        help="also time the default with --single-orientation (one slice axis)",
    )
    parser.add_argument(
        "--compare-with",
        metavar="REV",
        help="also time the default of git revision REV (checked out in a temporary worktree, "
        "run with this Python environment), the settings alternating run by run",
    )
    args = parser.parse_args()
    choices = {
        "default": [],
        "--registration-full-resolution (0.2.0's registration)": ["--registration-full-resolution"],
        "--single-orientation": ["--single-orientation"],
    }
    wanted = [True, args.compare_registration, args.single_orientation]
    settings = [name for name, on in zip(choices, wanted, strict=True) if on]
    with tempfile.TemporaryDirectory(prefix="swigapp-bench-") as tmp:
        trees: dict[str, Path | None] = dict.fromkeys(settings)
        if args.compare_with:
            tree = Path(tmp) / "baseline"
            git = ["git", "worktree", "add", "--detach", str(tree), args.compare_with]
            subprocess.run(git, check=True, capture_output=True)
            # the editable install maps swigapp.workflows to this checkout's workflows/;
            # inside the baseline's swigapp/ the baseline's own is found first
            (tree / "swigapp" / "workflows").symlink_to(tree / "workflows")
            git = ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"]
            sha = subprocess.run(git, check=True, capture_output=True, text=True).stdout.strip()
            name = f"default at {args.compare_with} ({sha})"
            choices[name], trees[name] = [], tree
            settings.insert(1, name)
        runs: dict[str, list[dict]] = {s: [] for s in settings}
        bids = write_dataset(Path(tmp) / "bids", 1, seed=9000, config=PhantomConfig(size=args.size))
        try:
            for i in range(args.repeats):
                for k, setting in enumerate(settings):
                    work = Path(tmp) / f"run{i}-{k}"
                    result = run_once(bids, work, args.nprocs, choices[setting], trees[setting])
                    runs[setting].append(result)
                    print(setting, json.dumps(result), flush=True)
        finally:
            if args.compare_with:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], check=False)
    flag = " --compare-registration" * args.compare_registration
    flag += " --single-orientation" * args.single_orientation
    flag += f" --compare-with {args.compare_with}" * bool(args.compare_with)
    lines = [
        "# Participant level, one phantom subject",
        "",
        f"Command: `python -m benchmarks.app --repeats {args.repeats} --nprocs {args.nprocs} "
        f"--size {args.size}{flag}`; machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; median of {args.repeats} run(s) per setting"
        + (", the settings alternating run by run." if len(settings) > 1 else "."),
    ]
    for setting in settings:
        lines += ["", f"## {setting}", "", *_table(runs[setting])]
    lines += ["", "Registration is the sum over guides (they run side by side, one thread each)."]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "app.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
