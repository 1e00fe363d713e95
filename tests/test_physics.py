"""Signal equations against simulation, known physics and literature contrast at 3T."""

import json
import logging
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from swigapp.physics import (
    DEFAULT_PROTOCOLS,
    Protocol,
    ProtocolError,
    as_numpy_fn,
    inversion_recovery,
    mprage,
    spin_echo,
    spoiled_gre,
    to_seconds,
)

# (PD, T1 s, T2 s) at 3T: WM, GM, CSF (DESIGN.md tissue table)
WM, GM, CSF = (0.68, 0.83, 0.079), (0.80, 1.33, 0.11), (1.0, 4.0, 1.5)


def tissues(dtype=torch.float64):
    pd, t1, t2 = (torch.tensor(v, dtype=dtype) for v in zip(WM, GM, CSF, strict=True))
    return pd, t1, t2


def bloch_mprage(t1, tr, ti, flip, tau, n, k, cycles=400, efficiency=1.0):
    """Step-by-step longitudinal recursion of an MPRAGE train, run to steady state
    (``efficiency``: of the inversion, Mz -> -efficiency Mz)."""
    ta = ti - k * tau
    td = tr - ta - n * tau
    mz = 1.0
    signal = None
    for _ in range(cycles):
        mz = -efficiency * mz  # inversion
        mz = mz * math.exp(-ta / t1) + 1 - math.exp(-ta / t1)
        for pulse in range(n):
            if pulse == k:
                signal = math.sin(flip) * mz
            mz = mz * math.cos(flip)
            mz = mz * math.exp(-tau / t1) + 1 - math.exp(-tau / t1)
        mz = mz * math.exp(-td / t1) + 1 - math.exp(-td / t1)
    return abs(signal)


@pytest.mark.parametrize("t1", [0.3, 0.83, 1.33, 2.0, 4.2])
@pytest.mark.parametrize(("flip_deg", "n", "k"), [(9.0, 176, 88), (7.0, 128, 0), (12.0, 160, 40)])
def test_mprage_matches_bloch_recursion(t1, flip_deg, n, k):
    tr, ti, tau = 2.3, 0.9, 0.007
    flip = math.radians(flip_deg)
    closed = mprage(
        torch.tensor(1.0, dtype=torch.float64),
        torch.tensor(t1, dtype=torch.float64),
        torch.tensor(1.0, dtype=torch.float64),
        tr=tr,
        ti=ti,
        flip=flip,
        tau=tau,
        n_pulses=n,
        k_centre=k,
    )
    expected = bloch_mprage(t1, tr, ti, flip, tau, n, k)
    assert float(closed) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("t1", [0.6, 1.33, 4.2])
@pytest.mark.parametrize("efficiency", [0.8, 0.93])
def test_mprage_imperfect_inversion_matches_recursion(t1, efficiency):
    tr, ti, tau, n, k, flip = 2.3, 0.9, 0.007, 176, 88, math.radians(9.0)
    one = torch.tensor(1.0, dtype=torch.float64)
    params = {"tr": tr, "ti": ti, "flip": flip, "tau": tau, "n_pulses": n, "k_centre": k}
    closed = mprage(one, one * t1, one, inversion_efficiency=efficiency, **params)
    expected = bloch_mprage(t1, tr, ti, flip, tau, n, k, efficiency=efficiency)
    assert float(closed) == pytest.approx(expected, rel=1e-9)
    assert float(closed) != pytest.approx(float(mprage(one, one * t1, one, **params)), rel=1e-3)


def test_per_voxel_flip_equals_scalar_flips():
    """A B1+ map scales each voxel's flip: the same as the protocol with that flip."""
    pd, t1, t2 = tissues()
    b1 = torch.tensor([0.85, 1.0, 1.15], dtype=torch.float64)
    for name in ("T1w",):
        protocol = DEFAULT_PROTOCOLS[name]
        mapped = protocol.signal(pd, t1, t2, b1=b1)
        for i, scale in enumerate(b1.tolist()):
            single = replace(protocol, flip_deg=protocol.flip_deg * scale)
            expected = single.signal(pd[i], t1[i], t2[i])
            assert float(mapped[i]) == pytest.approx(float(expected), rel=1e-12)
    gre = Protocol(model="GRE", tr=0.02, te=0.004, flip_deg=15.0)
    mapped = gre.signal(pd, t1, t2, b1=b1)
    ernst = [spoiled_gre(pd[i], t1[i], t2[i], 0.02, 0.004, math.radians(15 * s)) for i, s in
             enumerate(b1.tolist())]  # fmt: skip
    assert torch.allclose(mapped, torch.stack(ernst), rtol=1e-12)
    assert float(mapped[0]) != pytest.approx(float(gre.signal(pd, t1, t2)[0]), rel=1e-3)


def test_mprage_impossible_timing_raises():
    with pytest.raises(ValueError, match="impossible MPRAGE timing"):
        mprage(*tissues(), tr=1.0, ti=0.9, flip=0.15, tau=0.007, n_pulses=176)


def test_flair_nulls_tissue_at_ti_t1_ln2():
    t1 = torch.tensor([0.83, 1.33, 4.0], dtype=torch.float64)
    ti = 1.33 * math.log(2.0)
    s = inversion_recovery(
        torch.ones(3, dtype=torch.float64), t1, torch.ones(3), tr=1e4, te=0.0, ti=ti
    )
    assert float(s[1]) < 1e-12
    assert float(s[0]) > 0.05 and float(s[2]) > 0.05
    # a real T2-FLAIR (TR 9 s, TI 2.5 s) nearly nulls CSF and keeps GM brighter than WM
    flair = DEFAULT_PROTOCOLS["FLAIR"].signal(*tissues())
    assert flair[2] < 0.25 * flair[1] and flair[1] > flair[0]


def test_spin_echo_exact_form_and_limits():
    pd, t1, t2 = (torch.tensor([v], dtype=torch.float64) for v in GM)
    tr, te = 5.0, 0.1
    s = spin_echo(pd, t1, t2, tr=tr, te=te)
    expected = (
        0.8
        * (1 - 2 * math.exp(-(tr - te / 2) / 1.33) + math.exp(-tr / 1.33))
        * math.exp(-te / 0.11)
    )
    assert float(s) == pytest.approx(expected, rel=1e-12)
    # TR -> infinity and TE -> 0: pure proton density
    assert float(spin_echo(pd, t1, t2, tr=1e5, te=0.0)) == pytest.approx(0.8, rel=1e-12)


def test_spoiled_gre_ernst_angle_maximises_signal():
    t1, tr = 1.0, 0.02
    ernst = math.acos(math.exp(-tr / t1))
    angles = np.linspace(0.01, 0.8, 400)
    one = torch.ones(1, dtype=torch.float64)
    values = [float(spoiled_gre(one, one * t1, one, tr=tr, te=0.0, flip=a)) for a in angles]
    assert angles[int(np.argmax(values))] == pytest.approx(ernst, abs=0.003)


def test_contrast_orderings_at_3t():
    mp = DEFAULT_PROTOCOLS["T1w"].signal(*tissues())
    assert mp[0] > mp[1] > mp[2]  # MPRAGE: WM > GM > CSF
    t2w = DEFAULT_PROTOCOLS["T2w"].signal(*tissues())
    assert t2w[2] > t2w[1] > t2w[0]  # T2w: CSF brightest, GM > WM
    se_t1 = DEFAULT_PROTOCOLS["SE-T1w"].signal(*tissues())
    assert se_t1[0] > se_t1[1] > se_t1[2]


@pytest.mark.parametrize("name", sorted(DEFAULT_PROTOCOLS))
@pytest.mark.parametrize("value", [0.0, 1e-9, 1e-4, 1.0, 1e3, 1e8])
def test_gradients_finite(name, value):
    t1 = torch.full((4,), value, dtype=torch.float64, requires_grad=True)
    t2 = torch.full((4,), value, dtype=torch.float64, requires_grad=True)
    pd = torch.full((4,), 0.8, dtype=torch.float64, requires_grad=True)
    s = DEFAULT_PROTOCOLS[name].signal(pd, t1, t2)
    s.sum().backward()
    for tensor in (s, pd.grad, t1.grad, t2.grad):
        assert torch.isfinite(tensor).all()


def test_float32_matches_float64_and_broadcasts():
    p = DEFAULT_PROTOCOLS["T1w"]
    pd = torch.rand(2, 3, 4, dtype=torch.float64) + 0.5
    t1 = torch.rand(2, 3, 4, dtype=torch.float64) * 3 + 0.3
    t2 = torch.tensor(0.08, dtype=torch.float64)  # scalar broadcasts over the map
    s64 = p.signal(pd, t1, t2)
    s32 = p.signal(pd.float(), t1.float(), t2.float())
    assert s64.shape == (2, 3, 4) and s32.dtype == torch.float32
    # float32 loses ~1e-6 absolute near the MPRAGE null crossing (cancellation)
    torch.testing.assert_close(s32.double(), s64, rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    p = DEFAULT_PROTOCOLS["FLAIR"]
    pd, t1, t2 = tissues()
    torch.testing.assert_close(
        p.signal(pd.cuda(), t1.cuda(), t2.cuda()).cpu(), p.signal(pd, t1, t2)
    )


def test_numpy_layer_is_the_same_code():
    pd, t1, t2 = (np.array(v) for v in zip(WM, GM, CSF, strict=True))
    fn = as_numpy_fn(spin_echo)
    out = fn(pd, t1, t2, tr=5.0, te=0.1)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, spin_echo(*tissues(), tr=5.0, te=0.1).numpy(), rtol=1e-15)
    p = DEFAULT_PROTOCOLS["T1w"]
    np.testing.assert_allclose(p.signal_np(pd, t1, t2), p.signal(*tissues()).numpy(), rtol=1e-15)


MPRAGE_SIDECAR = {
    "ScanningSequence": "GR\\IR",
    "SequenceVariant": "SK\\SP\\MP",
    "MRAcquisitionType": "3D",
    "PulseSequenceType": "MPRAGE",
    "RepetitionTime": 2.3,
    "InversionTime": 0.9,
    "FlipAngle": 9,
    "EchoTime": 0.00298,
    "RepetitionTimeExcitation": 0.0071,
    "NumberShots": 176,
}


@pytest.mark.parametrize(
    ("sidecar", "model"),
    [
        (MPRAGE_SIDECAR, "MPRAGE"),
        (
            {
                "ScanningSequence": ["GR", "IR"],
                "RepetitionTime": 2.3,
                "InversionTime": 0.9,
                "FlipAngle": 9,
                "EchoTime": 0.003,
            },
            "MPRAGE",
        ),
        (
            {
                "ScanningSequence": "SE",
                "SequenceVariant": "SK",
                "RepetitionTime": 5.0,
                "EchoTime": 0.095,
                "EchoTrainLength": 16,
            },
            "SE",
        ),
        (
            {
                "ScanningSequence": "SE\\IR",
                "RepetitionTime": 9.0,
                "EchoTime": 0.12,
                "InversionTime": 2.5,
            },
            "IR",
        ),
        (
            {
                "ScanningSequence": "GR",
                "SequenceVariant": "SP",
                "RepetitionTime": 0.02,
                "EchoTime": 0.004,
                "FlipAngle": 20,
            },
            "GRE",
        ),
        (
            {
                "PulseSequenceType": "T2 FLAIR",
                "RepetitionTime": 9.0,
                "EchoTime": 0.12,
                "InversionTime": 2.5,
            },
            "IR",
        ),
    ],
)
def test_protocol_detects_model(sidecar, model):
    assert Protocol.from_sidecar(sidecar).model == model


def test_protocol_from_file_and_roundtrip(tmp_path):
    path = tmp_path / "sub-01_T1w.json"
    path.write_text(json.dumps(MPRAGE_SIDECAR))
    p = Protocol.from_sidecar(path)
    assert (p.tr, p.ti, p.flip_deg, p.tau, p.n_pulses) == (2.3, 0.9, 9.0, 0.0071, 176)
    assert p.source == str(path)
    for proto in DEFAULT_PROTOCOLS.values():
        again = Protocol.from_sidecar(proto.to_sidecar())
        assert again.model == proto.model
        tissue = tissues()
        torch.testing.assert_close(again.signal(*tissue), proto.signal(*tissue))


def test_protocol_missing_field_names_file_and_field(tmp_path):
    path = tmp_path / "sub-01_FLAIR.json"
    path.write_text(
        json.dumps({"ScanningSequence": "SE\\IR", "RepetitionTime": 9.0, "EchoTime": 0.12})
    )
    with pytest.raises(ProtocolError, match=r"sub-01_FLAIR\.json.*InversionTime"):
        Protocol.from_sidecar(path)
    path.write_text(json.dumps({"RepetitionTime": 2.0}))
    with pytest.raises(ProtocolError, match=r"sub-01_FLAIR\.json.*ScanningSequence"):
        Protocol.from_sidecar(path)
    path.write_text("{not json")
    with pytest.raises(ProtocolError, match=r"sub-01_FLAIR\.json.*not valid JSON"):
        Protocol.from_sidecar(path)


def test_protocol_override_file_yaml(tmp_path):
    override = tmp_path / "protocol.yaml"
    override.write_text("Model: IR\nInversionTime: 2.5\nRepetitionTime: 9.0\nEchoTime: 0.12\n")
    p = Protocol.from_sidecar({"RepetitionTime": 1.0}, overrides=override)
    assert (p.model, p.tr, p.ti, p.te) == ("IR", 9.0, 2.5, 0.12)
    assert "protocol.yaml" in p.source


def test_mprage_defaults_are_logged(caplog):
    sidecar = {
        k: v
        for k, v in MPRAGE_SIDECAR.items()
        if k not in ("RepetitionTimeExcitation", "NumberShots")
    }
    with caplog.at_level(logging.WARNING, logger="swigapp.physics"):
        p = Protocol.from_sidecar(sidecar, source="sub-02_T1w.json")
    assert p.n_pulses == 176 and p.tau == pytest.approx(0.007)
    assert "RepetitionTimeExcitation" in caplog.text and "NumberShots" in caplog.text


def test_units_milliseconds_detected_and_converted(caplog):
    t1_ms = np.full((4, 4, 4), 1330.0, dtype=np.float32)
    with caplog.at_level(logging.WARNING, logger="swigapp.physics"):
        t1, suffix = to_seconds(t1_ms, "T1map", source="sub-01_T1map.nii.gz")
    assert suffix == "T1map" and np.allclose(t1, 1.33)
    assert "sub-01_T1map.nii.gz" in caplog.text and "milliseconds" in caplog.text
    t2_s = np.full((4, 4, 4), 0.11, dtype=np.float32)
    t2, _ = to_seconds(t2_s, "T2map")
    np.testing.assert_array_equal(t2, t2_s)  # already seconds: untouched
    t2, _ = to_seconds(t2_s * 1000, "T2map")
    np.testing.assert_allclose(t2, 0.11, rtol=1e-6)


def test_units_rates_inverted():
    r1 = np.array([0.0, 1 / 0.83, 1 / 1.33, 0.25], dtype=np.float32)
    t1, suffix = to_seconds(r1, "R1map")
    assert suffix == "T1map"
    np.testing.assert_allclose(t1, [0.0, 0.83, 1.33, 4.0], rtol=1e-6)
    r2_per_ms = np.array([1 / 79.0, 1 / 110.0], dtype=np.float32)
    t2, suffix = to_seconds(r2_per_ms, "R2map")
    assert suffix == "T2map"
    np.testing.assert_allclose(t2, [0.079, 0.110], rtol=1e-5)
