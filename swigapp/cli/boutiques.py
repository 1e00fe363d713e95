"""The Boutiques descriptor of ``swigapp``, generated from its argument parser.

    python -m swigapp.cli.boutiques > boutiques.json

Generating it (and testing the committed file against the generator) keeps every CLI flag
and the descriptor in step.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from swigapp._version import __version__
from swigapp.cli.parser import build_parser, fraction
from swigapp.methods import step_count

#: Parser destinations that are paths to existing files or folders (Boutiques "File").
#: ``--model`` is not one: it also takes a shipped model's name, and ``bosh exec launch``
#: refuses a File input that is not a local path ("Missing local mount location").
FILE_INPUTS = {
    "bids_dir",
    "bids_filter_file",
    "protocol_overrides",
    "synth_protocol",
}
SKIPPED = {"help", "version"}


def _input(action: argparse.Action) -> dict[str, Any]:
    dest = action.dest
    item: dict[str, Any] = {
        "id": dest,
        "name": dest.replace("_", " "),
        "description": (action.help or "").replace("%%", "%"),
        "value-key": f"[{dest.upper()}]",
        "optional": not (not action.option_strings or action.required),
    }
    if action.option_strings:
        longs = [s for s in action.option_strings if s.startswith("--")]
        item["command-line-flag"] = (longs or action.option_strings)[0]
    if isinstance(action, argparse._StoreTrueAction | argparse._CountAction):
        item["type"] = "Flag"
        if isinstance(action, argparse._CountAction):
            item["command-line-flag"] = "-v"
        return item
    if dest in FILE_INPUTS:
        item["type"] = "File"
    elif action.type is fraction:
        item |= {"type": "Number", "integer": False, "minimum": 0, "exclusive-minimum": True}
        item["maximum"] = 1
    elif action.type in (int, float, step_count):
        item["type"] = "Number"
        item["integer"] = action.type is not float
    else:
        item["type"] = "String"
    if action.choices:
        item["value-choices"] = list(action.choices)
    if action.nargs in ("+", "*"):
        item["list"] = True
    default = action.default
    if isinstance(default, list):
        default = ",".join(default)
    if default not in (None, argparse.SUPPRESS) and not isinstance(default, bool):
        text = isinstance(default, Path) or item["type"] == "String"
        item["default-value"] = str(default) if text else default
    return item


def descriptor() -> dict[str, Any]:
    """The Boutiques (schema 0.5) descriptor of ``swigapp``."""
    parser = build_parser()
    inputs = [_input(a) for a in parser._actions if a.dest not in SKIPPED]
    command = " ".join(["swigapp", *(i["value-key"] for i in inputs)])
    return {
        "name": "swigapp",
        "tool-version": __version__,
        "schema-version": "0.5",
        "author": "swigapp developers",
        "url": "https://github.com/swigapp/swigapp",
        "description": parser.description,
        "command-line": command,
        "inputs": inputs,
        "output-files": [
            {
                "id": "derivatives",
                "name": "derivatives dataset",
                "description": "BIDS derivatives: SR maps, masks, registered guides, "
                "synthesised contrasts, transforms, reports",
                "path-template": "[OUTPUT_DIR]",
                "optional": False,
            },
            {
                "id": "dataset_description",
                "name": "dataset description",
                "path-template": "[OUTPUT_DIR]/dataset_description.json",
                "optional": True,
            },
            {
                "id": "group_table",
                "name": "group QC table",
                "path-template": "[OUTPUT_DIR]/group_qc.tsv",
                "optional": True,
            },
        ],
        "container-image": {"type": "docker", "image": f"swigapp:{__version__}"},
        "suggested-resources": {"cpu-cores": 2, "ram": 8, "walltime-estimate": 900},
        "tags": {"domain": ["neuroinformatics", "mri", "quantitative-mri", "bids-app"]},
    }


def main() -> None:
    """Print the descriptor as JSON."""
    print(json.dumps(descriptor(), indent=2))


if __name__ == "__main__":
    main()
