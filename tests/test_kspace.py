"""k-space truncation operators: adjointness, exactness on the band, means, affines."""

import nibabel as nib
import numpy as np
import pytest
import torch
from nibabel.processing import resample_from_to

from swigapp.operators import grid, kspace

CASES = [
    ((16, 18, 12), (2, 2, 2)),  # isotropic 2x, even sizes
    ((17, 15, 13), (2, 2, 2)),  # odd HR sizes
    ((16, 16, 24), (1, 1, 4)),  # anisotropic 1x1x4
    ((20, 15, 12), (1.5, 1.25, 3)),  # fractional factors
]


def bandlimited(shape, out_shape, seed=0):
    """Random real volume whose spectrum lies strictly inside the LR band |k| < M/2."""
    rng = np.random.default_rng(seed)
    spec = np.fft.fftn(rng.standard_normal(shape))
    for axis, (n, m) in enumerate(zip(shape, out_shape, strict=True)):
        freqs = np.abs(np.fft.fftfreq(n, 1.0 / n))
        keep = freqs < m / 2 - 0.5 if m % 2 == 0 else freqs <= (m - 1) / 2
        shape_b = [1] * len(shape)
        shape_b[axis] = n
        spec = spec * keep.reshape(shape_b)
    return np.fft.ifftn(spec).real


@pytest.mark.parametrize(("shape", "factors"), CASES)
def test_adjoint_identity(shape, factors):
    rng = np.random.default_rng(1)
    small = grid.lr_shape(shape, factors)
    x = rng.standard_normal(shape)
    y = rng.standard_normal(small)
    lhs = np.vdot(kspace.downsample(x, small), y)
    rhs = np.vdot(x, kspace.adjoint_downsample(y, shape))
    assert lhs == pytest.approx(rhs, rel=1e-12)
    # zero-filled upsampling is the adjoint up to the scale N/M
    ratio = np.prod(np.array(shape) / np.array(small))
    np.testing.assert_allclose(
        kspace.upsample(y, shape), ratio * kspace.adjoint_downsample(y, shape), atol=1e-12
    )


@pytest.mark.parametrize(("shape", "factors"), CASES)
def test_bandlimited_volume_survives_down_up(shape, factors):
    small = grid.lr_shape(shape, factors)
    x = bandlimited(shape, small)
    assert np.abs(x).max() > 0.1  # not trivially zero
    np.testing.assert_allclose(kspace.upsample(kspace.downsample(x, small), shape), x, atol=1e-12)
    np.testing.assert_allclose(kspace.beyond_band(x, small), 0.0, atol=1e-12)
    # a batch of volumes: the band of the last axes only, and what lies beyond it is kept
    rng = np.random.default_rng(0)
    batch = np.stack([x, rng.standard_normal(shape)])
    beyond = kspace.beyond_band(batch, small)
    np.testing.assert_allclose(beyond[0], 0.0, atol=1e-12)
    np.testing.assert_allclose(kspace.downsample(beyond[1], small), 0.0, atol=1e-12)


@pytest.mark.parametrize(("shape", "factors"), CASES)
def test_lr_image_survives_up_down_and_mean_kept(shape, factors):
    rng = np.random.default_rng(2)
    small = grid.lr_shape(shape, factors)
    y = rng.random(small) + 1.0
    up = kspace.upsample(y, shape)
    np.testing.assert_allclose(kspace.downsample(up, small), y, atol=1e-12)
    assert up.mean() == pytest.approx(y.mean(), rel=1e-12)
    x = rng.random(shape) * 3.0
    assert kspace.downsample(x, small).mean() == pytest.approx(x.mean(), rel=1e-12)


def test_broadband_detail_is_lost():
    """Down-up is a projection: an image with content above the LR band changes."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 16, 16))
    rec = kspace.upsample(kspace.downsample(x, (8, 8, 8)), (16, 16, 16))
    assert np.linalg.norm(rec - x) > 0.5 * np.linalg.norm(x)
    # and projecting twice changes nothing
    again = kspace.upsample(kspace.downsample(rec, (8, 8, 8)), (16, 16, 16))
    np.testing.assert_allclose(again, rec, atol=1e-12)


def test_lr_voxels_are_hr_samples_and_affine_matches_nibabel():
    """LR voxel j sits at HR voxel j N/M: nibabel resampling onto the LR affine agrees."""
    shape, small = (24, 20, 16), (12, 10, 4)
    x = bandlimited(shape, small, seed=4)
    hr_affine = np.array([[-1.0, 0, 0, 90], [0, 1.0, 0, -126], [0, 0, 1.0, -72], [0, 0, 0, 1]])
    lr = kspace.downsample(x, small)
    aff = grid.lr_affine(hr_affine, shape, small)
    np.testing.assert_allclose(aff[:3, :3], hr_affine[:3, :3] @ np.diag([2, 2, 4]))
    np.testing.assert_allclose(aff[:3, 3], hr_affine[:3, 3])
    # band-limited: the LR samples equal the HR samples at j N/M exactly
    np.testing.assert_allclose(lr, x[::2, ::2, ::4], atol=1e-12)
    resampled = resample_from_to(nib.Nifti1Image(x, hr_affine), (small, aff), order=1)
    np.testing.assert_allclose(resampled.get_fdata(), lr, atol=1e-9)
    # zero-filled upsampling back onto the HR grid agrees with nibabel's spline at HR voxels
    up = kspace.upsample(lr, shape)
    np.testing.assert_allclose(up, x, atol=1e-12)


def test_torch_autograd_and_batch_dims():
    x = torch.randn(2, 3, 8, 8, 8, dtype=torch.float64, requires_grad=True)
    y = kspace.downsample(x, (4, 4, 2))
    assert y.shape == (2, 3, 4, 4, 2) and isinstance(y, torch.Tensor)
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # numpy and torch paths agree
    np.testing.assert_allclose(kspace.downsample(x.detach().numpy(), (4, 4, 2)), y.detach().numpy())


def test_lr_shape_and_errors():
    assert grid.lr_shape((197, 233, 189), [2]) == (98, 116, 94)
    assert grid.lr_shape((64, 64, 48), (1, 1, 4)) == (64, 64, 12)
    with pytest.raises(ValueError, match="factor must be >= 1"):
        grid.lr_shape((8, 8, 8), (0.5, 1, 1))
    with pytest.raises(ValueError, match="need 1 or 3 factors"):
        grid.lr_shape((8, 8, 8), (2, 2))
    with pytest.raises(ValueError, match="cannot downsample"):
        kspace.downsample(np.zeros((8, 8, 8)), (4, 4, 16))


def test_spline_upsampling_follows_the_same_grid():
    from swigapp.operators.interp import upsample_interp

    lr = np.random.default_rng(5).random((6, 5, 4))
    for order in (1, 3):
        up = upsample_interp(lr, (12, 10, 16), order=order)
        assert up.shape == (12, 10, 16)
        # HR voxel j N/M coincides with LR voxel j: interpolation reproduces it exactly
        np.testing.assert_allclose(up[::2, ::2, ::4], lr, atol=1e-5)
    # linear is exact on a linear ramp (away from the mirrored far edge)
    ramp = np.arange(8, dtype=float)[:, None, None] * np.ones((8, 3, 3))
    up = upsample_interp(ramp, (16, 3, 3), order=1)
    np.testing.assert_allclose(up[:15, 1, 1], np.arange(15) / 2.0, atol=1e-6)
