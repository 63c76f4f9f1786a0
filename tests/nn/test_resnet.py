import math

import pytest
import torch
from torch import nn

from stellarlatent.nn import DeepREMAPNet, FocalCostLoss, ResidualBlock1D, ResNet1D

TINY = {
    "base_channels": 4,
    "n_stages": 3,
    "blocks_per_stage": 2,
    "kernel_size": 5,
    "embedding_dim": 8,
}
BINS = {"teff": 12, "logg": 6, "feh": 5}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("n_pixels", [1, 33, 101, 257, 1000])
def test_output_shapes(n_pixels):
    net = DeepREMAPNet(n_pixels, BINS, **TINY)
    out = net(torch.randn(3, n_pixels))
    assert list(out.logits) == ["teff", "logg", "feh"]
    assert {k: tuple(v.shape) for k, v in out.logits.items()} == {
        "teff": (3, 12),
        "logg": (3, 6),
        "feh": (3, 5),
    }
    assert out.embedding.shape == (3, 8)
    logits, embedding = out  # a NamedTuple unpacks
    assert embedding is out.embedding
    assert net(torch.randn(2, 1, n_pixels)).embedding.shape == (2, 8)


def test_channels_double_as_length_halves():
    net = ResNet1D(base_channels=4, n_stages=4, blocks_per_stage=2, kernel_size=3, stem_stride=2)
    shapes = []

    def record(module, inputs, output):
        shapes.append(tuple(output.shape))

    hooks = [b.register_forward_hook(record) for b in net.blocks]
    features = net(torch.randn(2, 1, 203))
    for h in hooks:
        h.remove()
    assert features.shape == (2, net.out_channels) == (2, 32)
    length = math.ceil(203 / 2)
    expected = [(2, 4, length)]
    for stage in range(4):
        if stage > 0:
            length = math.ceil(length / 2)
        expected += [(2, 4 * 2**stage, length)] * 2
    assert shapes == expected


def test_identity_and_projection_blocks():
    identity = ResidualBlock1D(8, 8, kernel_size=3)
    assert isinstance(identity.shortcut, nn.Identity)
    projection = ResidualBlock1D(8, 16, kernel_size=3, stride=2)
    conv = projection.shortcut[0]
    assert isinstance(conv, nn.Conv1d) and conv.kernel_size == (1,) and conv.stride == (2,)
    assert isinstance(projection.shortcut[1], nn.BatchNorm1d)
    net = ResNet1D(base_channels=4, n_stages=3, blocks_per_stage=2)
    blocks = list(net.blocks)[1:]
    kinds = [isinstance(b.shortcut, nn.Identity) for b in blocks]
    assert kinds == [True, True, False, True, False, True]


def test_identity_block_output_is_relu_of_residual_plus_input():
    block = ResidualBlock1D(4, 4, kernel_size=3).eval()
    for p in block.conv2.parameters():
        nn.init.zeros_(p)  # residual branch outputs zero
    x = torch.randn(2, 4, 10)
    torch.testing.assert_close(block(x), torch.relu(x))


def test_mask_channel_and_zero_filled_masked_pixels():
    x = torch.randn(2, 64)
    mask = torch.zeros(2, 64, dtype=torch.bool)
    mask[:, 10:20] = True
    changed = x.clone()
    changed[:, 10:20] = torch.nan

    net1 = DeepREMAPNet(64, BINS, **TINY).eval()
    torch.testing.assert_close(net1(x, mask).embedding, net1(changed, mask).embedding)

    net2 = DeepREMAPNet(64, BINS, in_channels=2, **TINY).eval()
    out = net2(changed, mask)
    assert torch.isfinite(out.embedding).all()
    stacked = torch.stack([torch.where(mask, 0.0, x), mask.float()], dim=1)
    torch.testing.assert_close(out.embedding, net2(stacked).embedding)
    # the mask itself is information for a two-channel network
    assert not torch.allclose(out.embedding, net2(torch.where(mask, 0.0, x)).embedding)


def test_contrast_channel_reads_the_lines_without_the_continuum():
    n = 200
    x = torch.linspace(0, 1, n)
    lines = 1 - 0.5 * torch.exp(-0.5 * ((x - 0.5) / 0.01) ** 2)
    continuum = 2 + 3 * x
    flux = (continuum * lines)[None].repeat(2, 1)
    mask = torch.zeros(2, n, dtype=torch.bool)
    mask[1, 150:170] = True
    net = DeepREMAPNet(n, BINS, in_channels=2, contrast_window=21, **TINY).eval()
    assert net.backbone.in_channels == 3
    contrast = net._prepare_input(flux, mask)[:, 2]
    # standardised, zero on masked pixels, deepest at the line, flat far from it
    for row in range(2):
        rms = contrast[row][~mask[row]].square().mean().sqrt()
        torch.testing.assert_close(rms, torch.tensor(1.0))
    assert (contrast[1, 150:170] == 0).all()
    assert contrast[0].argmin() == 100
    assert contrast[0, 20:60].abs().max() < 0.1 * contrast[0].abs().max()
    # offset and scale of the flux do not change it; the masked pixels do not leak
    again = net._prepare_input(10 * flux + 3, mask)[:, 2]
    torch.testing.assert_close(again, contrast, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(contrast[1, :100], contrast[0, :100] * contrast[1, :100].norm()
                               / contrast[0, :100].norm())
    # a 3-D input gets the channel too
    stacked = torch.stack([torch.where(mask, 0.0, flux), mask.float()], dim=1)
    torch.testing.assert_close(net(stacked).embedding, net(flux, mask).embedding)
    with pytest.raises(ValueError, match="contrast_window must be odd"):
        DeepREMAPNet(n, BINS, contrast_window=20)
    with pytest.raises(ValueError, match="contrast_window"):
        DeepREMAPNet(n, BINS, contrast_window=1)


def test_embedding_normalisation_and_head_input():
    net = DeepREMAPNet(50, [3, 4], head_input="embedding", **TINY)
    out = net(torch.randn(5, 50))
    assert net.label_names == ("0", "1")
    assert net.heads["0"].in_features == 8
    torch.testing.assert_close(out.embedding.norm(dim=1), torch.ones(5))
    raw = DeepREMAPNet(50, [3], normalize_embedding=False, **TINY)
    assert not torch.allclose(raw(torch.randn(5, 50)).embedding.norm(dim=1), torch.ones(5))


def _backward(net, n_pixels=40):
    net.zero_grad(set_to_none=True)
    out = net(torch.randn(4, n_pixels))
    loss = sum(v.sum() for v in out.logits.values()) + out.embedding.sum()
    loss.backward()


def test_freeze_all_backbone_blocks():
    net = DeepREMAPNet(40, BINS, **TINY).train()
    net.freeze()
    _backward(net)
    assert all(p.grad is None for p in net.backbone_parameters())
    assert all(p.grad is not None for p in net.head_parameters())
    assert all(not m.training for m in net.blocks)
    assert net.heads.training
    # frozen batch-norm statistics do not move in training mode
    bn = net.blocks[0][1]
    before = bn.running_mean.clone()
    net(torch.randn(4, 40) + 5.0)
    torch.testing.assert_close(bn.running_mean, before)

    net.unfreeze()
    _backward(net)
    assert all(p.grad is not None for p in net.backbone_parameters())
    assert all(m.training for m in net.blocks)


def test_freeze_first_blocks_only():
    net = DeepREMAPNet(40, BINS, **TINY)
    net.freeze(2)
    _backward(net)
    for i, block in enumerate(net.blocks):
        grads = [p.grad for p in block.parameters()]
        if i < 2:
            assert all(g is None for g in grads)
        else:
            assert all(g is not None for g in grads)
    net.eval().train()
    assert [m.training for m in net.blocks] == [False, False] + [True] * (len(net.blocks) - 2)
    with pytest.raises(ValueError, match="n_blocks"):
        net.freeze(len(net.blocks) + 1)


def test_short_training_reduces_loss():
    net = DeepREMAPNet(48, {"teff": 4}, **TINY)
    x = torch.randn(16, 48)
    target = torch.arange(16) % 4
    x = x + target[:, None].float()  # a learnable signal
    criterion = FocalCostLoss(4)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        loss = criterion(net(x).logits["teff"], target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((40, {"a": 1}), {}, ValueError, "label_bins\\['a'\\]"),
        ((40, {}), {}, ValueError, "at least one label"),
        ((40, {"a.b": 3}), {}, ValueError, "without '.'"),
        ((40, "abc"), {}, TypeError, "label_bins"),
        ((40, {"a": 3}), {"in_channels": 3}, ValueError, "in_channels"),
        ((40, {"a": 3}), {"kernel_size": 4}, ValueError, "odd"),
        ((40, {"a": 3}), {"head_input": "x"}, ValueError, "head_input"),
    ],
)
def test_invalid_arguments(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        DeepREMAPNet(*args, **kwargs)


def test_invalid_inputs():
    net = DeepREMAPNet(40, {"a": 3}, **TINY)
    with pytest.raises(ValueError, match="40 pixels"):
        net(torch.zeros(2, 41))
    with pytest.raises(ValueError, match="mask must have the shape"):
        net(torch.zeros(2, 40), torch.zeros(2, 39, dtype=torch.bool))
    with pytest.raises(ValueError, match="batch, 1, n_pixels"):
        net(torch.zeros(2, 3, 40))
    anylength = DeepREMAPNet(None, {"a": 3}, **TINY)
    assert anylength(torch.zeros(2, 77)).logits["a"].shape == (2, 3)
