"""Accuracy and speed of the raw qMRI series fits (:mod:`swigapp.fitting`) on simulated data.

    python -m benchmarks.fitting [--voxels 20000] [--combos 400] [--repeats 3] [--quick]

Accuracy: seeded populations of tissue-like voxels (T1 0.6-2.0 s, T2 0.05-0.15 s) and of a
CSF-like group (T1 3.5-4.5 s, T2 1.5-2.5 s), reported apart; M0 = 1; noiseless and with
noise of SD ``--noise`` x M0 (complex Gaussian; the magnitude series keep its magnitude,
Rician). Per fit: median and 95th percentile of the |relative error| of T2/T1 and M0, the
median signed error (bias) and the share of failed (NaN) voxels.

- MESE (CPMG, 32 echoes 10 ms apart, TR 4 s): the independent EPG of
  :func:`swigapp.physics.simulate.epg_tse` in steady state, refocusing B1 uniform in
  0.7-1.0 (x 180 degrees) and B1 = 1. It is a per-voxel Python loop: ``--combos`` distinct
  (T1, T2, B1) tissue voxels (a quarter as many CSF ones) are simulated, then replicated
  with independent noise. Both models, ``epg`` and ``exp``: this chooses the default. M0
  truth: the apparent M0 (Mz before the excitation, in steady state), as the fit states.
- IRT1 (7 TI 0.05-2.6 s, TR 6 s, inversion efficiency 0.9-1.0, saturating readout) and
  VFA (3, 10, 20 degrees, TR 15 ms, transmit B1 0.8-1.2, fitted with the true B1 and
  without): closed forms written here, checked against
  :func:`swigapp.physics.simulate.bloch_steady_state` on a few voxels.
- MP2RAGE (the phantom's protocol): UNI from :func:`swigapp.fitting.mp2rage.mp2rage_signals`,
  the fit's own forward model (this measures the lookup table and the noise, not the
  model), as floats and as Siemens integers, and the complex inversions with noise.

Speed: the 2 mm LR series of a 1 mm whole-brain phantom (``--size full``) from
:func:`swigapp.phantom.raw.series_images`, fitted on the voxels with signal as
:func:`swigapp.io.raw_qmri.run_fit` selects them; median wall time of ``--repeats`` runs
(MESE with its dictionary built each run). Writes benchmarks/results/fitting.md.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from swigapp.fitting import mese
from swigapp.fitting.irt1 import fit_irt1
from swigapp.fitting.mese import fit_mese
from swigapp.fitting.mp2rage import (
    UNIT1_INTEGER_MAX,
    MP2RAGEProtocol,
    fit_mp2rage,
    mp2rage_signals,
    uni,
)
from swigapp.fitting.vfa import fit_vfa
from swigapp.io.raw_qmri import KINDS, _signal
from swigapp.phantom import raw
from swigapp.physics.simulate import (
    READ,
    SPOIL,
    bloch_steady_state,
    epg_tse,
    pulse,
    relax,
    spoiled_gre_events,
)

#: Populations (uniform ranges, s).
GROUPS = {
    "tissue": {"T1": (0.6, 2.0), "T2": (0.05, 0.15)},
    "CSF": {"T1": (3.5, 4.5), "T2": (1.5, 2.5)},
}
MESE_ECHOES, MESE_SPACING, MESE_TR = 32, 0.01, 4.0
MESE_B1 = (0.7, 1.0)
#: B1 bins of the MESE model comparison.
B1_BINS = ((0.7, 0.8), (0.8, 0.9), (0.9, 1.0))
IR_TIMES, IR_TR, IR_EFFICIENCY = np.array(raw.IRT1_TIMES), raw.IRT1_TR, (0.9, 1.0)
VFA_FLIPS, VFA_TR, VFA_B1 = np.array(raw.VFA_FLIPS), raw.VFA_TR, (0.8, 1.2)
#: VFA and MP2RAGE read a few % of M0: also scored at this fraction of ``--noise`` (the
#: phantom's raw series use it for them).
LOW_NOISE = 0.1
#: The issue's target for the MESE fit of a 1 mm whole brain's 2 mm series, on 2 cores (s).
MESE_TARGET_S = 60.0
MODEL_NAMES = {"epg": "EPG (default)", "exp": "exp, echo 1 dropped"}


def draw(rng: np.random.Generator, n: int, group: str) -> dict[str, np.ndarray]:
    """``n`` voxels of a population: T1, T2 (s) uniform in the group's ranges."""
    return {name: rng.uniform(*limits, n) for name, limits in GROUPS[group].items()}


def add_noise(
    signal: np.ndarray, sigma: float, rng: np.random.Generator, magnitude: bool = True
) -> np.ndarray:
    """``signal`` plus complex Gaussian noise of SD ``sigma`` per channel; its magnitude
    (Rician) for magnitude series. Noiseless when ``sigma`` is 0."""
    if sigma <= 0:
        return np.abs(signal) if magnitude else signal
    noisy = signal + sigma * (
        rng.standard_normal(signal.shape) + 1j * rng.standard_normal(signal.shape)
    )
    return np.abs(noisy) if magnitude else noisy


def score(estimate: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Median and 95th percentile of |relative error|, median signed relative error (bias),
    over the fitted voxels, and the share of voxels the fit failed on (NaN)."""
    estimate = np.asarray(estimate, np.float64).ravel()
    truth = np.broadcast_to(np.asarray(truth, np.float64), estimate.shape)
    ok = np.isfinite(estimate)
    rel = (estimate[ok] - truth[ok]) / truth[ok]
    if not rel.size:
        return {"median": math.nan, "p95": math.nan, "bias": math.nan, "failed": 1.0}
    return {
        "median": float(np.median(np.abs(rel))),
        "p95": float(np.percentile(np.abs(rel), 95)),
        "bias": float(np.median(rel)),
        "failed": float(1.0 - ok.mean()),
    }


def row(series: str, fit: str, condition: str, group: str, noise: float, **scores: Any) -> dict:
    """One line of the accuracy table; ``scores``: ``t``, the name of the relaxation time,
    and ``T`` and ``M0``, :func:`score` dicts (``M0`` None where the fit gives none)."""
    return {
        "series": series,
        "fit": fit,
        "condition": condition,
        "group": group,
        "noise": noise,
        **scores,
    }


def mese_trains(t1: np.ndarray, t2: np.ndarray, b1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Steady-state CPMG echo trains (voxels, echoes) by :func:`epg_tse` (M0 = 1) and the
    apparent M0: Mz before the excitation, the ratio of echo 1 to echo 1 from equilibrium."""
    trains = np.empty((t1.size, MESE_ECHOES))
    apparent = np.empty(t1.size)
    for i in range(t1.size):
        timing = {
            "tr": MESE_TR,
            "esp": MESE_SPACING,
            "etl": MESE_ECHOES,
            "refocus": math.pi * b1[i],
        }
        trains[i] = epg_tse(t1[i], t2[i], **timing)
        first = epg_tse(t1[i], t2[i], repetitions=1, **timing)
        apparent[i] = trains[i, 0] / first[0]
    return trains, apparent


def mese_accuracy(args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    """Accuracy rows of both MESE models, and their T2 errors per refocusing-B1 bin
    (tissue)."""
    rng = np.random.default_rng([args.seed, 1])
    te = MESE_SPACING * np.arange(1, MESE_ECHOES + 1)
    rows, per_b1 = [], []
    groups = (
        ("tissue", args.combos, args.voxels),
        ("CSF", max(1, args.combos // 4), args.csf_voxels),
    )
    for group, combos, voxels in groups:
        truth = draw(rng, combos, group)
        for uniform in (True, False):
            b1 = rng.uniform(*MESE_B1, combos) if uniform else np.ones(combos)
            condition = f"refocusing B1 {MESE_B1[0]}-{MESE_B1[1]}" if uniform else "refocusing B1 1"
            t0 = time.perf_counter()
            trains, apparent = mese_trains(truth["T1"], truth["T2"], b1)
            print(
                f"MESE {group}, {condition}: {combos} epg_tse voxels in "
                f"{time.perf_counter() - t0:.0f} s",
                flush=True,
            )
            for noise in (0.0, args.noise):
                idx = np.arange(combos)
                if noise:
                    idx = np.repeat(idx, math.ceil(voxels / combos))
                data = add_noise(trains[idx], noise, rng)
                for model in ("epg", "exp"):
                    fit = fit_mese(data, te, model=model)
                    t2, m0 = fit.maps["T2"], fit.maps["M0"]
                    rows.append(
                        row(
                            "MESE",
                            MODEL_NAMES[model],
                            condition,
                            group,
                            noise,
                            t="T2",
                            T=score(t2, truth["T2"][idx]),
                            M0=score(m0, apparent[idx]),
                        )
                    )
                    if group != "tissue":
                        continue
                    for lo, hi in [*B1_BINS, MESE_B1] if uniform else [(1.0, 1.0)]:
                        sel = (b1[idx] >= lo) & (b1[idx] <= hi)
                        per_b1.append(
                            {
                                "b1": f"{lo:.1f}-{hi:.1f}" if lo != hi else f"{lo:.1f}",
                                "noise": noise,
                                "model": model,
                                "voxels": int(sel.sum()),
                                **score(t2[sel], truth["T2"][idx][sel]),
                            }
                        )
    return rows, per_b1


def ir_signal(t1: np.ndarray, efficiency: np.ndarray) -> np.ndarray:
    """|Mz(TI)| (voxels, TI), M0 = 1: inversion of efficiency eta, a saturating readout at
    each TI, TR from inversion to inversion: 1 - (1 + eta) E(TI) + eta E(TR)."""
    e = np.exp(-IR_TIMES[None, :] / t1[:, None])
    eta = efficiency[:, None]
    return np.abs(1.0 - (1.0 + eta) * e + eta * np.exp(-IR_TR / t1)[:, None])


def spgr_signal(t1: np.ndarray, b1: np.ndarray) -> np.ndarray:
    """Ideally spoiled gradient echoes (voxels, flips), M0 = 1, flip angles scaled by B1."""
    a = np.deg2rad(VFA_FLIPS)[None, :] * b1[:, None]
    e1 = np.exp(-VFA_TR / t1)[:, None]
    return np.sin(a) * (1.0 - e1) / (1.0 - np.cos(a) * e1)


def bloch_check(seed: int, n: int = 4) -> dict[str, float]:
    """Largest |closed form - Bloch steady state| (fraction of M0) of :func:`ir_signal` and
    :func:`spgr_signal` on ``n`` random tissue voxels."""
    rng = np.random.default_rng([seed, 5])
    t1, t2 = rng.uniform(0.6, 2.0, n), rng.uniform(0.05, 0.15, n)
    eta, b1 = rng.uniform(*IR_EFFICIENCY, n), rng.uniform(*VFA_B1, n)
    ir, spgr = ir_signal(t1, eta), spgr_signal(t1, b1)
    worst = {"IRT1": 0.0, "VFA": 0.0}
    for i in range(n):
        for k, ti in enumerate(IR_TIMES):
            events = [
                SPOIL,
                pulse(math.acos(-eta[i])),
                SPOIL,  # the crusher after the inversion
                relax(ti),
                pulse(math.pi / 2),
                READ,
                relax(IR_TR - ti),
            ]
            value = bloch_steady_state(events, t1[i], t2[i], repetitions=10)[0]
            worst["IRT1"] = max(worst["IRT1"], abs(value - ir[i, k]))
        for k, flip in enumerate(VFA_FLIPS):
            events = spoiled_gre_events(VFA_TR, 0.0, math.radians(flip * b1[i]))
            value = bloch_steady_state(events, t1[i], t2[i], repetitions=3000)[0]
            worst["VFA"] = max(worst["VFA"], abs(value - spgr[i, k]))
    return worst


def irt1_vfa_accuracy(args: argparse.Namespace) -> list[dict]:
    """Accuracy rows of the IRT1 and VFA fits."""
    rng = np.random.default_rng([args.seed, 2])
    rows = []
    for group, n in (("tissue", args.voxels), ("CSF", args.csf_voxels)):
        truth = draw(rng, n, group)
        eta = rng.uniform(*IR_EFFICIENCY, n)
        clean = ir_signal(truth["T1"], eta)
        for noise in (0.0, args.noise):
            fit = fit_irt1(add_noise(clean, noise, rng), IR_TIMES, IR_TR)
            rows.append(
                row(
                    "IRT1",
                    "polarity-restored a + b exp(-TI/T1)",
                    f"efficiency {IR_EFFICIENCY[0]}-{IR_EFFICIENCY[1]}",
                    group,
                    noise,
                    t="T1",
                    T=score(fit.maps["T1"], truth["T1"]),
                    M0=score(fit.maps["M0"], 1.0),
                )
            )
        b1 = rng.uniform(*VFA_B1, n)
        clean = spgr_signal(truth["T1"], b1)
        for noise in (0.0, args.noise * LOW_NOISE, args.noise):
            data = add_noise(clean, noise, rng)
            for condition, given in (("true B1 given", b1), ("no B1 map", None)):
                fit = fit_vfa(data, VFA_FLIPS, VFA_TR, b1=given)
                rows.append(
                    row(
                        "VFA",
                        "Ernst (DESPOT1 + Gauss-Newton)",
                        f"transmit B1 {VFA_B1[0]}-{VFA_B1[1]}, {condition}",
                        group,
                        noise,
                        t="T1",
                        T=score(fit.maps["T1"], truth["T1"]),
                        M0=score(fit.maps["M0"], 1.0),
                    )
                )
    return rows


def mp2rage_accuracy(args: argparse.Namespace) -> list[dict]:
    """Accuracy rows of the MP2RAGE lookup table: UNI (float, integer) and the inversions."""
    rng = np.random.default_rng([args.seed, 3])
    protocol = MP2RAGEProtocol(**raw.MP2RAGE)
    rows = []
    for group, n in (("tissue", args.voxels), ("CSF", args.csf_voxels)):
        t1 = draw(rng, n, group)["T1"]
        g1, g2 = mp2rage_signals(t1, protocol)
        value = uni(g1, g2)
        integers = np.round((value + 0.5) * UNIT1_INTEGER_MAX)
        for condition, image in (("UNI (float)", value), ("UNIT1 (integers 0-4095)", integers)):
            fit = fit_mp2rage(protocol, unit1=image)
            rows.append(
                row(
                    "MP2RAGE",
                    "lookup table",
                    condition,
                    group,
                    0.0,
                    t="T1",
                    T=score(fit.maps["T1"], t1),
                    M0=None,
                )
            )
        phase = np.exp(1j * rng.uniform(-math.pi, math.pi, n))
        for noise in (args.noise * LOW_NOISE, args.noise):
            inv1 = add_noise(g1 * phase, noise, rng, magnitude=False)
            inv2 = add_noise(g2 * phase, noise, rng, magnitude=False)
            fit = fit_mp2rage(protocol, inv1=inv1, inv2=inv2)
            rows.append(
                row(
                    "MP2RAGE",
                    "lookup table",
                    "complex inversions",
                    group,
                    noise,
                    t="T1",
                    T=score(fit.maps["T1"], t1),
                    M0=score(fit.maps["M0"], 1.0),
                )
            )
    return rows


def prepare(kind: str, images: list[raw.RawImage]) -> tuple[int, Callable[[], Any]]:
    """The voxels with signal of one series (as :func:`swigapp.io.raw_qmri.run_fit` selects
    them) and a call that fits them."""
    if kind == "MP2RAGE":
        parts = {
            (im.entities["inv"], im.entities["part"]): im.data
            for im in images
            if im.suffix == "MP2RAGE"
        }
        inv = [parts[(k, "mag")] * np.exp(1j * parts[(k, "phase")]) for k in ("1", "2")]
        signal = _signal(np.abs(np.stack(inv, axis=-1)))
        protocol = MP2RAGEProtocol(**raw.MP2RAGE)
        inv1, inv2 = inv[0][signal], inv[1][signal]
        return int(signal.sum()), lambda: fit_mp2rage(protocol, inv1=inv1, inv2=inv2)
    stack = np.stack([im.data for im in images], axis=-1).astype(np.float64)
    signal = _signal(stack)
    voxels = stack[signal]
    values = [im.sidecar[KINDS[kind].parameter] for im in images]
    if kind == "MESE":
        return int(signal.sum()), lambda: fit_mese(voxels, values)
    if kind == "IRT1":
        return int(signal.sum()), lambda: fit_irt1(voxels, values, raw.IRT1_TR)
    return int(signal.sum()), lambda: fit_vfa(voxels, values, raw.VFA_TR)


def speed(args: argparse.Namespace) -> dict[str, Any]:
    """Wall time of each fit on the LR series of a phantom, on its voxels with signal."""
    from swigapp.phantom.subject import PhantomConfig, make_subject

    t0 = time.perf_counter()
    config = PhantomConfig(size=args.size, lr_factors=(2.0, 2.0, 2.0), guides=())
    subject = make_subject(0, args.seed, config)
    shape = subject.lr_maps["T1"].shape
    print(f"phantom {args.size}: LR grid {shape} in {time.perf_counter() - t0:.0f} s", flush=True)
    rng = np.random.default_rng([args.seed, 4])
    rows = []
    for kind in raw.KINDS:
        images = raw.series_images(kind, subject.lr_maps, rng)
        n, run = prepare(kind, images)
        count = 4 if kind == "MP2RAGE" else len(images)
        times = []
        for _ in range(args.repeats):
            mese._dictionary.cache_clear()
            start = time.perf_counter()
            fit = run()
            times.append(time.perf_counter() - start)
        rows.append(
            {
                "kind": kind,
                "images": count,
                "voxels": n,
                "median": float(np.median(times)),
                "min": min(times),
                "max": max(times),
                "failed": fit.failed,
            }
        )
        print(f"{kind}: {n} voxels, {np.median(times):.1f} s (median of {len(times)})", flush=True)
    mese._dictionary.cache_clear()
    start = time.perf_counter()
    mese._dictionary("epg", tuple(float(t) for t in MESE_SPACING * np.arange(1, 33)), 0)
    return {
        "shape": shape,
        "total": int(np.prod(shape)),
        "rows": rows,
        "dictionary": time.perf_counter() - start,
    }


def _pct(value: float, signed: bool = False) -> str:
    if not np.isfinite(value):
        return "-"
    return f"{100 * value:+.2f} %" if signed else f"{100 * value:.2f} %"


def _noise(value: float) -> str:
    return "none" if value == 0 else f"{100 * value:g} %"


def accuracy_table(rows: list[dict]) -> list[str]:
    """Markdown: one line per (series, fit, condition, group, noise)."""
    lines = [
        "| series | fit | condition | group | noise SD (of M0) | map | median abs. rel. error "
        "| 95th pct | median signed | M0 median abs. rel. error | M0 95th pct | failed |",
        "|---" * 12 + "|",
    ]
    for r in rows:
        t, m0 = r["T"], r["M0"]
        cells = [
            r["series"],
            r["fit"],
            r["condition"],
            r["group"],
            _noise(r["noise"]),
            r["t"],
            _pct(t["median"]),
            _pct(t["p95"]),
            _pct(t["bias"], signed=True),
            _pct(m0["median"]) if m0 else "-",
            _pct(m0["p95"]) if m0 else "-",
            _pct(t["failed"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def b1_table(per_b1: list[dict]) -> tuple[list[str], list[str]]:
    """Markdown: T2 errors of both MESE models per refocusing-B1 bin (tissue), and one
    sentence per bin saying which model wins (noisy data)."""
    lines = [
        "| refocusing B1 | noise SD | voxels | EPG median signed | EPG median abs. | EPG 95th pct "
        "| exp median signed | exp median abs. | exp 95th pct |",
        "|---" * 9 + "|",
    ]
    verdicts = []
    keys = dict.fromkeys((r["b1"], r["noise"]) for r in per_b1)
    clean = {(r["b1"], r["model"]): r["bias"] for r in per_b1 if r["noise"] == 0}
    for b1, noise in sorted(keys, key=lambda k: (k[1], k[0] == "0.7-1.0", k[0])):
        epg, exp = (
            next(r for r in per_b1 if (r["b1"], r["noise"], r["model"]) == (b1, noise, m))
            for m in ("epg", "exp")
        )
        lines.append(
            f"| {b1} | {_noise(noise)} | {epg['voxels']} | {_pct(epg['bias'], True)} | "
            f"{_pct(epg['median'])} | {_pct(epg['p95'])} | {_pct(exp['bias'], True)} | "
            f"{_pct(exp['median'])} | {_pct(exp['p95'])} |"
        )
        if noise:
            win, lose = ("EPG", "exp") if epg["median"] <= exp["median"] else ("exp", "EPG")
            ratio = max(epg["median"], exp["median"]) / max(min(epg["median"], exp["median"]), 1e-9)
            verdicts.append(
                f"- B1 {b1}, noise {_noise(noise)}: {win} wins, median |T2 error| "
                f"{_pct(min(epg['median'], exp['median']))} against {lose} "
                f"{_pct(max(epg['median'], exp['median']))} ({ratio:.1f}x); median signed "
                f"error EPG {_pct(epg['bias'], True)}, exp {_pct(exp['bias'], True)} (noiseless: "
                f"EPG {_pct(clean.get((b1, 'epg'), math.nan), True)}, exp "
                f"{_pct(clean.get((b1, 'exp'), math.nan), True)})."
            )
    return lines, verdicts


def speed_table(result: dict[str, Any]) -> list[str]:
    """Markdown: per series, voxels fitted and the wall time."""
    lines = [
        "| series | images | voxels fitted | median wall time (s) | min-max (s) "
        "| s per 100k voxels | failed voxels |",
        "|---" * 7 + "|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['kind']} | {r['images']} | {r['voxels']:,} | {r['median']:.1f} | "
            f"{r['min']:.1f}-{r['max']:.1f} | {1e5 * r['median'] / r['voxels']:.2f} | "
            f"{r['failed']} |"
        )
    return lines


def machine(note: str | None) -> str:
    """The machine: ``note`` and what this process sees (cores, memory, numpy, BLAS)."""
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        memory = f", {kib / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    blas = ""
    try:
        from threadpoolctl import threadpool_info

        threads = sorted({p["num_threads"] for p in threadpool_info()})
        blas = f", BLAS/OpenMP threads {'/'.join(map(str, threads))}"
    except ImportError:
        pass
    seen = (
        f"{platform.machine()}, {os.cpu_count()} CPUs{memory}, Python "
        f"{platform.python_version()}, numpy {np.__version__}{blas}"
    )
    return f"{note} ({seen})" if note else seen


def command() -> str:
    """The command line that ran, with the thread variables set in the environment."""
    env = [
        f"{k}={os.environ[k]}"
        for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
        if k in os.environ
    ]
    return " ".join([*env, "python -m benchmarks.fitting", *map(_quoted, sys.argv[1:])])


def _quoted(arg: str) -> str:
    """``arg`` for a shell, in double quotes where that is safe and easier to read."""
    if shlex.quote(arg) == arg or set('"$`\\!') & set(arg):
        return shlex.quote(arg)
    return f'"{arg}"'


def main() -> None:
    """Command line: measure, print and write the markdown."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--voxels", type=int, default=20_000, help="tissue voxels per population")
    p.add_argument("--csf-voxels", type=int, default=2_000)
    p.add_argument(
        "--combos",
        type=int,
        default=400,
        help="distinct tissue (T1, T2, B1) voxels simulated by epg_tse per B1 setting",
    )
    p.add_argument("--noise", type=float, default=0.01, help="noise SD as a fraction of M0")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per fit (median)")
    p.add_argument("--size", choices=("tiny", "slab", "full"), default="full")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 4000 voxels, 80 combos, 1 repeat, slab phantom",
    )
    p.add_argument("--no-speed", action="store_true", help="accuracy only")
    p.add_argument("--machine", help="a description of the machine for the header")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/fitting.md"))
    args = p.parse_args()
    if args.quick:
        args.voxels, args.csf_voxels, args.combos = 4000, 400, 80
        args.repeats, args.size = 1, "slab"
    start = time.perf_counter()
    worst = bloch_check(args.seed)
    print(f"closed forms against Bloch: {worst}", flush=True)
    mese_rows, per_b1 = mese_accuracy(args)
    rows = mese_rows + irt1_vfa_accuracy(args) + mp2rage_accuracy(args)
    order = ["MESE", "IRT1", "VFA", "MP2RAGE"]
    rows.sort(key=lambda r: (order.index(r["series"]), list(GROUPS).index(r["group"])))
    timing = None if args.no_speed else speed(args)
    b1_lines, verdicts = b1_table(per_b1)
    text = [
        "# Fitting qMRI maps from raw series: accuracy and speed",
        "",
        f"Command: `{command()}`. Machine: {machine(args.machine)}. Seed {args.seed}; "
        f"{time.perf_counter() - start:.0f} s in all.",
        "",
        "## Accuracy on simulated series",
        "",
        f"Populations: tissue T1 {GROUPS['tissue']['T1']} s, T2 {GROUPS['tissue']['T2']} s; "
        f"CSF T1 {GROUPS['CSF']['T1']} s, T2 {GROUPS['CSF']['T2']} s; M0 = 1. Noise: complex "
        "Gaussian of the SD given (fraction of M0), magnitude taken for MESE, IRT1 and VFA. "
        f"MESE: CPMG, {MESE_ECHOES} echoes {1000 * MESE_SPACING:g} ms apart, TR {MESE_TR:g} s, "
        f"simulated by `simulate.epg_tse` in steady state on {args.combos} distinct tissue and "
        f"{max(1, args.combos // 4)} CSF voxels per B1 setting (noiseless rows: those voxels; "
        f"noisy rows: each replicated to {args.voxels} tissue / {args.csf_voxels} CSF voxels "
        "with independent noise); M0 truth is the apparent M0 (Mz before the excitation). "
        f"IRT1: TI {', '.join(f'{t:g}' for t in IR_TIMES)} s, TR {IR_TR:g} s, saturating "
        f"readout; VFA: {', '.join(f'{f:g}' for f in VFA_FLIPS)} degrees, TR "
        f"{1000 * VFA_TR:g} ms; both by closed forms that match `simulate.bloch_steady_state` "
        f"to {worst['IRT1']:.1e} (IRT1) and {worst['VFA']:.1e} (VFA) of M0 on 4 voxels; "
        f"{args.voxels} tissue and {args.csf_voxels} CSF voxels. MP2RAGE: the phantom's "
        f"protocol (TR {raw.MP2RAGE['tr']} s, TI {raw.MP2RAGE['ti']} s, flips "
        f"{raw.MP2RAGE['flips']} degrees, {raw.MP2RAGE['n']} shots of "
        f"{1000 * raw.MP2RAGE['tau']:g} ms), signals from the fit's own `mp2rage_signals`.",
        "",
        *accuracy_table(rows),
        "",
        "## MESE default: EPG against one exponential without echo 1 (tissue)",
        "",
        "T2 errors per refocusing-B1 bin, from the MESE rows above.",
        "",
        *b1_lines,
        "",
        *verdicts,
        "",
    ]
    if timing:
        shape = "x".join(map(str, timing["shape"]))
        mese_s, mese_n = next(
            (r["median"], r["voxels"]) for r in timing["rows"] if r["kind"] == "MESE"
        )
        text += [
            "## Speed",
            "",
            f"Phantom subject 0 (seed {args.seed}), `PhantomConfig(size={args.size!r}, "
            f"lr_factors=(2, 2, 2))`: LR grid {shape} ({timing['total']:,} voxels) at 2 mm; "
            "series from `phantom.raw.series_images` (its noise and B1 pattern); fitted on the "
            "voxels with signal (`io.raw_qmri._signal`: peak above 5 % of the 99.9th "
            f"percentile); median of {args.repeats} run(s), each building the MESE dictionary "
            f"again ({timing['dictionary']:.1f} s of the MESE time).",
            "",
            *speed_table(timing),
            "",
            f"Target (issue): the MESE fit in at most {MESE_TARGET_S:g} s on 2 cores; here "
            f"{mese_s:.1f} s for {mese_n:,} voxels on the threads named in the header.",
            "",
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(text))
    print("\n".join(text))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
