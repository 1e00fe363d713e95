"""Packaging: swigapp.workflows comes from top-level workflows/, and nothing else leaks."""

import ast
import importlib
import re
import tomllib
from pathlib import Path

import swigapp

ROOT = Path(__file__).resolve().parents[1]


def test_version_and_workflows_import():
    assert swigapp.__version__.count(".") == 2
    workflows = importlib.import_module("swigapp.workflows")
    assert Path(workflows.__file__).parent == ROOT / "workflows"


def test_every_subpackage_is_declared_and_only_under_swigapp():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = set(config["packages"])
    assert all(p == "swigapp" or p.startswith("swigapp.") for p in declared)
    assert config["package-dir"]["swigapp.workflows"] == "workflows"
    on_disk = {
        "swigapp." + ".".join(init.parent.relative_to(ROOT / "swigapp").parts)
        for init in (ROOT / "swigapp").rglob("__init__.py")
        if init.parent != ROOT / "swigapp"
    }
    on_disk |= {"swigapp", "swigapp.workflows"}
    # data-only folders (the shipped weights) are declared with their package data, no code
    data_only = set(config["package-data"]) - on_disk
    for name in data_only:
        folder = ROOT.joinpath(*name.split("."))
        assert folder.is_dir() and not list(folder.glob("*.py")), name
    on_disk |= data_only
    assert on_disk == declared, f"pyproject packages differ from the tree: {on_disk ^ declared}"


def test_documentation_links_resolve():
    pages = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGES.md"]
    pages += sorted((ROOT / "docs").glob("*.md"))
    checked = 0
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name}: broken link {target}"
            checked += 1
    assert checked >= 8


def test_no_library_module_imports_the_orchestrator():
    """swigapp.participant sequences the steps; what it calls must not import it back
    (only the Nipype interfaces and the CLI use it)."""
    for path in (ROOT / "swigapp").rglob("*.py"):
        if path.name == "participant.py" or "cli" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module != "swigapp.participant", path


def test_inference_never_imports_the_phantom_generator():
    """The participant steps, every method and the inference code run on users' data: none
    of them may load the phantom generator (it lived on the inference path through
    models.data's crops)."""
    import subprocess
    import sys

    code = (
        "import sys, swigapp.participant, swigapp.methods.swig, swigapp.methods.inr, "
        "swigapp.methods.wmri2q, swigapp.models.inference, swigapp.models.inr, "
        "swigapp.workflows.base; "
        "print(','.join(m for m in sys.modules if m.startswith('swigapp.phantom')))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "", run.stdout


def _imported_units(path: Path) -> set[str]:
    """The swigapp units (subpackage or top-level module names) a file imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
        names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
        found |= {n.split(".")[1] for n in names if n and n.startswith("swigapp.")}
    return found


def test_the_library_units_import_each_other_without_cycles():
    """Subpackages and top-level modules of swigapp form an acyclic import graph (there was
    io -> methods -> models -> io, and io <-> estimate/uncertainty through MAP_ORDER)."""
    graph: dict[str, set[str]] = {}
    for path in (ROOT / "swigapp").rglob("*.py"):
        parts = path.relative_to(ROOT / "swigapp").with_suffix("").parts
        if parts == ("__init__",):
            continue
        unit = parts[0]
        graph.setdefault(unit, set()).update(_imported_units(path) - {unit})
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(unit: str, path: list[str]) -> None:
        state[unit] = 1
        for nxt in sorted(graph.get(unit, ())):
            assert state.get(nxt) != 1, " -> ".join([*path, unit, nxt])
            if nxt not in state:
                visit(nxt, [*path, unit])
        state[unit] = 2

    for unit in sorted(graph):
        if unit not in state:
            visit(unit, [])


def test_every_import_of_the_project_resolves():
    """Every ``from swigapp... import name`` in the library, workflows, benchmarks, scripts
    and tests names something that exists, the imports inside functions included (a moved
    module or a renamed function left lazy imports behind that only failed when run)."""
    import importlib
    import re

    missing = []
    for folder in ("swigapp", "workflows", "benchmarks", "scripts", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module):
                    continue
                if not re.match(r"swigapp(\.|$)", node.module):
                    continue
                module = importlib.import_module(node.module)
                for alias in node.names:
                    if hasattr(module, alias.name):
                        continue
                    try:
                        importlib.import_module(f"{node.module}.{alias.name}")
                    except ImportError:
                        missing.append(f"{path.relative_to(ROOT)}:{node.lineno} {alias.name}")
    assert not missing, missing


def test_every_benchmark_parses_its_command_line():
    """``python -m benchmarks.NAME --help`` works for every benchmark (a help text with a
    bare percent sign broke benchmarks.validate before it ran)."""
    import subprocess
    import sys

    failed = []
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        if path.stem.startswith("_"):
            continue
        run = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{path.stem}", "--help"],
            cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if run.returncode != 0 or "usage:" not in run.stdout:
            failed.append(f"{path.stem}: {run.stderr.strip().splitlines()[-1:]}")
    assert not failed, failed
