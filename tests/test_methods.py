"""The alternative methods: the subject-specific INR and wmri2q (U-Net from weighted images),
as library functions and as ``--method`` of the participant level."""

import json
from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest
import torch

from swigapp import metrics
from swigapp.cli import run as cli
from swigapp.methods import Request, fallback_method, method_options
from swigapp.models.crops import collate, random_crop
from swigapp.models.features import MAP_ORDER, prepare_subject
from swigapp.models.inference import predict_volume
from swigapp.models.inr import (
    INR_WEIGHTS,
    SWIG_ANCHOR,
    GridINR,
    INRConfig,
    NodeAdam,
    _plateau,
    fit_inr,
    render_volume,
)
from swigapp.models.losses import LossWeights, total_loss
from swigapp.models.network import NetConfig, WmriUNet, build_network
from swigapp.models.shipped import load_shipped, model_card
from swigapp.models.train import sha256
from swigapp.operators.interp import upsample_interp
from swigapp.phantom.bids import TRUTH_PIPELINE
from swigapp.phantom.subject import PhantomConfig, make_subject

VOXEL = (2.0, 2.0, 2.0)  # the tiny phantom's HR voxel size (mm)


@pytest.fixture(scope="module")
def aligned():
    """A tiny subject whose guides are on the HR grid (as after registration), T1w + T2w."""
    config = PhantomConfig(size="tiny", max_rotation_deg=0.0, max_translation_mm=0.0)
    s = make_subject(3, seed=11, config=config)
    guides = {g: s.guides[g] for g in ("T1w", "T2w")}
    return prepare_subject(
        s.lr_maps, guides, s.protocols, s.truth.brain_mask, truth=s.truth.as_dict()
    )


def _scores(pred: np.ndarray, subject) -> dict[str, tuple[float, float]]:
    """(NRMSE, SSIM) against the truth per map, inside the brain mask."""
    mask, truth = subject.mask.numpy(), subject.truth.numpy()
    return {
        m: (
            metrics.nrmse(pred[i], truth[i], mask=mask),
            metrics.ssim(pred[i], truth[i], metrics.DATA_RANGE[m], mask=mask),
        )
        for i, m in enumerate(MAP_ORDER)
    }


# ----------------------------------------------------------------------------- INR


def test_plateau_rule():
    cfg = INRConfig(patience=2, tol=0.01)
    assert not _plateau([0.1, 0.2], cfg)  # too few measurements
    assert not _plateau([0.1, 0.2, 0.3, 0.4], cfg)  # still rising
    assert _plateau([0.1, 0.3, 0.301, 0.299], cfg)  # < 1 % above the earlier best
    assert _plateau([0.1, 0.3, 0.25, 0.2], cfg)  # falling


def test_inr_config_rejects_unknown_choices():
    for field, value in (
        ("encoding", "hash"),
        ("stop", "loss"),
        ("init", "cubic"),
        ("activation", "tanh"),
    ):
        with pytest.raises(ValueError, match=field):
            INRConfig(**{field: value})


def test_where_no_guide_saw_each_method_falls_back_to_its_base():
    """SWIG falls back to itself with no guide, and so does the INR over SWIG (its base):
    where it has nothing to refine it returns SWIG's maps, not the LR input; the INR over
    the LR maps and wmri2q (which needs guides) fall back to the upsampled LR maps (None)."""
    swig = method_options("swig", {"adapt_steps": 20})
    request = Request(device=torch.device("cpu"), model_path="my.pt", options=swig)
    plain, plain_request = fallback_method("swig", request)
    # itself, its own weights, no adaptation where no guide saw
    assert plain == "swig" and plain_request.model_path == "my.pt"
    assert plain_request.options.adaptation == 0
    over_swig = replace(
        request, model_path=None, options=method_options("inr", {"inr_init": "swig"})
    )
    plain, plain_request = fallback_method("inr", over_swig)
    # the INR's base: the shipped SWIG with SWIG's own (default) options
    assert plain == "swig" and plain_request.model_path is None
    assert plain_request.options == method_options("swig")
    assert fallback_method("inr", replace(request, options=method_options("inr"))) is None
    assert fallback_method("wmri2q", replace(request, options=method_options("wmri2q"))) is None


@pytest.mark.parametrize("voxel", [(1.0, 1.0, 1.0), (0.8, 1.0, 2.5)])
def test_grid_boxes_agree_with_pointwise_trilinear(voxel):
    """The crop path (separable weights on cut-out nodes) and the rendering path (8-corner
    gather) give the same features and maps, for aligned and non-aligned node spacings."""
    torch.manual_seed(0)
    cfg = INRConfig(grid_spacings_mm=(6.0, 2.2, 1.0), grid_features=3)
    model = GridINR(cfg, (20, 17, 9), voxel)
    for grid in model.grids:  # features with structure, not the near-zero start
        grid.normal_()
    assert model.strides[-1] == tuple(max(1.0 / v, 1.0) for v in voxel)
    box = (slice(3, 15), slice(0, 17), slice(2, 9))
    out, reg, leaves = model.boxes([box], tv=1.0)
    axes = [torch.arange(s.start, s.stop, dtype=torch.float32) for s in box]
    idx = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)
    with torch.no_grad():
        torch.testing.assert_close(out[0].reshape(-1, 3), model(idx), atol=1e-5, rtol=1e-4)
    assert len(leaves) == len(model.grids) and float(reg.detach()) > 0.5  # features vary
    for grid in model.grids:
        grid.fill_(0.3)
    assert float(model.boxes([box], tv=1.0)[1].detach()) == 0.0  # constant grids: no variation


def test_node_adam_moves_only_the_nodes_under_the_crops():
    cfg = INRConfig(grid_spacings_mm=(4.0, 1.0), grid_features=2)
    model = GridINR(cfg, (24, 24, 24), (1.0, 1.0, 1.0))
    before = [g.clone() for g in model.grids]
    adam = NodeAdam(model, lr=0.1)
    box = (slice(0, 8), slice(8, 16), slice(16, 24))
    out, _, leaves = model.boxes([box])
    out.square().sum().backward()
    adam.step(leaves)
    fine_before, fine = before[1], model.grids[1]
    changed = (fine != fine_before).any(dim=0)
    assert changed[0:8, 8:16, 16:24].all()
    changed[0:8, 8:16, 16:24] = False
    assert not changed.any()  # nothing else moved
    coarse = (model.grids[0] != before[0]).any(dim=0)
    assert coarse[0:3, 2:5, 4:7].all() and coarse.sum() == 27  # the 3x3x3 nodes under it


@pytest.fixture(scope="module")
def inr_fit(aligned):
    torch.manual_seed(0)
    config = INRConfig(stop="steps", max_steps=300, check_every=60, seed=0)
    return fit_inr(aligned, VOXEL, config)


def _unsupervised_loss(volume: np.ndarray, subject) -> float:
    """Mean INR objective of whole-volume maps over 8 fixed crops."""
    totals = []
    for k in range(8):
        rng = np.random.default_rng(100 + k)
        crop = random_crop(subject, rng, (24, 24, 24), perm=(0, 1, 2), guide_keep=1.0)
        batch = collate([crop])
        maps = torch.from_numpy(volume)[(slice(None), *crop["box"])][None]
        totals.append(float(total_loss(INR_WEIGHTS, maps, batch)[0]))
    return float(np.mean(totals))


def test_inr_loss_decreases_and_beats_the_lr_input_and_cubic(inr_fit, aligned):
    assert len(inr_fit.losses) == 300 and inr_fit.stopped_by == "max_steps"
    pred = render_volume(inr_fit, aligned)
    # the fit starts at the LR input (residual representation): its objective fell
    before = _unsupervised_loss(aligned.lr_up.numpy(), aligned)
    after = _unsupervised_loss(pred, aligned)
    assert after < 0.8 * before, (before, after)
    assert pred.shape == (3, *aligned.hr_shape) and pred.dtype == np.float32
    assert pred[0].min() >= 0 and pred[1:].min() > 0 and pred[1].max() <= 6.0
    outside = ~aligned.mask.numpy()
    np.testing.assert_array_equal(pred[:, outside], aligned.lr_up.numpy()[:, outside])
    lr = _scores(aligned.lr_up.numpy(), aligned)
    cubic = np.stack([upsample_interp(v, aligned.hr_shape, 3) for v in aligned.lr.numpy()])
    spline, inr = _scores(cubic, aligned), _scores(pred, aligned)
    # closer to the truth than the LR input and cubic spline in T1 and T2 (NRMSE and SSIM)
    for m in ("T1", "T2"):
        assert inr[m][0] < min(lr[m][0], spline[m][0]), (m, inr[m], lr[m], spline[m])
        assert inr[m][1] > max(lr[m][1], spline[m][1]) + 0.003, (m, inr[m], lr[m], spline[m])
    summary = inr_fit.summary()
    assert summary["steps"] == 300 and len(summary["mi_curve"]) == 6
    assert summary["config"]["encoding"] == "grid"
    json.dumps(summary)  # provenance-ready


def test_inr_early_stopping_keeps_the_best_check(aligned):
    """With a tolerance no rise can pass, the fit stops at the first check that has
    ``patience`` measurements after the start's and keeps the state of the best check (the
    start included); with a negative one it never stops early."""
    base = INRConfig(
        stop="mi", max_steps=60, min_steps=10, check_every=10, patience=2, crop=(8, 8, 8)
    )
    stopped = fit_inr(aligned, VOXEL, replace(base, tol=10.0))
    assert stopped.stopped_by == "mi_plateau" and stopped.steps == 20
    assert [s for s, _ in stopped.mi_curve] == [0, 10, 20]  # check 0: the start
    assert all(v > 0 for _, v in stopped.mi_curve)
    best = max(stopped.mi_curve, key=lambda c: c[1])[0]
    assert stopped.kept_step == best
    # the kept state is the best check's: the same fit run on records that state's maps
    volumes: list[np.ndarray] = []
    full = fit_inr(
        aligned, VOXEL, replace(base, tol=-2.0), monitor=lambda v: volumes.append(v) or 0.0
    )
    assert full.stopped_by == "max_steps" and full.steps == 60 and len(volumes) == 7
    np.testing.assert_array_equal(render_volume(stopped, aligned), volumes[best // 10])
    # the same seed gives the same fit
    again = fit_inr(aligned, VOXEL, replace(base, tol=10.0))
    assert again.losses == stopped.losses


def test_inr_refines_a_given_base(aligned):
    """init "swig" corrects the given maps: before any learning the render is that base
    (inside the mask; the LR input outside), and without a base the fit refuses."""
    base = aligned.truth.numpy() * 1.1  # any maps other than the LR input
    cfg = INRConfig(init="swig", stop="steps", max_steps=1, learning_rate=0.0)
    fit = fit_inr(aligned, VOXEL, cfg, base=base)
    pred = render_volume(fit, aligned)
    mask = aligned.mask.numpy()
    np.testing.assert_allclose(pred[1:, mask], base[1:, mask], rtol=2e-3)
    np.testing.assert_allclose(pred[0, mask], base[0, mask], atol=2e-2)
    np.testing.assert_array_equal(pred[:, ~mask], aligned.lr_up.numpy()[:, ~mask])
    with pytest.raises(ValueError, match="SWIG prediction"):
        fit_inr(aligned, VOXEL, cfg)


def test_inr_ignores_guides_outside_their_field_of_view(aligned):
    """Where a guide has no data (0 after resampling: outside its field of view) the guide
    term leaves the maps alone instead of pulling PD towards 0."""
    raw = aligned.raw_guides.clone()
    x = aligned.hr_shape[0] // 2
    raw[0, x:] = 0.0  # the T1w saw only half the brain
    blind = replace(aligned, raw_guides=raw)
    fit = fit_inr(blind, VOXEL, INRConfig(stop="steps", max_steps=120, check_every=60))
    pred, lr_up = render_volume(fit, blind), aligned.lr_up.numpy()
    half = aligned.mask.numpy().copy()
    half[:x] = False
    ratio = pred[0][half].mean() / lr_up[0][half].mean()
    assert 0.95 < ratio < 1.05, ratio


def test_inr_anchor_keeps_the_fit_near_its_base(aligned):
    """The proximal term holds the correction to the base down: the same fit moves T1 much
    less with a strong anchor than without, and the defaults anchor only over SWIG."""
    base = aligned.lr_up.numpy() * np.array([1.0, 1.1, 0.9], np.float32)[:, None, None, None]
    m = aligned.mask.numpy()

    def correction(anchor: float) -> float:
        cfg = INRConfig(init="swig", anchor=anchor, stop="steps", max_steps=60, check_every=60)
        pred = render_volume(fit_inr(aligned, VOXEL, cfg, base=base), aligned)
        return float(np.abs(np.log(pred[1][m] / base[1][m])).mean())

    free, held = correction(0.0), correction(20.0)
    assert free > 0.01, free  # the physics terms move the maps off a base 10 % off in T1
    assert held < 0.3 * free, (held, free)
    assert INRConfig(init="swig").resolved().anchor == SWIG_ANCHOR > 0
    assert INRConfig().resolved().anchor == 0.0  # over the LR maps: no anchor, as before
    assert replace(INRConfig(), init="swig").resolved().anchor == SWIG_ANCHOR  # re-derived
    with pytest.raises(ValueError, match="anchor"):
        INRConfig(anchor=-1.0)


@pytest.mark.parametrize(("activation", "varies"), [("relu", False), ("leaky_relu", True)])
def test_inr_heads_cannot_die(aligned, monkeypatch, activation, varies):
    """Heads whose hidden units all start below zero (as the ReLU heads ended in a failed
    held-out fit): with ReLU no gradient reaches the grids and the T1 correction stays one
    constant; with the default leaky ReLU the fit still learns detail."""
    from swigapp.models import inr as inr_mod

    build = inr_mod.build_representation

    def dead_heads(config, shape, voxel):
        model = build(config, shape, voxel)
        with torch.no_grad():
            for head in model.heads:
                head[0].bias.fill_(-1.0)
            trunk = model.trunk(torch.zeros(1, model.trunk[0].in_features))  # features ~0
            assert (head[0](trunk) < 0).all()
        return model

    monkeypatch.setattr(inr_mod, "build_representation", dead_heads)
    cfg = INRConfig(activation=activation, stop="steps", max_steps=30, check_every=30)
    pred = render_volume(fit_inr(aligned, VOXEL, cfg), aligned)
    m = aligned.mask.numpy()
    change = np.log(pred[1][m] / aligned.lr_up.numpy()[1][m])  # the T1 correction
    assert (float(change.std()) > 1e-3) is varies, float(change.std())
    assert INRConfig().activation == INRConfig(init="swig").activation == "leaky_relu"


def test_fourier_encoding_still_fits(aligned):
    """The paper's Fourier-feature MLP, kept for comparison, runs through the same loop."""
    cfg = INRConfig.fourier(stop="steps", max_steps=20, check_every=10, crop=(8, 8, 8))
    fit = fit_inr(aligned, VOXEL, cfg)
    assert fit.summary()["config"]["encoding"] == "fourier" and len(fit.losses) == 20
    pred = render_volume(fit, aligned)
    assert np.isfinite(pred).all() and not np.array_equal(pred, aligned.lr_up.numpy())


# -------------------------------------------------------------------------- wmri2q


def test_unet_shapes_and_ranges():
    torch.manual_seed(0)
    net = build_network(NetConfig(width=8, blocks=2, use_lr=False, arch="unet"))
    assert isinstance(net, WmriUNet)
    guides = torch.rand(2, 4, 21, 30, 5)  # sizes not divisible by 4: padded inside
    out = net(None, guides, None, torch.tensor([[1.0, 1, 0, 0], [1, 0, 1, 0]]))
    assert out.shape == (2, 3, 21, 30, 5)
    assert out[:, 0].min() >= 0 and out[:, 1:].min() > 0
    with pytest.raises(ValueError, match="use_lr=False"):
        WmriUNet(NetConfig(arch="unet", use_lr=True))
    with pytest.raises(ValueError, match="unknown network architecture"):
        build_network(NetConfig(arch="mlp"))


@pytest.mark.parametrize("edge", [0.0, 0.5], ids=["supervised-only", "hybrid"])
def test_unet_low_resolution_label_loss_decreases(aligned, edge):
    """The wmri2q objective (L1 to the LR labels, plus the Sobel edge term for the hybrid)
    falls when the U-Net is fitted to one batch."""
    torch.manual_seed(0)
    net = build_network(NetConfig(width=8, blocks=2, use_lr=False, arch="unet"))
    weights = LossWeights(guide=0.0, lr=0.0, supervised=0.0, edge=edge, lowres=1.0)
    rng = np.random.default_rng(0)
    batch = collate([random_crop(aligned, rng, (32, 32, 8), guide_keep=1.0) for _ in range(2)])
    batch["truth"] = None
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    history = []
    for _ in range(40):
        maps = net(batch["lr_up"], batch["guides"], batch["synth"], batch["present"])
        loss, parts = total_loss(weights, maps, batch)
        assert set(parts) == ({"lowres", "edge"} if edge else {"lowres"})
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history.append(float(loss.detach()))
    assert np.mean(history[-5:]) < 0.6 * np.mean(history[:5])


def test_shipped_wmri2q_weights(aligned):
    """Both shipped U-Nets load after their hash check; from the weighted images alone they
    beat the LR input on PD SSIM (the hybrid also on T1 SSIM), and the edge term of the
    hybrid gives sharper T1 and T2 maps than supervised-only (lower HFEN, as in Qiu et al.)."""
    from swigapp.models.shipped import weights_dir

    truth, mask = aligned.truth.numpy(), aligned.mask.numpy()
    lr = _scores(aligned.lr_up.numpy(), aligned)
    preds, scores = {}, {}
    for name in ("wmri2q_supervised", "wmri2q_hybrid"):
        card = model_card(name)
        assert card["architecture"]["arch"] == "unet" and not card["architecture"]["use_lr"]
        assert card["training"]["weights"]["lowres"] > 0
        assert card["training"]["weights"]["guide"] == card["training"]["weights"]["lr"] == 0
        assert (card["training"]["weights"]["edge"] > 0) == (name == "wmri2q_hybrid")
        assert sha256(weights_dir() / f"{name}.pt") == card["sha256"]
        model = load_shipped(name)
        assert isinstance(model, WmriUNet)
        preds[name] = predict_volume(model, aligned)
        assert np.isfinite(preds[name]).all() and preds[name][1:].min() > 0
        scores[name] = _scores(preds[name], aligned)
        assert scores[name]["PD"][1] > lr["PD"][1], (name, scores[name], lr)
    assert scores["wmri2q_hybrid"]["T1"][1] > lr["T1"][1]
    for i, m in ((1, "T1"), (2, "T2")):
        hfen = {n: metrics.hfen(p[i], truth[i], mask=mask) for n, p in preds.items()}
        assert hfen["wmri2q_hybrid"] < hfen["wmri2q_supervised"], (m, hfen)


# ------------------------------------------------------------------------------ CLI


def _run(bids, out, *extra):
    return cli.main([str(bids), str(out), "participant", "--skip-bids-validation",
                     "--participant-label", "01", "-w", str(out.parent / "work"),
                     "--nprocs", "2", "--omp-nthreads", "2", *extra])  # fmt: skip


@pytest.mark.parametrize(
    "extra",
    [
        ("--method", "inr", "--inr-max-steps", "60"),
        ("--method", "inr", "--inr-max-steps", "60", "--inr-init", "swig"),
        ("--method", "wmri2q", "--single-orientation"),
    ],
)
def test_participant_level_with_method(tiny_dataset, tmp_path, extra):
    method = extra[1]
    out = tmp_path / "out"
    assert _run(tiny_dataset, out, *extra) == 0
    anat = out / "sub-01" / "anat"
    for suffix in ("PDmap", "T1map", "T2map"):
        image = anat / f"sub-01_res-hi_desc-{method}_{suffix}.nii.gz"
        assert image.is_file(), image
        assert not (anat / f"sub-01_res-hi_desc-swig_{suffix}.nii.gz").exists()
    t1 = np.asarray(nib.load(anat / f"sub-01_res-hi_desc-{method}_T1map.nii.gz").dataobj)
    assert 0.6 < float(np.median(t1[t1 > 0.1])) < 2.5  # brain T1 in seconds
    sidecar = json.loads((anat / f"sub-01_res-hi_desc-{method}_T1map.json").read_text())
    assert sidecar["Method"] == method
    if method == "inr":
        swig_init = "swig" in extra
        assert (sidecar["Model"] or {}).get("name") == ("swig_default" if swig_init else None)
        assert sidecar["INRFit"]["config"]["init"] == ("swig" if swig_init else "lr")
        # over SWIG the proximal term holds the fit near it, recorded and described
        assert sidecar["INRFit"]["config"]["anchor"] == (SWIG_ANCHOR if swig_init else 0.0)
        html = (out / "sub-01.html").read_text()
        assert (f"L1 proximal term weighted {SWIG_ANCHOR:g}" in html) == swig_init
        assert sidecar["INRFit"]["steps"] <= 60
        assert sidecar["INRFit"]["stopped_by"] in ("mi_plateau", "max_steps")
        assert sidecar["INRFit"]["config"]["max_steps"] == 60
        assert "implicit neural representation" in sidecar["EstimationAlgorithm"]
        assert ("SliceAxes" in sidecar) == swig_init  # the SWIG base ran its ensemble
    else:
        assert sidecar["Model"]["name"] == "wmri2q_hybrid"
        assert sidecar["Model"]["sha256"] == model_card("wmri2q_hybrid")["sha256"]
        assert "U-Net" in sidecar["EstimationAlgorithm"]
        assert sidecar["SliceAxes"] == [1]  # --single-orientation: the last 1 mm axis only
    qc = json.loads((out / "sub-01" / "log" / "sub-01_qc.json").read_text())
    assert qc["Method"] == method
    assert f"<td>{method}</td>" in (out / "sub-01.html").read_text()
    # against the phantom's truth, beside the zero-filled LR input the method started from
    truth_dir = tiny_dataset / "derivatives" / TRUTH_PIPELINE / "sub-01" / "anat"
    mask = np.asarray(nib.load(truth_dir / "sub-01_desc-brain_mask.nii.gz").dataobj) > 0.5
    lr_up = nib.load(out.parent / "work" / "swigapp_wf" / "single_subject_01_wf"
                     / "conform_maps" / "lr_up_maps.nii.gz").get_fdata()  # fmt: skip
    scores = {}
    for i, (m, suffix) in enumerate(zip(MAP_ORDER, ("PDmap", "T1map", "T2map"), strict=True)):
        truth = np.asarray(nib.load(truth_dir / f"sub-01_desc-truth_{suffix}.nii.gz").dataobj)
        sr = np.asarray(nib.load(anat / f"sub-01_res-hi_desc-{method}_{suffix}.nii.gz").dataobj)
        rng = metrics.DATA_RANGE[m]
        scores[m] = (
            metrics.ssim(sr, truth, rng, mask=mask),
            metrics.ssim(lr_up[..., i], truth, rng, mask=mask),
            metrics.nrmse(sr, truth, mask=mask),
            metrics.nrmse(lr_up[..., i], truth, mask=mask),
        )
    ssim_gain = {m: s[0] - s[1] for m, s in scores.items()}
    if method == "wmri2q":
        # maps from the guides alone: sharper PD and T1 than the LR input (T2 values are
        # its weak side, README), measured here as SSIM to the truth. Where its T1 departs
        # from the LR data by more than 10 %, the guard's local fallback returns it to the
        # interpolated LR map (T1 gain 0.023 with it, above 0.03 without)
        assert ssim_gain["PD"] > 0.05 and ssim_gain["T1"] > 0.015, scores
    else:
        # 60 steps of the grid INR already sharpen T1 and T2 beyond the LR input (T1 SSIM
        # +0.04, T2 +0.025 when this was written) and lower their NRMSE
        for m in ("T1", "T2"):
            assert ssim_gain[m] > 0.01 and scores[m][2] < scores[m][3], (m, scores)
        # PD is the INR's weak side: it takes up the guides' noise (worse than the LR input
        # on every held-out setting, docs/methods.md; here SSIM -0.068, NRMSE +3 % with the
        # leaky ReLU, about 0 with ReLU): bounded, to catch a collapse
        assert ssim_gain["PD"] > -0.1 and scores["PD"][2] < 1.1 * scores["PD"][3], scores


def _expect_error(capsys, bids, out, needle, *extra):
    assert _run(bids, out, *extra) == 3
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert needle in line, line
    assert not out.exists() or not any(out.iterdir())


def test_method_option_errors(tiny_dataset, tmp_path, capsys):
    from swigapp.models.shipped import weights_dir

    out = tmp_path / "out"
    _expect_error(capsys, tiny_dataset, out, "--adapt-steps: only for --method swig, not inr",
                  "--method", "inr", "--adapt-steps", "5")  # fmt: skip
    swig = weights_dir() / "swig_default.pt"
    _expect_error(capsys, tiny_dataset, out, "does not apply to --method inr", "--method",
                  "inr", "--model", str(swig))  # fmt: skip
    _expect_error(capsys, tiny_dataset, out, "--inr-init, --inr-stop: only for --method inr",
                  "--inr-init", "swig", "--inr-stop", "steps")  # fmt: skip
    _expect_error(capsys, tiny_dataset, out, "needs a unet", "--method", "wmri2q",
                  "--model", str(swig))  # fmt: skip


def test_model_option_takes_a_shipped_name(tmp_path, monkeypatch):
    """--model NAME selects shipped weights by name (hash checked); a file of that name in the
    working directory wins; the architecture must still suit the method."""
    from pathlib import Path

    from swigapp.cli.run import InputError, check_model
    from swigapp.cli.train import init_weights
    from swigapp.methods.network import load_network
    from swigapp.models.shipped import shipped_name

    assert check_model(Path("swig_stage4"), "swig") == "swig_stage4"
    assert init_weights("swig_stage4")["sha256"] == model_card("swig_stage4")["sha256"]
    model, record = load_network("swig", "swig_stage4")
    assert record["name"] == "swig_stage4"
    assert record["sha256"] == model_card("swig_stage4")["sha256"] != model_card()["sha256"]
    default = load_shipped()
    assert model.config == default.config
    pairs = zip(model.parameters(), default.parameters(), strict=True)
    assert any(not torch.equal(p, q) for p, q in pairs)
    with pytest.raises(InputError, match="needs a resnet"):
        check_model(Path("wmri2q_hybrid"), "swig")
    with pytest.raises(InputError, match="not found"):
        check_model(Path("no_such_model"), "swig")
    monkeypatch.chdir(tmp_path)
    Path("swig_stage4").write_bytes(b"not a model")
    with pytest.raises(InputError, match="cannot load the model"):
        check_model(Path("swig_stage4"), "swig")
    # the same precedence everywhere: swigapp-train --init takes the local file too
    assert shipped_name("swig_stage4") is None and shipped_name("swig_default") == "swig_default"
    assert init_weights("swig_stage4")["path"] == "swig_stage4"


def test_crops_and_inr_on_a_fractional_grid():
    """LR 1.5 mm in-plane and 2 mm through-plane onto 1 mm: crops line up with the LR grid in
    units of 3 HR / 2 LR voxels, and the INR fits (as on real data with such voxel sizes)."""
    from swigapp.models.crops import crop_units
    from swigapp.physics.protocol import DEFAULT_PROTOCOLS

    assert crop_units((30, 30, 20), (20, 20, 10)) == [(3, 2), (3, 2), (2, 1)]
    # units that would span most of an axis are approximated (band off by < 1 %)
    assert crop_units((197, 122, 40), (98, 81, 10)) == [(2, 1), (3, 2), (4, 1)]
    rng = np.random.default_rng(0)
    lr = {"PD": rng.uniform(0.6, 0.9, (20, 20, 10)), "T1": rng.uniform(0.8, 1.6, (20, 20, 10)),
          "T2": rng.uniform(0.06, 0.12, (20, 20, 10))}  # fmt: skip
    mask = np.zeros((30, 30, 20), bool)
    mask[3:27, 3:27, 2:18] = True
    guides = {"T1w": rng.uniform(0.5, 1.0, (30, 30, 20)).astype(np.float32)}
    subject = prepare_subject(lr, guides, {"T1w": DEFAULT_PROTOCOLS["T1w"]}, mask)
    crop = random_crop(subject, rng, (13, 13, 7), perm=(0, 1, 2))
    assert crop["lr_up"].shape == (3, 12, 12, 6) and crop["lr"].shape == (3, 8, 8, 3)
    assert all(s.start % p == 0 for s, p in zip(crop["box"], (3, 3, 2), strict=True))
    config = INRConfig(max_steps=3, min_steps=3, check_every=1, crop=(12, 12, 6), crops_per_step=2)
    fit = fit_inr(subject, (1.0, 1.0, 1.0), config)
    assert fit.steps == 3 and np.isfinite(fit.losses).all()


def test_each_method_owns_its_command_line_options():
    """Each method declares its options in its module (a dataclass whose fields carry the
    flags); the parser gets them from there, the command line refuses them for any other
    method naming the owner, and they travel as one record (no method name compared in the
    CLI, no option named in the workflow)."""
    from dataclasses import fields

    from swigapp.cli.parser import build_parser
    from swigapp.methods import METHODS, foreign_options, options_class

    assert foreign_options("swig", {"adapt_steps": 5}) is None
    assert foreign_options("inr", {"adapt_steps": 0, "inr_init": "lr"}) is None  # defaults
    assert foreign_options("inr", {"adapt_steps": "auto"}) == (
        "--adapt-steps: only for --method swig, not inr"
    )
    msg = foreign_options("wmri2q", {"inr_stop": "mi", "inr_max_steps": 50})
    assert msg == "--inr-max-steps, --inr-stop: only for --method inr, not wmri2q"
    declared = {f.metadata["flag"]: m for m in METHODS for f in fields(options_class(m))}
    assert declared == {"--adapt-steps": "swig", "--inr-max-steps": "inr", "--inr-init": "inr",
                        "--inr-stop": "inr"}  # fmt: skip
    parser = build_parser()
    flags = {s for a in parser._actions for s in a.option_strings}
    assert set(declared) <= flags
    args = parser.parse_args(["/b", "/o", "participant", "--method", "inr", "--inr-init",
                              "swig", "--inr-max-steps", "40"])  # fmt: skip
    options = method_options(args.method, vars(args))
    assert options.to_record() == {"inr_max_steps": 40, "inr_init": "swig", "inr_stop": "auto"}
    assert options.adaptation == 0 and options.fallback("inr") == "swig"
    swig = method_options("swig", vars(parser.parse_args(["/b", "/o", "participant",
                                                           "--adapt-steps", "auto"])))  # fmt: skip
    assert swig.to_record() == {"adapt_steps": "auto"} and swig.adaptation == "auto"
    assert swig.with_adaptation(30).to_record() == {"adapt_steps": 30}
    with pytest.raises(SystemExit):
        parser.parse_args(["/b", "/o", "participant", "--adapt-steps", "-3"])


def test_no_method_name_is_compared_outside_the_methods_package():
    """Adding a method touches its module and the registry only: no code outside
    swigapp/methods/ compares a method against a method's name (the CLI's option checks and
    the methods text used to), nor names one as a default (``DEFAULT_METHOD``), nor names
    a method's option (they travel as the method's record)."""
    import ast
    from dataclasses import fields
    from pathlib import Path

    from swigapp.methods import METHODS, options_class

    options = {f.name for m in METHODS for f in fields(options_class(m))}
    root = Path(__file__).resolve().parents[1]
    found = []
    for path in [*(root / "swigapp").rglob("*.py"), *(root / "workflows").rglob("*.py")]:
        if "methods" in path.relative_to(root).parts[:2]:
            continue
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            names = [s.value for s in sides if isinstance(s, ast.Constant) and s.value in METHODS]
            other = " ".join(ast.get_source_segment(source, s) or "" for s in sides)
            if names and "method" in other:
                found.append(f"{path.relative_to(root)}:{node.lineno}")
        for node in ast.walk(ast.parse(source)):
            named = []
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                named = [(node.target.id, node.value)]
            elif isinstance(node, ast.keyword):
                named = [(node.arg, node.value)]
            elif isinstance(node, ast.arguments):
                args = node.args[len(node.args) - len(node.defaults) :]
                named = [(a.arg, d) for a, d in zip(args, node.defaults, strict=True)]
            for name, value in named:
                if name and "method" in name and isinstance(value, ast.Constant):
                    if value.value in METHODS:
                        found.append(f"{path.relative_to(root)}:{node.lineno} default")
            if isinstance(node, ast.Attribute) and node.attr in options:
                found.append(f"{path.relative_to(root)}:{node.lineno} .{node.attr}")
    assert not found, found
