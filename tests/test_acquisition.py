"""The LR acquisition object: 3D k-space truncation and the 2D multi-slice (slice-profile)
model: adjoints, a brute-force forward, autograd, gaps, initial upsampling, metadata, phantom."""

import json
import math
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import integrate

from swigapp.cli import phantom as phantom_cli
from swigapp.operators import acquisition, grid, kspace
from swigapp.operators.acquisition import KSpace3D, SliceStack2D, from_metadata
from swigapp.phantom.subject import PhantomConfig

SIGMA_PER_FWHM = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))

# (hr_shape, lr_shape, slice_axis, spacing mm, thickness mm, profile)
STACKS = [
    ((12, 10, 24), (6, 10, 6), 2, 4.0, 4.0, "gaussian"),  # integer step, no gap
    ((12, 10, 24), (6, 5, 6), 2, 4.0, 2.0, "rect"),  # gap of half the spacing
    ((9, 20, 7), (9, 5, 7), 1, 6.0, 4.5, "gaussian"),  # slices along y, fractional step
    ((15, 8, 8), (4, 8, 5), 0, 5.0, 6.5, "rect"),  # slices along x, overlapping, odd sizes
    ((8, 8, 10), (8, 8, 10), 2, 1.0, 3.0, "gaussian"),  # as many slices as HR voxels
]


def stack(case, **kwargs):
    hr, lr, axis, spacing, thickness, profile = case
    return SliceStack2D(
        hr,
        lr,
        slice_spacing=spacing,
        slice_thickness=thickness,
        slice_axis=axis,
        profile=profile,
        **kwargs,
    )


# ------------------------------------------------------------------ brute force


def dft_truncation_matrix(n, m):
    """(m, n) k-space truncation along one axis, from numpy's FFT of the identity."""
    if m == n:
        return np.eye(n)
    spec = np.fft.fft(np.eye(n), axis=0)  # column j: spectrum of delta j
    band = np.zeros((m, n), dtype=complex)
    for k in range(m):
        freq = k if k < m / 2 else k - m  # LR frequency of LR bin k
        if m % 2 == 0 and k == m // 2:  # unpaired Nyquist bin: both HR bins, 1/sqrt(2)
            band[k] = (spec[m // 2] + spec[n - m // 2]) / math.sqrt(2.0)
        else:
            band[k] = spec[freq % n]
    return (np.fft.ifft(band, axis=0) * (m / n)).real


def profile_weight(a, b, fwhm, profile):
    """Integral of the unit-area profile (centred at 0) over [a, b], by quadrature / overlap."""
    if profile == "rect":
        return max(0.0, min(b, fwhm / 2) - max(a, -fwhm / 2)) / fwhm
    sigma = fwhm * SIGMA_PER_FWHM

    def pdf(t):
        return math.exp(-0.5 * (t / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))

    return integrate.quad(pdf, a, b, epsabs=1e-15, epsrel=1e-13)[0]


def brute_force_slices(column, m, fwhm, profile):
    """Periodic slice sampling of one HR column by explicit loops."""
    n = len(column)
    step = n / m
    if float(step).is_integer():  # convolve with the voxel-integrated kernel, pick centres
        reach = math.ceil(8 * fwhm) + n
        kernel = {d: profile_weight(d - 0.5, d + 0.5, fwhm, profile) for d in range(-reach, reach)}
        total = sum(kernel.values())
        conv = [sum(w * column[(i - d) % n] for d, w in kernel.items()) / total for i in range(n)]
        return np.array([conv[int(k * step)] for k in range(m)])
    out = np.zeros(m)
    for k in range(m):
        weights = np.zeros(n)
        for i in range(n):
            for wrap in range(-3, 4):
                d = i - k * step + wrap * n
                weights[i] += profile_weight(d - 0.5, d + 0.5, fwhm, profile)
        out[k] = weights @ column / weights.sum()
    return out


def brute_force_forward(x, case):
    hr, lr, axis, spacing, thickness, profile = case
    fwhm = thickness / (spacing * lr[axis] / hr[axis])
    x = np.moveaxis(x, axis, -1)
    through = np.zeros((*x.shape[:-1], lr[axis]))
    for index in np.ndindex(*x.shape[:-1]):
        through[index] = brute_force_slices(x[index], lr[axis], fwhm, profile)
    through = np.moveaxis(through, -1, axis)
    for a in range(3):
        if a != axis:
            mat = dft_truncation_matrix(hr[a], lr[a])
            through = np.moveaxis(np.tensordot(mat, through, axes=([1], [a])), 0, a)
    return through


# ------------------------------------------------------------------ operators


@pytest.mark.parametrize("case", STACKS)
def test_slice_stack_matches_brute_force(case):
    hr = case[0]
    x = np.random.default_rng(0).standard_normal(hr)
    np.testing.assert_allclose(stack(case).forward(x), brute_force_forward(x, case), atol=1e-10)


@pytest.mark.parametrize("case", STACKS)
def test_slice_stack_adjoint_is_exact(case):
    op = stack(case)
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.standard_normal((2, *op.hr_shape)))
    y = torch.as_tensor(rng.standard_normal((2, *op.lr_shape)))
    lhs = torch.sum(op.forward(x) * y).item()
    rhs = torch.sum(x * op.adjoint(y)).item()
    assert abs(lhs - rhs) < 1e-10 * max(1.0, abs(lhs))
    # the explicit through-plane matrix: rows sum to 1, centres where LR voxels sit
    assert np.allclose(op.matrix.sum(axis=1), 1.0, atol=1e-14)


@pytest.mark.parametrize(
    ("hr", "lr"), [((16, 18, 12), (8, 9, 6)), ((17, 15, 13), (8, 15, 5)), ((10, 9, 8), (10, 9, 8))]
)
def test_kspace3d_adjoint_and_bit_identity(hr, lr):
    op = KSpace3D(hr, lr)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal(hr), rng.standard_normal(lr)
    assert abs(np.vdot(op.forward(x), y) - np.vdot(x, op.adjoint(y))) < 1e-10
    for arr_x, arr_y in ((x, y), (x.astype(np.float32), y.astype(np.float32))):
        assert np.array_equal(op.forward(arr_x), kspace.downsample(arr_x, lr))
        assert np.array_equal(op.adjoint(arr_y), kspace.adjoint_downsample(arr_y, hr))
        assert np.array_equal(op.upsample(arr_y), kspace.upsample(arr_y, hr))
        assert op.forward(arr_x).dtype == kspace.downsample(arr_x, lr).dtype
    tx, ty = torch.as_tensor(x[None]), torch.as_tensor(y[None])
    assert torch.equal(op.forward(tx), kspace.downsample(tx, lr))
    assert torch.equal(op.upsample(ty), kspace.upsample(ty, hr))
    assert op.to_record()["model"] == "kspace"


def test_gradcheck_forward_and_adjoint():
    for op in (
        stack(((6, 5, 8), (3, 5, 4), 2, 2.0, 1.5, "gaussian")),
        KSpace3D((6, 5, 4), (3, 5, 2)),
    ):
        x = torch.randn(op.hr_shape, dtype=torch.float64, requires_grad=True)
        y = torch.randn(op.lr_shape, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(op.forward, (x,))
        assert torch.autograd.gradcheck(op.adjoint, (y,))
        assert torch.autograd.gradcheck(op.upsample, (y,))


def test_float32_batches_and_wrong_shapes():
    op = stack(STACKS[2])
    x = np.random.default_rng(3).standard_normal((2, 3, *op.hr_shape))
    out32 = op.forward(torch.as_tensor(x, dtype=torch.float32))
    assert out32.dtype == torch.float32 and out32.shape == (2, 3, *op.lr_shape)
    np.testing.assert_allclose(out32[1, 2].numpy(), op.forward(x[1, 2]), atol=1e-5, rtol=0)
    assert isinstance(op.upsample(op.forward(x)), np.ndarray)
    with pytest.raises(ValueError, match="must end in"):
        op.forward(x[..., :-1])


def test_gap_leaves_tissue_unsampled():
    # 32 HR voxels, 8 slices every 4 voxels, 2 voxels thick: voxels 2 mod 4 lie in the gaps
    rect = SliceStack2D(
        (4, 4, 32), (4, 4, 8), slice_spacing=4.0, slice_thickness=2.0, profile="rect"
    )
    gauss = SliceStack2D(
        (4, 4, 32), (4, 4, 8), slice_spacing=4.0, slice_thickness=2.0, profile="gaussian"
    )
    in_gap, at_centre = np.zeros((4, 4, 32)), np.zeros((4, 4, 32))
    in_gap[1, 2, 10] = at_centre[1, 2, 12] = 1.0
    assert np.abs(rect.forward(in_gap)).max() < 1e-14  # nothing of it is acquired
    assert np.abs(rect.forward(at_centre)).max() > 0.01
    # a Gaussian's tails reach into the gap, weakly (FWHM 2 voxels, 2 voxels off centre)
    assert np.abs(gauss.forward(in_gap)).max() < 0.1 * np.abs(gauss.forward(at_centre)).max()
    assert rect.to_record()["slice_gap_mm"] == 2.0


def step_errors(op, up):
    """Peak over/undershoot and ringing away from the edges (% of a unit step), worst over
    step positions within one slice; ``up``: LR -> HR along the slice axis (last)."""
    n = op.hr_shape[2]
    worst = tail = 0.0
    for shift in range(int(op.step) + 1):
        lo, hi = n // 4 + shift, 3 * n // 4 + shift
        x = np.zeros(op.hr_shape)
        x[..., lo:hi] = 1.0
        u = up(op.forward(x))[0, 0]
        centre = np.arange(n) + 0.5
        far = np.minimum(np.abs(centre - lo), np.abs(centre - hi)) > 1.5 * op.step
        worst = max(worst, u.max() - 1.0, -u.min())
        tail = max(tail, np.abs(u - x[0, 0])[far].max())
    return 100 * worst, 100 * tail


@pytest.mark.parametrize(
    ("thickness", "spacing", "profile"),
    [(4.0, 4.0, "rect"), (4.0, 6.0, "rect"), (4.0, 6.0, "gaussian"), (4.0, 4.0, "gaussian")],
)
def test_initial_upsampling_rings_less_and_fits_data(thickness, spacing, profile):
    n_slices = 12
    n = int(n_slices * spacing)  # 1 mm HR voxels
    op = SliceStack2D((2, 2, n), (2, 2, n_slices), spacing, thickness, profile=profile)

    def zerofilled(y):
        return kspace.upsample(y, op.hr_shape)

    peak, tail = step_errors(op, op.upsample)
    peak_zf, tail_zf = step_errors(op, zerofilled)
    assert tail < tail_zf  # less Gibbs ringing away from edges
    if spacing > thickness:  # with a gap, the peak overshoot is lower too
        assert peak < peak_zf
    # data consistency on a smooth + sharp column: forward(upsample(y)) ~ y
    column = np.sin(np.linspace(0, 4 * np.pi, n, endpoint=False)) + (np.arange(n) > n // 2)
    y = op.forward(np.broadcast_to(column, op.hr_shape).copy())
    fit = np.linalg.norm(op.forward(op.upsample(y)) - y) / np.linalg.norm(y)
    fit_zf = np.linalg.norm(op.forward(zerofilled(y)) - y) / np.linalg.norm(y)
    assert fit < 0.03 and fit < fit_zf


# ------------------------------------------------------------------ metadata


def affine(voxel):
    out = np.diag([*voxel, 1.0])
    out[:3, 3] = [-90.0, -100.0, -60.0]
    return out


def test_from_metadata_picks_the_model():
    three_d = from_metadata((96, 96, 30), affine((2, 2, 4)), 1.0, {"MRAcquisitionType": "3D"})
    assert isinstance(three_d, KSpace3D) and three_d.hr_shape == (192, 192, 120)
    np.testing.assert_allclose(three_d.hr_affine[:3, :3], np.eye(3))
    two_d = from_metadata(
        (192, 30, 192),
        affine((1, 5, 1)),
        (1, 1, 1),
        {"MRAcquisitionType": "2D", "SliceThickness": 4, "SpacingBetweenSlices": 5},
    )
    assert isinstance(two_d, SliceStack2D) and two_d.slice_axis == 1
    assert two_d.hr_shape == (192, 150, 192) and two_d.slice_gap == pytest.approx(1.0)
    # no MRAcquisitionType: thick slices (> 1.5x in-plane) make a 2D stack
    thick = from_metadata((100, 100, 20), affine((1, 1, 5)), 1.0, {"SliceThickness": 5})
    assert isinstance(thick, SliceStack2D) and thick.slice_axis == 2
    assert thick.slice_thickness == 5.0
    # 2D without SliceThickness: thickness = spacing; SliceEncodingDirection sets the axis
    square = from_metadata(
        (40, 40, 40),
        affine((3, 3, 3)),
        1.0,
        {"MRAcquisitionType": "2D", "SliceEncodingDirection": "i-"},
    )
    assert square.slice_axis == 0 and square.slice_thickness == 3.0
    assert isinstance(from_metadata((50, 50, 40), affine((2, 2, 2.5)), 1.0, {}), KSpace3D)
    assert acquisition.choose_model((1, 1, 4), {"MRAcquisitionType": "3D"}) == "kspace"
    forced = from_metadata((50, 50, 40), affine((2, 2, 2.5)), 1.0, {}, model="slice-profile")
    assert isinstance(forced, SliceStack2D)
    with pytest.raises(ValueError, match="unknown acquisition model"):
        from_metadata((50, 50, 40), affine((2, 2, 2)), 1.0, {}, model="radial")


def test_describe_is_json_ready():
    op = from_metadata(
        (96, 96, 24),
        affine((2, 2, 6)),
        1.0,
        {"MRAcquisitionType": "2D", "SliceThickness": 5},
        profile="rect",
    )
    info = json.loads(json.dumps(op.to_record()))
    assert info["model"] == "slice-profile" and info["profile"] == "rect"
    assert info["slice_thickness_mm"] == 5.0 and info["slice_spacing_mm"] == 6.0
    assert info["slice_gap_mm"] == 1.0 and info["factors"] == [2.0, 2.0, 6.0]
    assert info["in_plane_factors"] == [2.0, 2.0] and info["profile_fwhm_hr_voxels"] == 5.0
    assert info["lr_voxel_size_mm"] == [2.0, 2.0, 6.0] and "least-squares" in info["upsampling"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch has no CUDA")
def test_cuda_matches_cpu():
    op = stack(STACKS[3])
    x = torch.randn((2, *op.hr_shape), dtype=torch.float32)
    y = torch.randn((2, *op.lr_shape), dtype=torch.float32)
    for fn, arg in ((op.forward, x), (op.adjoint, y), (op.upsample, y)):
        gpu = fn(arg.cuda())
        assert gpu.is_cuda
        torch.testing.assert_close(gpu.cpu(), fn(arg), atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ phantom


def test_phantom_2d_stack(tmp_path):
    out = tmp_path / "ds"
    args = ["--acquisition", "2d", "--slice-thickness", "4", "--slice-gap", "2", "--seed", "2"]
    assert phantom_cli.main([str(out), "-q", "--guides", "T1w", "--lr-factor", "2", *args]) == 0
    anat = out / "sub-01" / "anat"
    sidecar = json.loads((anat / "sub-01_acq-lowres_T1map.json").read_text())
    assert sidecar["MRAcquisitionType"] == "2D" and sidecar["SliceThickness"] == 4.0
    assert sidecar["SpacingBetweenSlices"] == pytest.approx(80 / 13, abs=1e-5)  # 40 x 2 mm
    lr = nib.load(anat / "sub-01_acq-lowres_T1map.nii.gz")
    hr = nib.load(anat / "sub-01_T1w.nii.gz")
    assert lr.shape == (38, 46, 13)
    # slice k where the operator samples it: LR voxel k at HR voxel k N/M
    np.testing.assert_allclose(lr.affine, grid.lr_affine(hr.affine, hr.shape, lr.shape))
    # the app's reading of the metadata rebuilds the same operator on the same HR grid
    op = from_metadata(lr.shape, lr.affine, grid.voxel_sizes(hr.affine), sidecar)
    assert isinstance(op, SliceStack2D) and op.hr_shape == hr.shape
    truth = nib.load(out / "derivatives/phantom-truth/sub-01/anat/sub-01_desc-truth_T1map.nii.gz")
    clean = op.forward(truth.get_fdata())
    data = lr.get_fdata()
    inside = clean > 0.5
    assert np.median(np.abs(data - clean)[inside] / clean[inside]) < 0.03  # the 2 % noise
    record = json.loads(
        (out / "derivatives/phantom-truth/sub-01/anat/sub-01_desc-brain_mask.json").read_text()
    )
    assert record["Configuration"]["acquisition"] == "2d"
    if shutil.which("bids-validator-deno"):
        run = subprocess.run(
            ["bids-validator-deno", "--recursive", "--format", "json", str(out)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        issues = json.loads(run.stdout)["issues"]["issues"]
        assert [i for i in issues if i["severity"] == "error"] == []


def test_phantom_default_record_has_no_2d_fields():
    assert "acquisition" not in PhantomConfig().record()
    assert PhantomConfig(acquisition="2d").record()["slice_gap_mm"] == 0.0
    assert phantom_cli.main(["unused", "--slice-gap", "1"]) == 2  # slice options need 2d


# ------------------------------------------------------------ the app on a 2D stack


@pytest.fixture(scope="module")
def stack_dataset(tmp_path_factory):
    """A tiny phantom whose LR maps are a 2D stack: 4 mm slices, 1 mm gap, 2 mm in-plane."""
    out = tmp_path_factory.mktemp("stack") / "ds"
    args = ["--acquisition", "2d", "--slice-thickness", "4", "--slice-gap", "1", "--seed", "3"]
    assert phantom_cli.main([str(out), "-q", "--lr-factor", "1,1,2", *args]) == 0
    return out


def _app(bids, out, *extra):
    from swigapp.cli import run as cli

    return cli.main([str(bids), str(out), "participant", "--skip-bids-validation",
                     "-w", str(out.parent / "work"), "--nprocs", "2", "--omp-nthreads", "1",
                     *extra])  # fmt: skip


def test_the_app_models_a_2d_stack_and_beats_cubic_on_every_map(stack_dataset, tmp_path):
    from swigapp import metrics
    from swigapp.operators.interp import upsample_interp

    out = tmp_path / "out"
    assert _app(stack_dataset, out) == 0
    anat, truth_dir = out / "sub-01" / "anat", stack_dataset / "derivatives/phantom-truth"
    side = json.loads((anat / "sub-01_res-hi_desc-swig_T1map.json").read_text())
    model = side["AcquisitionModel"]
    assert model["model"] == "slice-profile" and model["lr_model"] == "auto"
    assert model["slice_thickness_mm"] == 4.0 and model["slice_gap_mm"] == pytest.approx(1.0)
    methods = (out / "sub-01" / "log" / "sub-01_methods.md").read_text()
    assert "a 2D multi-slice stack (--lr-model auto)" in methods
    assert "slice profile of 4 mm FWHM sampled every 5 mm (gap 1 mm)" in methods
    mask = np.asarray(nib.load(truth_dir / "sub-01/anat/sub-01_desc-brain_mask.nii.gz").dataobj)
    for m in ("PD", "T1", "T2"):
        truth = np.asarray(
            nib.load(truth_dir / f"sub-01/anat/sub-01_desc-truth_{m}map.nii.gz").dataobj
        )
        lr = np.asarray(
            nib.load(stack_dataset / f"sub-01/anat/sub-01_acq-lowres_{m}map.nii.gz").dataobj
        )
        sr = np.asarray(nib.load(anat / f"sub-01_res-hi_desc-swig_{m}map.nii.gz").dataobj)
        cubic = upsample_interp(lr, truth.shape, order=3)
        rng = metrics.DATA_RANGE[m]
        gain = metrics.ssim(sr, truth, rng, mask=mask > 0.5) - metrics.ssim(
            cubic, truth, rng, mask=mask > 0.5
        )
        assert gain > 0.02, (m, gain)  # measured: PD +0.06, T1 +0.05, T2 +0.025
    qc = json.loads((out / "sub-01" / "log" / "sub-01_qc.json").read_text())
    assert all(0 <= v < 0.2 for v in qc["LRResidual"].values())  # through the 2D operator


def test_adaptation_on_a_2d_stack_fits_through_the_slice_operator(stack_dataset, tmp_path):
    """Per-subject adaptation on a 2D stack: its LR term is the stack's operator, so the
    adapted maps stay consistent with the slices (the QC residual uses the same operator)."""
    out = tmp_path / "out"
    assert _app(stack_dataset, out, "--adapt-steps", "5") == 0
    qc = json.loads((out / "sub-01" / "log" / "sub-01_qc.json").read_text())
    assert all(0 <= v < 0.2 for v in qc["LRResidual"].values()), qc["LRResidual"]


def test_the_inr_fits_a_2d_stack(stack_dataset, tmp_path):
    out = tmp_path / "out"
    assert _app(stack_dataset, out, "--method", "inr", "--inr-max-steps", "40") == 0
    side = json.loads((out / "sub-01/anat/sub-01_res-hi_desc-inr_T1map.json").read_text())
    assert side["AcquisitionModel"]["model"] == "slice-profile"
    qc = json.loads((out / "sub-01" / "log" / "sub-01_qc.json").read_text())
    assert all(0 <= v < 0.2 for v in qc["LRResidual"].values()), qc["LRResidual"]


def test_the_lr_loss_of_a_stack_is_the_stack_operator():
    from swigapp.models.losses import LR_SCALES, lr_loss
    from swigapp.operators.acquisition import KSpace3D, SliceStack2D

    torch.manual_seed(0)
    hr, lr_shape = (1, 3, 8, 8, 20), (1, 3, 8, 8, 4)
    op = SliceStack2D(hr[2:], lr_shape[2:], slice_spacing=5.0, slice_thickness=4.0)
    # a crop's operator: the same slice model on the box, and it follows a permutation
    assert op.restrict(hr, lr_shape).forward(torch.ones(hr)).shape == lr_shape
    assert op.permuted((2, 0, 1)).slice_axis == 0
    assert op.permuted((2, 0, 1)).restrict((20, 8, 8), (4, 8, 8)).slice_spacing == 5.0
    pred, up = torch.rand(hr, dtype=torch.float64), torch.rand(hr, dtype=torch.float64)
    mask = torch.ones((1, *hr[2:]), dtype=torch.bool)
    lr = torch.zeros(lr_shape, dtype=torch.float64)
    scales = torch.tensor(LR_SCALES, dtype=torch.float64)[None, :, None, None, None]
    expected = (((op.forward(pred) - op.forward(up)) / scales) ** 2).mean()
    got = lr_loss(pred, up, lr, mask, op)
    torch.testing.assert_close(got, expected)
    # the 3D k-space term is another operator: the two differ on the same data
    kspace_term = lr_loss(pred, up, lr, mask, KSpace3D(hr[2:], lr_shape[2:]))
    assert abs(float(kspace_term) - float(got)) > 1e-3 * float(got)
    # and the gradient flows through the slice profile
    pred.requires_grad_(True)
    lr_loss(pred, up, lr, mask, op).backward()
    assert pred.grad is not None and float(pred.grad.abs().sum()) > 0


def test_training_crops_of_a_2d_phantom_carry_its_operator():
    from dataclasses import replace

    from swigapp.models.data import TRAIN_PHANTOM, phantom_pool, sample_batch
    from swigapp.models.losses import LossWeights, total_loss

    config = replace(TRAIN_PHANTOM, size="tiny", acquisition="2d", slice_thickness_mm=4.0,
                     slice_gap_mm=1.0)  # fmt: skip
    pool = phantom_pool(1, 3, settings=((1, 1, 2),), config=config, progress=False)
    assert pool[0].acquisition.slice_spacing == pytest.approx(5.0)
    # the upsampled input is the stack's least-squares inverse, not zero-filled k-space
    assert not torch.allclose(pool[0].lr_up, torch.from_numpy(
        np.asarray(kspace.upsample(pool[0].lr.numpy().astype(np.float64), pool[0].hr_shape),
                   dtype=np.float32)), atol=1e-3)  # fmt: skip
    rng = np.random.default_rng(0)
    for _ in range(3):
        batch = sample_batch(pool, rng, 2, (32, 32, 10))
        op = batch["acquisition"]  # the crop's own operator (restricted to its boxes)
        # the slice axis follows the crop's permutation: the LR box is thin along it
        assert batch["lr"].shape[2 + op.slice_axis] < batch["lr_up"].shape[2 + op.slice_axis]
        # the crop's operator takes its upsampled input back to its own acquired slices
        # (interior slices: the crop is periodic along the slice axis, as the loss knows)
        down = torch.movedim(op.forward(batch["lr_up"].double()), 2 + op.slice_axis, -1)
        acquired = torch.movedim(batch["lr"].double(), 2 + op.slice_axis, -1)
        inner = (slice(None),) * 4 + (slice(1, -1),)
        err, ref = (down - acquired)[inner], acquired[inner]
        tissue = ref > 0.3 * ref.amax()
        assert float((err.abs()[tissue] / ref[tissue]).median()) < 0.03
        maps = (batch["lr_up"] * 1.05).requires_grad_(True)
        loss, parts = total_loss(LossWeights(guide=0.0, lr=1.0, supervised=0.0), maps, batch)
        loss.backward()
        assert parts["lr"] > 0 and float(maps.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="tilted"):
        phantom_pool(1, 3, config=replace(TRAIN_PHANTOM, tilt_deg=10.0), progress=False)


@pytest.mark.parametrize("kind", ["kspace", "stack"])
def test_an_acquisition_round_trips_through_its_record(kind):
    """Both models are whole objects: a JSON record rebuilds the same operator, a
    permutation and a crop restriction keep the model, and the fallback interpolation is
    the one measured best for the kind (cubic spline for k-space, the stack's own
    least-squares upsampling through the plane and cubic spline in it)."""
    from swigapp.operators.acquisition import Acquisition, KSpace3D, SliceStack2D
    from swigapp.operators.interp import upsample_interp

    hr, lr = (16, 12, 20), (8, 6, 4)
    if kind == "kspace":
        op = KSpace3D(hr, lr)
    else:
        op = SliceStack2D(hr, lr, slice_spacing=5.0, slice_thickness=3.0, upsampling="spline")
    record = json.loads(json.dumps(op.to_record()))
    back = Acquisition.from_record(record)
    assert back == op and hash(back) == hash(op) and back.to_record() == record
    y = np.random.default_rng(0).random((3, *lr))
    np.testing.assert_array_equal(back.forward(op.upsample(y)), op.forward(op.upsample(y)))
    turned = op.permuted((2, 0, 1))
    assert type(turned) is type(op) and turned.hr_shape == (20, 16, 12)
    assert turned.restrict((10, 16, 12), (2, 8, 6)).lr_shape == (2, 8, 6)
    interp = op.interpolate(y)
    assert interp.shape == (3, *hr)
    if kind == "kspace":
        expected = np.stack([upsample_interp(v, hr, order=3) for v in y])
    else:  # cubic spline in the plane (here 2x), the stack's own upsampling through it
        in_plane = np.stack([upsample_interp(v, (16, 12, 4), order=3) for v in y])
        expected = np.einsum("nm,kxym->kxyn", op.inverse, in_plane.astype(np.float64))
    np.testing.assert_allclose(interp, expected, rtol=1e-5)
    with pytest.raises(ValueError, match="unknown acquisition model"):
        Acquisition.from_record({"model": "spiral"})


def test_a_stack_thinned_in_plane_falls_back_to_cubic_spline_there_not_to_ringing():
    # the NIST phantom's IR slice at half its in-plane resolution: zero-filling rang at the
    # sphere walls (T1 of a smooth sphere read 66-112 ms); with in-plane factor 1 nothing
    # changes
    hr, lr = (64, 64, 1), (32, 32, 1)
    op = SliceStack2D(hr, lr, slice_spacing=6.0)
    i, j = np.indices(hr[:2])
    radius = np.hypot(i - 31.5, j - 31.5)[..., None]
    for outer in (9, 14):  # a short-T1 sphere (0.1 s) in long-T1 fluid (2 s)
        y = np.asarray(op.forward(np.where(radius < outer, 0.1, 2.0)))
        inside = radius < outer - 4

        def rms(image, inside=inside):
            return np.sqrt(np.mean((image[inside] - 0.1) ** 2))

        # the LR samples ring themselves; zero-filling adds its own ringing between them
        assert rms(op.interpolate(y)) < 0.85 * rms(np.asarray(op.upsample(y)))  # 0.77, 0.77
    flat = SliceStack2D((32, 32, 10), (32, 32, 2), slice_spacing=5.0)
    z = np.random.default_rng(0).random((32, 32, 2))
    np.testing.assert_array_equal(flat.interpolate(z), np.asarray(flat.upsample(z)))
