"""The low-frequency data-consistency correction measured by benchmarks.low_frequency (not
applied by the app: it cost validation GM MAE at 1 mm in-plane)."""

import sys
from pathlib import Path

import numpy as np

# pytest runs as a console script: the checkout (benchmarks/) is not on sys.path
sys.path.append(str(Path(__file__).resolve().parents[1]))

from benchmarks.low_frequency import low_frequency_consistency, roi_mean_error
from swigapp import consistency as cons
from swigapp.operators import kspace
from swigapp.operators.acquisition import KSpace3D

SHAPE = (32, 32, 32)


def smooth_maps() -> np.ndarray:
    """PD (a.u.), T1 and T2 (s)-like maps varying by 20 % over a period of the grid (in
    band at 2x)."""
    x, y, z = np.indices(SHAPE) * (2 * np.pi / SHAPE[0])
    wave = np.sin(x) * np.cos(y) + 0.5 * np.sin(z)
    return (np.array([0.8, 1.2, 0.09])[:, None, None, None] * (1 + 0.13 * wave)).astype(np.float32)


def subject(noise: float, valid: np.ndarray | None = None):
    """Smooth truth maps and their evidence: LR maps on a 2x grid with relative noise."""
    rng = np.random.default_rng(0)
    truth = smooth_maps()
    lr = np.asarray(kspace.downsample(truth.astype(np.float64), (16, 16, 16)), np.float32)
    lr = (lr * (1 + noise * rng.standard_normal(lr.shape))).astype(np.float32)
    lr_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    lr_affine[:3, 3] = 0.5
    acq = KSpace3D(SHAPE, lr.shape[1:])
    mask = np.ones(SHAPE, bool)
    return truth, cons.Evidence(lr, acq, {}, {}, mask, lr_affine, np.eye(4), valid)


def test_maps_consistent_with_the_lr_maps_move_by_the_noise_only():
    truth, evidence = subject(noise=0.02)
    plain = low_frequency_consistency(truth, evidence)
    change = np.abs(plain / truth - 1)
    assert np.median(change) < 0.005 and change.max() < 0.03  # smoothed 2 % noise
    shrunk = low_frequency_consistency(truth, evidence, significance=3.0)
    assert np.median(np.abs(shrunk / truth - 1)) == 0.0  # nothing beyond the noise


def test_a_biased_sphere_is_pulled_towards_the_lr_maps_and_an_estimate_is_left_alone():
    valid = np.ones((3, 16, 16, 16), bool)
    valid[2] = False  # T2 not acquired: an estimate, not data
    truth, evidence = subject(noise=0.0, valid=valid)
    ball = np.sqrt(((np.indices(SHAPE) - 16.0) ** 2).sum(axis=0)) <= 4.5
    sr = truth.copy()
    sr[:, ball] *= 1.3
    out = low_frequency_consistency(sr, evidence)
    for i in (0, 1):
        assert out[i][ball].mean() / truth[i][ball].mean() < 1.2  # 1.3 before
    assert np.array_equal(out[2], sr[2])


def test_roi_mean_error_reads_regional_means():
    truth = np.ones((16, 16, 16), np.float32)
    where = np.ones(truth.shape, bool)
    maps = truth + 0.05
    maps[:8, :8, :8] += np.random.default_rng(0).standard_normal((8, 8, 8)).astype(np.float32)
    assert abs(roi_mean_error(maps, truth, where) - 0.05) < 1e-6  # median of 8 blocks
    where[8:] = False
    where[:8, :8, :3] = False  # this block keeps 320 voxels, the others 512
    assert abs(roi_mean_error(maps, truth, where) - 0.05) < 0.2
