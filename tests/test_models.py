"""SWIG model pieces on tiny phantoms: inputs, network, losses, training, adaptation."""

import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import ndimage

from swigapp.models import train as train_mod
from swigapp.models.crops import random_crop
from swigapp.models.data import phantom_pool, sample_batch
from swigapp.models.features import (
    GUIDE_ORDER,
    T1_MAX,
    T2_MAX,
    T_FLOOR,
    decode,
    encode,
    prepare_subject,
)
from swigapp.models.inference import (
    AdaptConfig,
    adapt,
    predict_ensemble,
    predict_volume,
    slice_axes,
)
from swigapp.models.losses import (
    LR_SCALES,
    LossWeights,
    edge_loss,
    guide_loss,
    lr_loss,
    supervised_beyond_band_loss,
    supervised_linear_loss,
    supervised_loss,
    total_loss,
)
from swigapp.models.network import (
    NetConfig,
    SwigNet,
    build_network,
    stack_slices,
    widen_context,
)
from swigapp.models.train import TrainConfig, load_model, sha256, train
from swigapp.operators import kspace
from swigapp.operators.acquisition import KSpace3D
from swigapp.phantom.subject import PhantomConfig

torch.set_num_threads(2)
TINY = PhantomConfig(size="tiny", guides=("T1w", "T2w", "FLAIR"))


@pytest.fixture(scope="module")
def tiny_subject():
    """A tiny subject whose guides are aligned with the maps (as after registration)."""
    from swigapp.phantom.subject import make_subject

    config = PhantomConfig(size="tiny", max_rotation_deg=0.0, max_translation_mm=0.0)
    return make_subject(0, seed=21, config=config)


@pytest.fixture(scope="module")
def tiny_tensors(tiny_subject):
    s = tiny_subject
    return prepare_subject(
        s.lr_maps, s.guides, s.protocols, s.truth.brain_mask, truth=s.truth.as_dict()
    )


def map_error(pred, truth, mask):
    """Mean relative error of T1 and T2 and absolute PD error inside the mask."""
    m = mask.astype(bool)
    return {
        "PD": float(np.abs(pred[0][m] - truth[0][m]).mean()),
        "T1": float((np.abs(pred[1][m] - truth[1][m]) / truth[1][m]).mean()),
        "T2": float((np.abs(pred[2][m] - truth[2][m]) / truth[2][m]).mean()),
    }


def test_prepare_subject_channels(tiny_tensors, tiny_subject):
    t = tiny_tensors
    assert t.lr_up.shape == (3, 76, 92, 40) and t.lr.shape == (3, 38, 46, 20)
    assert t.guides.shape == (len(GUIDE_ORDER), 76, 92, 40)
    assert t.present.tolist() == [1.0, 1.0, 1.0, 0.0]  # no PDw in this subject
    assert t.factors == (2.0, 2.0, 2.0)
    m = t.mask.numpy()
    # guides normalised to a brain median of 1, synthesised LR contrast likewise
    for g in range(3):
        assert np.median(t.guides[g].numpy()[m]) == pytest.approx(1.0, rel=1e-5)
        assert np.median(t.synth[g].numpy()[m]) == pytest.approx(1.0, rel=1e-5)
    # zero-filled upsampling of the LR maps, clipped to physical ranges
    up = kspace.upsample(tiny_subject.lr_maps["T1"].astype(np.float64), t.hr_shape)
    np.testing.assert_allclose(t.lr_up[1].numpy()[m], np.clip(up[m], 0.02, 6.0), rtol=1e-5)
    only_t1 = t.with_guides(["T1w"])
    assert only_t1.present.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert only_t1.guides[1].abs().max() == 0 and only_t1.protocols[1] is None


def test_encode_decode_roundtrip_and_ranges():
    maps = torch.tensor([[0.7, 0.83, 0.08], [0.8, 1.33, 0.11], [1.0, 4.0, 1.5]]).T[None, :, :]
    back = decode(encode(maps))
    torch.testing.assert_close(back, maps, rtol=2e-3, atol=1e-3)
    wild = decode(torch.randn(2, 3, 50) * 20)
    assert (wild[:, 0] >= 0).all() and (wild[:, 1] > 0).all() and (wild[:, 2] > 0).all()
    assert (wild[:, 1] <= 6.0).all() and (wild[:, 2] <= 4.0).all()


def test_stack_slices_gathers_neighbours():
    vol = torch.arange(2 * 1 * 2 * 2 * 4, dtype=torch.float32).reshape(2, 1, 2, 2, 4)
    out = stack_slices(vol, 1)
    assert out.shape == (8, 3, 2, 2)
    # sample 0, slice 2: channels are slices 1, 2, 3; slice 0 repeats itself at the edge
    torch.testing.assert_close(out[2], vol[0, 0].permute(2, 0, 1)[1:4])
    torch.testing.assert_close(out[0, 0], vol[0, 0, ..., 0])
    assert stack_slices(vol, 0).shape == (8, 1, 2, 2)


def _random_net(width: int) -> SwigNet:
    """A SwigNet of 2 blocks whose output departs from its LR input (seeded)."""
    torch.manual_seed(0)
    model = SwigNet(NetConfig(width=width, blocks=2))
    torch.nn.init.normal_(model.tail.weight, std=0.05)
    return model


def test_untrained_network_returns_its_lr_input(tiny_tensors):
    model = SwigNet(NetConfig(width=8, blocks=1))
    pred = predict_volume(model, tiny_tensors, chunk=8)
    m = tiny_tensors.mask.numpy()
    lr_up = tiny_tensors.lr_up.numpy()
    np.testing.assert_allclose(pred[1][m], lr_up[1][m], rtol=1e-2)
    np.testing.assert_array_equal(pred[:, ~m], lr_up[:, ~m])  # LR input outside the mask


def test_chunked_inference_matches_one_pass(tiny_tensors):
    model = _random_net(width=8)
    one = predict_volume(model, tiny_tensors, slice_axis=2, chunk=64)
    chunked = predict_volume(model, tiny_tensors, slice_axis=2, chunk=5)
    np.testing.assert_allclose(chunked, one, rtol=1e-4, atol=1e-5)
    sagittal = predict_volume(model, tiny_tensors, slice_axis=0, chunk=7)
    assert sagittal.shape == one.shape and np.isfinite(sagittal).all()


@torch.inference_mode()
def test_cropped_chunks_predict_what_the_whole_volume_does(tiny_tensors):
    # inference crops each chunk to its brain plus the receptive radius, computes only the
    # chunk's slices and runs two slices at a time: inside the brain the maps must be those
    # of one call on the whole, uncropped volume
    model = _random_net(width=8)
    t = tiny_tensors
    whole = model(t.lr_up[None], t.guides[None], t.synth[None], t.present[None])[0].numpy()
    m = t.mask.numpy()
    assert m.any(axis=2).sum() < 0.8 * m.shape[0] * m.shape[1]  # the crops do cut
    chunked = predict_volume(model, t, slice_axis=2, chunk=6)
    np.testing.assert_allclose(chunked[:, m], whole[:, m], rtol=1e-5, atol=1e-6)
    assert not np.allclose(whole[:, m], t.lr_up.numpy()[:, m], rtol=1e-3)  # it did something


@torch.inference_mode()
def test_halo_is_the_receptive_radius(tiny_tensors):
    model = _random_net(width=4)
    t = tiny_tensors
    args = (t.lr_up[None], t.guides[None], t.synth[None], t.present[None])
    base = model(*args)[0]
    x0, y0, z0 = 38, 46, 20
    for distance, changes in ((model.halo, True), (model.halo + 1, False)):
        guides = t.guides.clone()
        guides[:, x0 + distance, y0, z0] += 5.0
        moved = model(args[0], guides[None], *args[2:])[0]
        assert bool((moved[:, x0, y0, z0] != base[:, x0, y0, z0]).any()) is changes


def test_network_options_keep_and_batch_change_nothing_but_speed(tiny_tensors):
    torch.manual_seed(0)
    t = tiny_tensors
    args = (t.lr_up[None, ..., 4:14], t.guides[None, ..., 4:14], t.synth[None, ..., 4:14])
    for config in (NetConfig(width=8, blocks=2), NetConfig(width=4, blocks=2, arch="unet",
                                                            use_lr=False)):  # fmt: skip
        model = build_network(config).eval()
        with torch.inference_mode():
            full = model(*args, t.present[None])
            part = model(*args, t.present[None], keep=slice(3, 8), batch=2)
        assert part.shape == (1, 3, *t.mask.shape[:2], 5)
        np.testing.assert_allclose(part.numpy(), full[..., 3:8].numpy(), rtol=1e-5, atol=1e-6)


def test_orientation_ensemble_averages_the_slice_axes(tiny_tensors):
    model = _random_net(width=8)
    assert slice_axes(tiny_tensors) == (0, 1, 2)  # 2 mm iso: every axis
    assert slice_axes(SimpleNamespace(factors=(1.0, 1.0, 4.0))) == (0, 1)
    assert slice_axes(SimpleNamespace(factors=(197 / 98, 233 / 116, 189 / 94))) == (0, 1, 2)
    single = {a: predict_volume(model, tiny_tensors, slice_axis=a) for a in range(3)}
    assert not np.allclose(single[0], single[2], atol=1e-3)  # the orientations differ
    both = predict_volume(model, tiny_tensors, slice_axis=(0, 2))
    m = tiny_tensors.mask.numpy()
    t1 = np.exp((np.log(single[0][1]) + np.log(single[2][1])) / 2)  # geometric mean of T1
    np.testing.assert_allclose(both[1][m], t1[m], rtol=1e-4)
    pd = (single[0][0] + single[2][0]) / 2
    np.testing.assert_allclose(both[0][m], pd[m], rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(both[:, ~m], tiny_tensors.lr_up.numpy()[:, ~m])
    default = predict_volume(model, tiny_tensors)
    np.testing.assert_allclose(
        default, predict_volume(model, tiny_tensors, slice_axis=(0, 1, 2)), rtol=1e-6
    )


def test_ensemble_spread_is_the_sd_of_the_orientations_in_map_units(tiny_tensors):
    model = _random_net(width=8)
    single = [predict_volume(model, tiny_tensors, slice_axis=a) for a in range(3)]
    maps, spread = predict_ensemble(model, tiny_tensors)
    np.testing.assert_array_equal(maps, predict_volume(model, tiny_tensors))
    m = tiny_tensors.mask.numpy()
    pd_sd = np.std(np.stack([s[0] for s in single]), axis=0)
    np.testing.assert_allclose(spread[0][m], pd_sd[m], rtol=1e-3, atol=1e-5)
    for i, top in ((1, T1_MAX), (2, T2_MAX)):  # SD of ln T times T (s), T as encoded
        log_sd = np.std(np.log(np.clip(np.stack([s[i] for s in single]), T_FLOOR, top)), axis=0)
        np.testing.assert_allclose(spread[i][m], (log_sd * maps[i])[m], rtol=1e-3, atol=1e-6)
    assert spread[1][m].max() > 0 and (spread[:, ~m] == 0).all()
    assert predict_ensemble(model, tiny_tensors, slice_axis=2)[1] is None


def test_guide_loss_is_scale_invariant_and_prefers_truth(tiny_tensors):
    rng = np.random.default_rng(0)
    crop = random_crop(tiny_tensors, rng, (32, 32, 8), perm=(0, 1, 2), guide_keep=1.0)
    truth, mask, protocols = crop["truth"][None], crop["mask"][None], [crop["protocols"]]
    guides = crop["raw_guides"][None]
    at_truth = guide_loss(truth, guides, protocols, mask)
    scaled = guide_loss(truth, guides * 7.3, protocols, mask)
    assert float(scaled) == pytest.approx(float(at_truth), rel=1e-5)
    blurred = crop["lr_up"][None]
    worse = truth.clone()
    worse[:, 1] *= 1.3  # T1 30 % too long
    assert float(guide_loss(blurred, guides, protocols, mask)) > float(at_truth)
    assert float(guide_loss(worse, guides, protocols, mask)) > 1.2 * float(at_truth)
    assert float(edge_loss(truth, guides, protocols, mask)) < float(
        edge_loss(blurred, guides, protocols, mask)
    )


def test_lr_loss_sees_only_the_acquired_band():
    rng = np.random.default_rng(1)
    hr = torch.from_numpy(rng.random((1, 3, 16, 16, 8)) + 0.5)
    lr = kspace.downsample(hr, (8, 8, 4))
    lr_up = kspace.upsample(lr, (16, 16, 8))
    mask = torch.ones((1, 16, 16, 8), dtype=torch.bool)
    acq = KSpace3D((16, 16, 8), (8, 8, 4))
    # the truth and the band-limited LR input agree with the LR data exactly
    assert float(lr_loss(hr, lr_up, lr, mask, acq)) < 1e-20
    assert float(lr_loss(lr_up, lr_up, lr, mask, acq)) < 1e-20
    # detail above the LR band is invisible to it; a change inside the band is not
    detail = hr - lr_up
    assert float(detail.abs().mean()) > 0.1
    assert float(lr_loss(lr_up + 2 * detail, lr_up, lr, mask, acq)) < 1e-20
    assert float(lr_loss(hr * 1.1, lr_up, lr, mask, acq)) > 1e-3
    # outside the mask the LR input stands in, so a wrong background does not count
    mask[..., :4] = False
    wrong = hr.clone()
    wrong[..., :4] = 99.0
    worse = float(lr_loss(hr * 1.1, lr_up, lr, mask, acq))
    assert float(lr_loss(wrong, lr_up, lr, mask, acq)) < worse


def test_supervised_loss_relative():
    truth = torch.tensor([[[0.7, 0.8], [1.0, 2.0], [0.1, 1.0]]])[..., None, None]  # (1,3,2,1,1)
    mask = torch.ones((1, 2, 1, 1), dtype=torch.bool)
    assert float(supervised_loss(truth, truth, mask)) == 0.0
    pred = truth.clone()
    pred[:, 1] *= np.e  # ln error of exactly 1 on T1 -> mean over 3 maps = 1/3
    assert float(supervised_loss(pred, truth, mask)) == pytest.approx(1 / 3, rel=1e-5)


def test_supervised_linear_loss_weighs_long_t1():
    # two voxels, GM-like (T1 1.4 s) and CSF-like (T1 4 s), each with a 10 % T1 error
    truth = torch.tensor([[[0.8, 1.0], [1.4, 4.0], [0.08, 2.0]]])[..., None, None]
    mask = torch.ones((1, 2, 1, 1), dtype=torch.bool)
    pred = truth.clone()
    pred[:, 1] *= 1.1
    # absolute errors 0.14 s and 0.4 s, over the T1 scale 1.3 s, averaged over 2 voxels x 3 maps
    expected = (0.14 + 0.4) / LR_SCALES[1] / 6
    assert float(supervised_linear_loss(pred, truth, mask)) == pytest.approx(expected, rel=1e-5)
    # the log-domain term sees both errors alike
    assert float(supervised_loss(pred, truth, mask)) == pytest.approx(2 * np.log(1.1) / 6, rel=1e-5)
    batch = {"mask": mask, "truth": truth}
    _, parts = total_loss(LossWeights(guide=0, lr=0, supervised=0, linear=1), pred, batch)
    assert set(parts) == {"linear"}
    _, parts = total_loss(LossWeights(guide=0, lr=0, linear=1), pred, {**batch, "truth": None})
    assert parts == {}  # no HR truth: no supervised terms


def test_supervised_beyond_band_loss_sees_only_detail_outside_the_lr_band():
    rng = np.random.default_rng(5)
    truth = torch.tensor(rng.uniform(0.5, 2.0, (1, 3, 8, 8, 6)), dtype=torch.float32)
    mask = torch.ones((1, 8, 8, 6), dtype=torch.bool)
    small = (4, 4, 3)
    noise = torch.tensor(rng.normal(0.0, 0.05, truth.shape), dtype=torch.float32)
    in_band = kspace.upsample(kspace.downsample(noise, small), truth.shape[2:])
    # errors (in the network domain) confined to the LR band: nothing to pay
    pred = decode(encode(truth) + in_band)
    assert float(supervised_beyond_band_loss(pred, truth, mask, small)) < 1e-6
    assert float(supervised_loss(pred, truth, mask)) > 0.01
    # errors wholly outside the band: the same as the plain supervised term
    pred = decode(encode(truth) + noise - in_band)
    beyond = float(supervised_beyond_band_loss(pred, truth, mask, small))
    assert beyond == pytest.approx(float(supervised_loss(pred, truth, mask)), rel=1e-4)
    batch = {"mask": mask, "truth": truth, "lr": torch.zeros((1, 3, *small))}
    _, parts = total_loss(LossWeights(guide=0, lr=0, supervised=0, beyond=1), pred, batch)
    assert set(parts) == {"beyond"} and parts["beyond"] == pytest.approx(beyond, rel=1e-5)
    _, parts = total_loss(LossWeights(guide=0, lr=0, beyond=1), pred, {**batch, "truth": None})
    assert parts == {}  # no HR truth: no supervised terms


def _eval_loss(model, subject):
    """Mean loss terms on 4 fixed crops (not used for training)."""
    weights = LossWeights()
    out = []
    with torch.no_grad():
        for i in range(4):
            b = sample_batch([subject], np.random.default_rng([99, i]), 2, (32, 32, 8), 1.0)
            out.append(
                total_loss(weights, model(b["lr_up"], b["guides"], b["synth"], b["present"]), b)[1]
            )
    return {k: float(np.mean([o[k] for o in out])) for k in out[0]}


def test_training_reduces_loss_and_error(tiny_tensors, tmp_path):
    config = TrainConfig(
        steps=60,
        batch_size=2,
        crop=(32, 32, 8),
        learning_rate=2e-3,
        seed=0,
        checkpoint_every=30,
        net=NetConfig(width=16, blocks=2),
        guide_keep=1.0,
    )
    torch.manual_seed(config.seed)
    initial = _eval_loss(SwigNet(config.net), tiny_tensors)
    path = train(config, [tiny_tensors], tmp_path / "run", progress=False)
    rows = np.loadtxt(tmp_path / "run/losses.tsv", skiprows=1)
    assert rows.shape[0] == 60 and np.isfinite(rows[:, 2]).all()
    assert (tmp_path / "run/losses.png").stat().st_size > 1000
    model = load_model(path)
    final = _eval_loss(model, tiny_tensors)
    assert final["supervised"] < 0.9 * initial["supervised"]
    assert final["guide"] < 0.9 * initial["guide"]
    pred = predict_volume(model, tiny_tensors)
    m = tiny_tensors.mask.numpy()
    truth = tiny_tensors.truth.numpy()
    before = map_error(tiny_tensors.lr_up.numpy(), truth, m)
    after = map_error(pred, truth, m)
    assert after["T1"] < before["T1"] and after["T2"] < before["T2"]


def test_training_resumes_after_a_kill(tiny_tensors, tmp_path, monkeypatch):
    config = TrainConfig(
        steps=8,
        batch_size=1,
        crop=(16, 16, 4),
        seed=3,
        checkpoint_every=4,
        net=NetConfig(width=8, blocks=1),
    )
    reference = load_model(train(config, [tiny_tensors], tmp_path / "a", progress=False))
    real_sample = train_mod.sample_batch
    calls = {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt("killed")
        return real_sample(*args, **kwargs)

    monkeypatch.setattr(train_mod, "sample_batch", dying)
    with pytest.raises(KeyboardInterrupt):
        train(config, [tiny_tensors], tmp_path / "b", progress=False)
    monkeypatch.setattr(train_mod, "sample_batch", real_sample)
    resumed = load_model(train(config, [tiny_tensors], tmp_path / "b", progress=False))
    for (name, a), b in zip(
        reference.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=name)
    steps = np.loadtxt(tmp_path / "b/losses.tsv", skiprows=1)[:, 0]
    np.testing.assert_array_equal(steps, np.arange(1, 9))
    other = TrainConfig(**{**config.__dict__, "learning_rate": 0.5})
    with pytest.raises(ValueError, match="another configuration"):
        train(other, [tiny_tensors], tmp_path / "b", progress=False)


def test_training_can_start_from_existing_weights(tiny_tensors, tmp_path):
    config = TrainConfig(
        steps=4, batch_size=1, crop=(16, 16, 4), seed=3, net=NetConfig(width=8, blocks=1)
    )
    first = train(config, [tiny_tensors], tmp_path / "a", progress=False)
    init = {"path": str(first), "sha256": sha256(first)}
    # learning rate 0: the fine-tuned network is exactly its starting point
    frozen = TrainConfig(**{**config.__dict__, "learning_rate": 0.0, "seed": 9, "init": init})
    again = load_model(train(frozen, [tiny_tensors], tmp_path / "b", progress=False))
    for (name, a), b in zip(
        load_model(first).state_dict().items(), again.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=name)
    card = json.loads((tmp_path / "b/model_card.json").read_text())
    assert card["training"]["init"] == init
    wider = TrainConfig(**{**frozen.__dict__, "net": NetConfig(width=16, blocks=1)})
    with pytest.raises(ValueError, match="differs from the one to train"):
        train(wider, [tiny_tensors], tmp_path / "c", progress=False)
    wrong = TrainConfig(**{**frozen.__dict__, "init": {"path": str(first), "sha256": "0" * 64}})
    with pytest.raises(ValueError, match="does not match the model card"):
        train(wrong, [tiny_tensors], tmp_path / "d", progress=False)


@pytest.mark.parametrize("use_lr", [True, False])
def test_widened_context_predicts_the_same_maps(tiny_tensors, use_lr):
    torch.manual_seed(0)
    model = SwigNet(NetConfig(width=8, blocks=1, context=1, use_lr=use_lr))
    torch.nn.init.normal_(model.tail.weight, std=0.05)
    wide = widen_context(model, 2)
    assert wide.config.context == 2 and wide.head.weight.shape[1] > model.head.weight.shape[1]
    before = predict_volume(model, tiny_tensors, slice_axis=2)
    after = predict_volume(wide, tiny_tensors, slice_axis=2)
    assert np.abs(before - tiny_tensors.lr_up.numpy()).max() > 1e-3  # the network does something
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="cannot widen"):
        widen_context(wide, 1)


def test_training_widens_the_context_of_its_start(tiny_tensors, tmp_path):
    config = TrainConfig(
        steps=2, batch_size=1, crop=(16, 16, 4), seed=3, net=NetConfig(width=8, blocks=1)
    )
    first = train(config, [tiny_tensors], tmp_path / "a", progress=False)
    wide_net = NetConfig(width=8, blocks=1, context=2)
    grown = TrainConfig(
        **{**config.__dict__, "learning_rate": 0.0, "net": wide_net, "init": {"path": str(first)}}
    )
    again = load_model(train(grown, [tiny_tensors], tmp_path / "b", progress=False))
    assert again.config.context == 2
    narrower = TrainConfig(**{**config.__dict__, "init": {"path": str(tmp_path / "b/model.pt")}})
    with pytest.raises(ValueError, match="differs from the one to train"):
        train(narrower, [tiny_tensors], tmp_path / "c", progress=False)
    np.testing.assert_allclose(
        predict_volume(again, tiny_tensors, slice_axis=2),
        predict_volume(load_model(first), tiny_tensors, slice_axis=2),
        rtol=1e-5, atol=1e-6,
    )  # fmt: skip


def test_self_supervised_adaptation_moves_toward_truth(tiny_tensors):
    torch.manual_seed(0)
    model = SwigNet(NetConfig(width=16, blocks=2))
    before_weights = {k: v.clone() for k, v in model.state_dict().items()}
    # the unsupervised terms alone: no anchor to the untrained start
    config = AdaptConfig(learning_rate=2e-3, crop=(32, 32, 8), anchor=0.0, warmup=0)
    tuned, losses = adapt(model, tiny_tensors, steps=40, config=config, seed=1)
    assert np.mean(losses[-8:]) < np.mean(losses[:8])
    for name, value in model.state_dict().items():  # the input model is untouched
        torch.testing.assert_close(value, before_weights[name])
    m = tiny_tensors.mask.numpy()
    truth = tiny_tensors.truth.numpy()
    before = map_error(predict_volume(model, tiny_tensors), truth, m)
    after = map_error(predict_volume(tuned, tiny_tensors), truth, m)
    assert after["T1"] < before["T1"]


def test_anchored_adaptation_keeps_the_shipped_model_in_distribution(tiny_subject):
    """In distribution, adapting the shipped SWIG with the default proximal term leaves its
    GM T1 and T2 errors within 2 %; the same steps without the anchor do not."""
    from swigapp.models.shipped import load_shipped

    s = tiny_subject
    guides = {g: s.guides[g] for g in ("T1w", "T2w")}
    subject = prepare_subject(s.lr_maps, guides, s.protocols, s.truth.brain_mask)
    model = load_shipped("swig_default")
    gm = s.truth.tissue_masks()["GM"]
    truth = s.truth.as_dict()

    def gm_error(pred):  # mean absolute GM error of T1 and T2 (s)
        return np.array([np.abs(pred[i] - truth[m])[gm].mean() for i, m in ((1, "T1"), (2, "T2"))])

    before = gm_error(predict_volume(model, subject))
    anchored, _ = adapt(model, subject, 10, seed=1)
    free, _ = adapt(model, subject, 10, AdaptConfig(anchor=0.0, warmup=0), seed=1)  # 0.2.0's
    after = gm_error(predict_volume(anchored, subject))
    assert (after <= 1.02 * before).all(), (before, after)
    assert (gm_error(predict_volume(free, subject)) > 1.05 * before).any()


@pytest.mark.parametrize("guides", [(), ("T1w",), ("T2w",), ("T1w", "T2w")])
def test_ablation_guides_run(tiny_tensors, guides):
    model = SwigNet(NetConfig(width=8, blocks=1))
    pred = predict_volume(model, tiny_tensors.with_guides(guides), chunk=20)
    assert pred.shape == (3, 76, 92, 40) and np.isfinite(pred).all()


def test_no_lr_ablation_network(tiny_tensors):
    model = SwigNet(NetConfig(width=8, blocks=1, use_lr=False))
    pred = predict_volume(model, tiny_tensors, chunk=20)
    m = tiny_tensors.mask.numpy()
    # without LR input an untrained network returns its constant base: WM-like values
    np.testing.assert_allclose(pred[1][m], 0.9, rtol=2e-2)
    batch = sample_batch([tiny_tensors], np.random.default_rng(0), 2, (32, 32, 8))
    maps = model(batch["lr_up"], batch["guides"], batch["synth"], batch["present"])
    loss, parts = total_loss(LossWeights(), maps, batch)
    loss.backward()
    assert set(parts) == {"guide", "lr", "supervised"}
    assert model.head.weight.grad.abs().sum() > 0


def test_phantom_pool_shares_anatomy_across_settings():
    pool = phantom_pool(1, seed=11, settings=((2, 2, 2), (1, 1, 4)), config=TINY, progress=False)
    assert [p.factors for p in pool] == [(2.0, 2.0, 2.0), (1.0, 1.0, 4.0)]
    torch.testing.assert_close(pool[0].truth, pool[1].truth)
    torch.testing.assert_close(pool[0].raw_guides, pool[1].raw_guides)
    assert pool[1].lr.shape == (3, 76, 92, 10)


def test_phantom_pool_realigns_guides_after_head_motion():
    """With head motion, each guide goes back onto the maps' grid (as registration would):
    it matches the guide of the same subject acquired without motion, the moved one does not."""
    still = replace(TINY, max_rotation_deg=0.0, max_translation_mm=0.0)
    settings = ((2, 2, 2),)
    aligned = phantom_pool(1, seed=12, settings=settings, config=still, progress=False)[0]
    moved = phantom_pool(
        1, seed=12, settings=settings, config=replace(TINY, max_rotation_deg=3.0), progress=False
    )[0]
    back = phantom_pool(
        1, seed=12, settings=settings, config=still, progress=False, head_motion=(3.0, 3.0)
    )[0]
    torch.testing.assert_close(back.truth, aligned.truth)
    # 2 voxels in from the brain's edge: the tiny grid is tight, so motion loses its rim
    brain = ndimage.binary_erosion(aligned.mask.numpy(), iterations=2)

    def corr(a, b):
        return float(np.corrcoef(a.numpy()[brain], b.numpy()[brain])[0, 1])

    for g in range(3):  # T1w, T2w, FLAIR (noisiest)
        ref = aligned.raw_guides[g]
        assert corr(back.raw_guides[g], ref) > 0.88
        assert corr(moved.raw_guides[g], ref) < corr(back.raw_guides[g], ref) - 0.1
