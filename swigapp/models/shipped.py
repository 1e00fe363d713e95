"""Weights shipped inside the package, with their model cards; loading verifies sha256.

Listing and reading cards does not import torch (the CLI's --help names the models)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

DEFAULT_MODEL = "swig_default"


def weights_dir() -> Path:
    """Folder of the shipped weights and model cards."""
    return Path(str(resources.files("swigapp.models") / "weights"))


def available() -> list[str]:
    """Names of the shipped models (each has NAME.pt and NAME.json)."""
    return sorted(p.stem for p in weights_dir().glob("*.json") if p.with_suffix(".pt").exists())


def shipped_name(value: str | Path | None) -> str | None:
    """The shipped model that a --model/--init value names, else None (a path to a file).

    A value names a shipped model when it is one of :func:`available` and no file of that
    name exists: a local file wins."""
    if not value or str(value) not in available() or Path(value).exists():
        return None
    return str(value)


def model_card(name: str = DEFAULT_MODEL) -> dict:
    """The model card (JSON) of a shipped model."""
    path = weights_dir() / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"no shipped model {name!r} (available: {', '.join(available())})")
    return json.loads(path.read_text())


def load_shipped(name: str = DEFAULT_MODEL) -> nn.Module:
    """Load a shipped model after checking its file against the card's sha256."""
    from swigapp.models.train import load_model

    card = model_card(name)
    return load_model(weights_dir() / f"{name}.pt", expected_sha256=card["sha256"])


def export_model(run_dir: str | Path, name: str) -> Path:
    """Copy a training run's model.pt and card into the package as NAME.pt / NAME.json.

    The card gains the model's ``version`` (1, or one more than the shipped model of that
    name it replaces; unchanged when the weights are the same) and ``introduced_in``, the
    swigapp version that first ships these weights."""
    import shutil

    from swigapp._version import __version__
    from swigapp.models.train import sha256

    run = Path(run_dir)
    card = json.loads((run / "model_card.json").read_text())
    card = _with_anatomy_sources(card, run)
    target = weights_dir() / f"{name}.pt"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / card["weights_file"], target)
    digest = sha256(target)
    previous = model_card(name) if name in available() else None
    if previous is not None and previous["sha256"] == digest:
        version, introduced = previous["version"], previous["introduced_in"]
    else:
        version = str(int(previous["version"]) + 1) if previous else "1"
        introduced = __version__
    card = {"name": name, "version": version, "introduced_in": introduced, **card}
    card |= {"name": name, "weights_file": target.name, "sha256": digest}
    (weights_dir() / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    return target


def card_for(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The model card of a model record (``name``, ``path``, ``sha256``, as the participant
    level writes it): the shipped card, else a ``model_card.json`` beside a local model file
    whose sha256 matches; None when there is none."""
    if record.get("version") and record["name"] in available():
        return model_card(record["name"])
    beside = Path(record.get("path", "")).parent / "model_card.json"
    if record.get("path") and beside.is_file():
        card = json.loads(beside.read_text())
        if card.get("sha256") == record.get("sha256"):
            return card
    return None


def _with_anatomy_sources(card: dict[str, Any], run: Path) -> dict[str, Any]:
    """The card with its individuals' sources (``anatomy_sources``, filled in from the
    anatomy names of a card written before it existed); refuses weights trained on
    individuals outside the split's training part, or from a source whose terms do not
    allow shipped weights."""
    data = card.get("training", {}).get("data", {})
    names = [a for a in data.get("anatomies", []) if a != "template"]
    if names and "anatomy_sources" not in data:
        from swigapp.phantom.individuals import anatomy_record

        data["anatomy_sources"] = anatomy_record(names)
    for source, entry in data.get("anatomy_sources", {}).get("sources", {}).items():
        if not entry["shipped_weights_allowed"]:
            raise ValueError(f"{run}: trained on {source}, whose terms do not allow shipping")
        wrong = {n: part for n, part in entry["subjects"].items() if part != "training"}
        if wrong:
            raise ValueError(
                f"{run}: trained on individuals outside the training split: "
                + ", ".join(f"{n} ({part})" for n, part in sorted(wrong.items()))
            )
    return card


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3:
        sys.exit("usage: python -m swigapp.models.shipped RUN_DIR NAME")
    print(export_model(sys.argv[1], sys.argv[2]))
