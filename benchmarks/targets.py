"""The real-brains issue's targets, checked on a held-out quality run.

Reads the ``quality.csv`` that ``benchmarks.quality --anatomy heldout`` writes and prints two
markdown tables: each method's median (range) over the subjects, and, for the app's own
maps (the guard row), every target of the issue per subject. Used for the held-out
individuals' section of docs/benchmarks.md:

    python -m benchmarks.targets benchmarks/results/heldout_individuals_v8 [--label v8]
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path
from statistics import median

SETTING_NAMES = {"2mm-iso": "2 mm iso", "1x1x4mm": "1x1x4 mm", "clinical-2d": "clinical 2D head"}
#: Columns of the median table: (csv column, header, digits).
COLUMNS = (
    ("T1_SSIM", "T1 SSIM", 4),
    ("T2_SSIM", "T2 SSIM", 4),
    ("PD_SSIM", "PD SSIM", 4),
    ("GM_T1_MAE_ms", "GM T1 MAE (ms)", 1),
    ("GM_T2_MAE_ms", "GM T2 MAE (ms)", 1),
    ("T1_HFEN", "T1 HFEN", 3),
)
APP = "SWIG T1w+T2w + guard"
CUBIC = "cubic spline"
#: Largest GM MAE (ms) per setting: T1, T2.
GM_BOUNDS = {"2mm-iso": (40.0, 10.0), "1x1x4mm": (60.0, 10.0), "clinical-2d": (60.0, 10.0)}
#: Order of the targets in the table (each over the settings).
ORDER = ("GM T1", "GM T2", "T1 HFEN never", "T1 HFEN >=", "PD SSIM", "1-SSIM of T1", "1-SSIM of T2")

Rows = dict[str, dict[str, dict[str, dict[str, float]]]]


def load(run: Path) -> Rows:
    """setting -> method -> subject -> {column: value} from ``run``/quality.csv."""
    rows: Rows = defaultdict(lambda: defaultdict(dict))
    with open(run / "quality.csv", newline="") as f:
        for r in csv.DictReader(f):
            values = {}
            for k, v in r.items():
                try:
                    values[k] = float(v)
                except (TypeError, ValueError):
                    continue
            rows[r["setting"]][r["method"]][r["subject"]] = values
    return rows


def _lr_input(methods: dict) -> str:
    return next(m for m in methods if m.startswith("LR input"))


def median_table(rows: Rows, label: str = "") -> str:
    """Median (range) over subjects of every method, per setting."""
    lines = [
        "| LR maps | method | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
        "|---|---|" + "---|" * len(COLUMNS),
    ]
    for setting, methods in rows.items():
        for method, subjects in methods.items():
            cells = []
            for col, _, d in COLUMNS:
                vals = [s[col] for s in subjects.values()]
                cells.append(f"{median(vals):.{d}f} ({min(vals):.{d}f}-{max(vals):.{d}f})")
            name = method.replace("SWIG", f"SWIG {label}") if label else method
            where = SETTING_NAMES.get(setting, setting)
            lines.append(f"| {where} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _verdict(fails: int, n: int) -> str:
    return "met" if fails == 0 else f"missed on {fails} of {n}"


def _row(target: str, bad: list[bool], text: str) -> tuple[str, str, str]:
    return target, text, _verdict(sum(bad), len(bad))


def _joined(values: list[float], digits: int) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


def target_rows(rows: Rows) -> list[tuple[str, str, str]]:
    """(target, per subject, verdict) for the app's maps (the guard row), per setting."""
    out = []
    below: dict[str, int] = defaultdict(int)
    for setting, methods in rows.items():
        app, cubic, lr = methods[APP], methods[CUBIC], methods[_lr_input(methods)]
        subjects = sorted(app)

        def col(table: dict, name: str) -> list[float]:
            return [table[s][name] for s in subjects]  # noqa: B023 (used in this iteration)

        for bound, m in zip(GM_BOUNDS[setting], ("T1", "T2"), strict=True):
            v = col(app, f"GM_{m}_MAE_ms")
            out.append(_row(f"GM {m} MAE <= {bound:.0f} ms, {setting}",
                            [x > bound for x in v], _joined(v, 1)))  # fmt: skip
        a, lr_hfen = col(app, "T1_HFEN"), col(lr, "T1_HFEN")
        if setting == "2mm-iso":
            out.append(_row("T1 HFEN never above the LR input, 2 mm",
                            [x > y for x, y in zip(a, lr_hfen, strict=True)],
                            f"{_joined(a, 3)} vs {_joined(lr_hfen, 3)}"))  # fmt: skip
        if setting == "1x1x4mm":
            drop = [100 * (1 - x / y) for x, y in zip(a, lr_hfen, strict=True)]
            out.append(_row("T1 HFEN >= 40 % below the LR input, 1x1x4 mm",
                            [d < 40 for d in drop], _joined(drop, 1) + " %"))  # fmt: skip
        a, c = col(app, "PD_SSIM"), col(cubic, "PD_SSIM")
        out.append(_row(f"PD SSIM >= cubic spline, {setting}",
                        [x < y for x, y in zip(a, c, strict=True)],
                        f"{_joined(a, 4)} vs {_joined(c, 4)}"))  # fmt: skip
        for m in ("T1", "T2"):
            pairs = zip(col(app, f"{m}_SSIM"), col(cubic, f"{m}_SSIM"), strict=True)
            ratio = [(1 - x) / (1 - y) for x, y in pairs]
            out.append(_row(f"1-SSIM of {m} <= half of cubic's, {setting}",
                            [r > 0.5 for r in ratio], _joined(ratio, 2) + "x"))  # fmt: skip
        for name, worse in (("T1_SSIM", -1), ("T2_SSIM", -1), ("PD_SSIM", -1),
                            ("GM_T1_MAE_ms", 1), ("GM_T2_MAE_ms", 1)):  # fmt: skip
            pairs = zip(col(app, name), col(cubic, name), strict=True)
            below[f"{setting} {name}"] += sum(worse * (x - y) > 0 for x, y in pairs)
    out.sort(key=lambda row: next(i for i, k in enumerate(ORDER) if row[0].startswith(k)))
    missed = [f"{k} ({v})" for k, v in below.items() if v]
    out.append(("never below cubic spline on any map's SSIM or GM MAE", "",
                "met" if not missed else "missed: " + ", ".join(missed)))  # fmt: skip
    return out


def targets_table(rows: Rows, label: str = "") -> str:
    """The targets as a markdown table."""
    model = " ".join(w for w in ("SWIG", label, "+ guard") if w)
    lines = [f"| target (held-out individuals, {model}) | per subject | |", "|---|---|---|"]
    lines += [f"| {t} | {p} | {v} |" for t, p, v in target_rows(rows)]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a folder holding quality.csv")
    p.add_argument("--label", default="", help="model label in the tables, e.g. v8")
    args = p.parse_args()
    rows = load(args.run)
    print(median_table(rows, args.label) + "\n\n" + targets_table(rows, args.label))


if __name__ == "__main__":
    main()
