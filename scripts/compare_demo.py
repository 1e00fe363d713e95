"""Are the demo's outputs the same as at another revision? (behaviour-preserving changes)

    python scripts/compare_demo.py REV [--size tiny|slab|full]

Runs ``swigapp-demo`` on this working tree and on a clone of revision ``REV`` (with this
tree's virtual environment; the clone's own ``swigapp`` and ``workflows`` are imported), then
compares every NIfTI byte for byte, and every JSON and methods text (``*_methods.md``,
``.bib``) after removing what names the run rather than the maps: absolute paths (the two
runs live in different folders) and the QC's ``Seconds``. Exit 0 when all agree; otherwise
lists the files that differ.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_demo(tree: Path, out: Path, size: str) -> None:
    """``swigapp-demo out`` with the package imported from ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "swigapp.cli.demo", str(out), "--size", size]
    subprocess.run(cmd, cwd=tree, env=env, check=True, capture_output=True)


def _scrub(value: object, roots: tuple[str, ...]) -> object:
    if isinstance(value, dict):
        return {k: _scrub(v, roots) for k, v in value.items() if k != "Seconds"}
    if isinstance(value, list):
        return [_scrub(v, roots) for v in value]
    if isinstance(value, str):
        for root in roots:
            value = value.replace(root, "<ROOT>")
    return value


def digests(out: Path, roots: tuple[str, ...]) -> dict[str, str]:
    """sha256 of each NIfTI and each scrubbed JSON and methods text under ``out`` (the work
    folder skipped)."""
    found = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        if rel.startswith("work/") or not path.is_file():
            continue
        if path.name.endswith(".nii.gz"):
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.suffix == ".json":
            text = json.dumps(_scrub(json.loads(path.read_text()), roots), sort_keys=True)
            found[rel] = hashlib.sha256(text.encode()).hexdigest()
        elif path.name.endswith(("_methods.md", ".bib")):
            text = str(_scrub(path.read_text(), roots))
            found[rel] = hashlib.sha256(text.encode()).hexdigest()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the revision to compare with (e.g. main~3, a sha)")
    parser.add_argument("--size", default="slab", choices=("tiny", "slab", "full"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(old)], check=True)
        subprocess.run(["git", "-C", str(old), "checkout", "-q", args.rev], check=True)
        (old / "swigapp" / "workflows").symlink_to(old / "workflows")
        runs = {"old": (old, Path(tmp) / "demo_old"), "new": (ROOT, Path(tmp) / "demo_new")}
        for name, (tree, out) in runs.items():
            print(f"demo at {name} ({tree}) ...", flush=True)
            run_demo(tree, out, args.size)
        roots = tuple(str(p) for pair in runs.values() for p in pair)
        a, b = (digests(out, roots) for _, out in runs.values())
    differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    for rel in differ:
        print(f"differs: {rel}")
    print(f"{len(a)} files compared with {args.rev}: {len(differ)} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
