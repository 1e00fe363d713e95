"""A control for benchmarks.real's in-vivo MESE case: the same pipeline on a synthetic slice
whose truth is known, to tell the benchmark's own effects from the real data's.

    python -m benchmarks.real_control [--anatomy synthseg-01] [--seed 3000]

A validation individual's 1 mm phantom (``swigapp-phantom --size full``, seed 3000: never a
held-out subject) gives one axial slice of PD, T1 and T2. Its MESE series is made as the
in-vivo slice's: 30 echoes of 12.8 ms, TR 3 s (M0 keeps its T1 saturation, as the in-vivo
fit's does), Rician noise at that slice's SNR (echo 1 median 1049, noise SD 30.5), guides =
echoes 1 and 8 of the noisy series, the series at 1/3 in-plane. The app runs on it as in
benchmarks.real, scored over the truth's pure GM against three references: the fit of the
same noisy series at full resolution (benchmarks.real's, whose noise the LR input and the
guides share), the fit of an independent noise draw, and the fit of the noiseless series.
Writes benchmarks/results/real_control.md.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np

from benchmarks import real
from swigapp.physics.protocol import Protocol

#: The in-vivo MESE slice's echo-1 median in its brain mask and its noise SD (fit residual).
ECHO1_LEVEL, NOISE_SD = 1049.0, 30.5
TR_S, ESP_S, N_ECHOES = 3.0, 0.0128, 30


def truth_slice(root: Path) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """PD, T1 (s), T2 (s), the brain and pure GM (>= 0.9) of one axial slice of a phantom
    (5 slices above its fullest brain slice), each (X, Y, 1)."""
    anat = root / "derivatives" / "phantom-truth" / "sub-01" / "anat"

    def load(name: str) -> np.ndarray:
        return np.asarray(nib.load(anat / f"sub-01_{name}.nii.gz").dataobj, np.float64)

    brain = load("desc-brain_mask") > 0.5
    z = int(np.argmax(brain.sum(axis=(0, 1)))) + 5
    maps = {m: load(f"desc-truth_{m}map")[:, :, z : z + 1] for m in ("PD", "T1", "T2")}
    return maps, brain[:, :, z : z + 1], load("label-GM_probseg")[:, :, z : z + 1] >= 0.9


def series(maps: dict[str, np.ndarray], brain: np.ndarray) -> np.ndarray:
    """Noiseless MESE magnitudes (X, Y, 1, echoes): PD (1 - exp(-TR/T1)) exp(-TE/T2), scaled
    to the in-vivo slice's echo-1 level."""
    te = ESP_S * np.arange(1, N_ECHOES + 1)
    t1 = np.where(maps["T1"] > 0, maps["T1"], 1.0)
    t2 = np.where(maps["T2"] > 0, maps["T2"], 1.0)
    clean = (maps["PD"] * (1 - np.exp(-TR_S / t1)))[..., None] * np.exp(-te / t2[..., None])
    return clean * ECHO1_LEVEL / np.median(clean[..., 0][brain])


def rician(clean: np.ndarray, seed: int) -> np.ndarray:
    """Magnitudes with complex Gaussian noise of :data:`NOISE_SD` per channel."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((2, *clean.shape)) * NOISE_SD
    return np.abs(clean + noise[0] + 1j * noise[1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--anatomy", default="synthseg-01", help="a validation individual")
    p.add_argument("--seed", type=int, default=3000, help="the phantom's seed (validation)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        phantom = Path(tmp) / "phantom"
        subprocess.run(["swigapp-phantom", str(phantom), "--size", "full", "--anatomy",
                        args.anatomy, "--seed", str(args.seed), "-q"], check=True)  # fmt: skip
        maps, brain, gm = truth_slice(phantom)
        clean = series(maps, brain)
        images = rician(clean, 1)
        guides = {
            "PDw": (images[..., 0], Protocol("SE", tr=TR_S, te=ESP_S, source="echo 1")),
            "T2w": (images[..., 7], Protocol("SE", tr=TR_S, te=8 * ESP_S, source="echo 8")),
        }
        common = {"RepetitionTime": TR_S, "FlipAngle": 90, "RefocusingFlipAngle": 180}
        case = real.RealCase(
            "synthmese", "MESE", images, list(ESP_S * np.arange(1, N_ECHOES + 1)),
            np.diag([1.0, 1.0, 7.5, 1.0]), brain, common, guides, factor=3, region=gm,
        )  # fmt: skip
        work = Path(tmp) / "case"
        rows = {"the same noisy series (as benchmarks.real)": real.run_case(case, work, 0)}
        rows["an independent noise draw"] = real.score_case(replace(case, images=rician(clean, 2)),
                                                            work, 0)  # fmt: skip
        rows["the noiseless series"] = real.score_case(replace(case, images=clean), work, 0)
    lines = [
        "# Control for the in-vivo MESE case: a synthetic slice",
        "",
        f"Command: `python -m benchmarks.real_control --anatomy {args.anatomy} --seed "
        f"{args.seed}`; machine: {platform.machine()}, 2 cores. One slice of a validation "
        "individual's phantom as an in-vivo-like MESE series (benchmarks/real_control.py); "
        "the app on it at 1/3 in-plane, as benchmarks.real runs the in-vivo slice; SSIM "
        "over the brain and MAE over the truth's pure GM against the full-resolution fit "
        "of each reference series; cubic: cubic spline of the app's LR fit.",
        "",
        "| reference: the fit of | SR T2 SSIM | cubic | SR GM T2 MAE ms | cubic | SR PD SSIM "
        "| cubic |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        sr, cubic = row["SR"], row["cubic"]
        lines.append(
            f"| {name} | {sr['T2 SSIM']:.4f} | {cubic['T2 SSIM']:.4f} | "
            f"{sr['GM T2 MAE ms']:.1f} | {cubic['GM T2 MAE ms']:.1f} | "
            f"{sr['PD SSIM']:.4f} | {cubic['PD SSIM']:.4f} |"
        )
    text = "\n".join(lines) + "\n"
    real.RESULTS.mkdir(exist_ok=True)
    (real.RESULTS / "real_control.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
