"""Encoder shapes, NT-Xent against a hand-written reference, and a loss that learns."""

import copy
import math

import pytest
import torch

from mc_simclr.losses import NTXentLoss, nt_xent
from mc_simclr.networks import (
    CRNNEncoder,
    EncoderConfig,
    ProjectionHead,
    SELDHeads,
    build_encoder,
    set_cpu_channels_last,
)


def reference_nt_xent(z1, z2, temperature):
    """Equation (3) of the paper, one term at a time."""
    z = torch.cat([z1, z2]).double()
    n2 = len(z)
    half = n2 // 2
    total = 0.0
    for i in range(n2):
        j = (i + half) % n2
        sims = [float(torch.nn.functional.cosine_similarity(z[i], z[k], dim=0)) / temperature for k in range(n2)]
        denominator = sum(math.exp(s) for k, s in enumerate(sims) if k != i)
        total += -math.log(math.exp(sims[j]) / denominator)
    return total / n2


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_nt_xent_matches_reference(temperature):
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    assert float(nt_xent(z1, z2, temperature)) == pytest.approx(reference_nt_xent(z1, z2, temperature), rel=1e-5)
    assert float(NTXentLoss(temperature)(z1, z2)) == pytest.approx(reference_nt_xent(z1, z2, temperature), rel=1e-5)


def test_nt_xent_perfect_pairs_beat_random():
    z = torch.nn.functional.one_hot(torch.arange(8), 8).float()
    assert float(nt_xent(z, z, 0.1)) < 1e-3
    assert float(nt_xent(z, z.roll(1, 0), 0.1)) > 5


def test_nt_xent_argument_checks():
    with pytest.raises(ValueError, match="same shape"):
        nt_xent(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="at least 2"):
        nt_xent(torch.randn(1, 3), torch.randn(1, 3))
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(0.0)


def test_loss_falls_over_20_steps():
    torch.manual_seed(0)
    config = EncoderConfig(filters=[8, 8], kernel_size=3, pools=[[2, 2], [2, 2]], gru_hidden=16, embedding_dim=16)
    encoder, projector = CRNNEncoder(config, n_bins=16), ProjectionHead(16, 16, 16)
    optimizer = torch.optim.SGD(list(encoder.parameters()) + list(projector.parameters()), lr=0.1, momentum=0.9)
    data = torch.randn(16, 10, 12, 16)
    losses = []
    for _ in range(20):
        noisy1 = data + 0.3 * torch.randn_like(data)
        noisy2 = data + 0.3 * torch.randn_like(data)
        z = projector(encoder(torch.cat([noisy1, noisy2])))
        loss = nt_xent(z[:16], z[16:], 0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


@pytest.mark.parametrize("pooling", ["mean", "meanmax"])
def test_encoder_shapes(pooling):
    config = EncoderConfig(
        filters=[4, 6, 8],
        kernel_size=5,
        pools=[[2, 4], [2, 4], [1, 2]],
        gru_hidden=8,
        embedding_dim=128,
        temporal_pooling=pooling,
    )
    encoder = CRNNEncoder(config, n_bins=64)
    h = encoder(torch.randn(3, 10, 51, 64))
    assert h.shape == (3, 128)
    logits, azimuth = SELDHeads(128, 12)(h)
    assert logits.shape == (3, 12)
    assert azimuth.shape == (3, 2)
    with pytest.raises(ValueError, match="CRNNEncoder expects"):
        encoder(torch.randn(3, 9, 51, 64))


@pytest.mark.parametrize("architecture", ["crnn", "split_crnn"])
def test_cpu_channels_last_matches_contiguous(architecture):
    """The channels-last CPU path is a layout change only: same outputs and gradients, same
    batch-norm statistics, and it really is taken (the first conv sees a channels-last input)."""
    config = EncoderConfig(
        architecture=architecture, filters=[8, 8], kernel_size=3, pools=[[2, 2], [1, 2]], gru_hidden=8, embedding_dim=16
    )
    torch.manual_seed(0)
    fast = build_encoder(config, n_bins=32)
    slow = set_cpu_channels_last(copy.deepcopy(fast), False)
    assert all(m.cpu_channels_last for m in fast.modules() if isinstance(m, CRNNEncoder))
    assert not any(m.cpu_channels_last for m in slow.modules() if isinstance(m, CRNNEncoder))
    seen = []
    first_conv = next(m for m in fast.modules() if isinstance(m, torch.nn.Conv2d))
    hook = first_conv.register_forward_pre_hook(
        lambda _, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last))
    )
    x = torch.randn(6, 10, 20, 32)
    outputs = []
    for encoder in (fast, slow):
        encoder.train()
        h = encoder(x)
        (h**2).sum().backward()
        outputs.append(
            (h.detach(), [p.grad.clone() for p in encoder.parameters()], [b.clone() for b in encoder.buffers()])
        )
    hook.remove()
    assert seen == [True]
    (h_fast, g_fast, b_fast), (h_slow, g_slow, b_slow) = outputs
    torch.testing.assert_close(h_fast, h_slow, rtol=1e-4, atol=1e-5)
    for a, b in zip(g_fast + b_fast, g_slow + b_slow, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"filters": [4], "pools": [[2, 2], [2, 2]]}, "one entry per block"),
        ({"kernel_size": 4}, "kernel_size"),
        ({"temporal_pooling": "attention"}, "temporal_pooling"),
        ({"width": 3}, "encoder.width"),
    ],
)
def test_encoder_config_errors(params, message):
    with pytest.raises(ValueError, match=message):
        EncoderConfig.from_params(params)


def test_encoder_channels_follow_the_array():
    """M log-Mel + M(M-1)/2 GCC channels: derived when null, refused with the arithmetic when wrong."""
    derived = EncoderConfig(in_channels=None, mel_channels=None, architecture="split_crnn")
    assert (derived.for_array(4).in_channels, derived.for_array(4).mel_channels) == (10, 4)
    assert (derived.for_array(6).in_channels, derived.for_array(6).mel_channels) == (21, 6)
    with pytest.raises(ValueError, match=r"encoder.in_channels is 10, but the array of 6 microphones .* = 21"):
        EncoderConfig(in_channels=10, mel_channels=None).for_array(6)
    with pytest.raises(ValueError, match="not derived from the array yet"):
        build_encoder(derived, n_bins=16)
    encoder = build_encoder(derived.for_array(6), n_bins=16)
    assert encoder(torch.randn(2, 21, 8, 16)).shape == (2, 128)
