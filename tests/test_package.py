"""Packaging: swigapp.workflows comes from top-level workflows/, and nothing else leaks."""

import importlib
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
