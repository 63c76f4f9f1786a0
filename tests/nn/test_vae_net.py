import math

import pytest
import torch
from torch import nn

from stellarlatent.nn import SEDAGHAT2021, ConvVAE, vae_layer_plan, vae_loss

TINY = {"latent_dim": 4, "base_channels": 4, "max_channels": 16}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)


@pytest.mark.parametrize("n_pixels", [1, 7, 63, 64, 65, 1001, 4367])
def test_padded_length_and_shapes(n_pixels):
    vae = ConvVAE(n_pixels, **TINY)
    step = math.prod(vae.strides)
    assert vae.padded_length % step == 0
    assert n_pixels <= vae.padded_length < n_pixels + step
    assert vae.padded_length == ConvVAE.required_length(n_pixels)
    assert vae.bottleneck_shape == (vae.channels[-1], vae.padded_length // step)
    assert vae.bottleneck_shape[1] <= 64

    x = torch.randn(3, n_pixels)
    x_hat, mu, logvar, z = vae(x)
    assert x_hat.shape == (3, n_pixels)
    assert mu.shape == logvar.shape == z.shape == (3, 4)
    assert vae.decode(z).shape == (3, vae.padded_length)
    h = vae.encoder(nn.functional.pad(x, (0, vae.padded_length - n_pixels)).unsqueeze(1))
    assert tuple(h.shape[1:]) == vae.bottleneck_shape

    x3 = torch.randn(2, 1, vae.padded_length)
    assert vae(x3)[0].shape == (2, 1, vae.padded_length)


def test_unpadded_input_is_zero_padded_on_the_right():
    vae = ConvVAE(50, **TINY).eval()
    x = torch.randn(2, 50)
    padded = torch.cat([x, torch.zeros(2, vae.padded_length - 50)], dim=1)
    mu, _ = vae.encode(x)
    mu_padded, _ = vae.encode(padded)
    torch.testing.assert_close(mu, mu_padded)


def test_explicit_plan_with_odd_length():
    vae = ConvVAE(99, 3, channels=(4, 8, 8), kernel_sizes=(5, 3, 3), strides=(2, 2, 1))
    assert vae.padded_length == 100
    assert vae.bottleneck_shape == (8, 25)
    convs = [m for m in vae.encoder if isinstance(m, nn.Conv1d)]
    assert [c.stride[0] for c in convs] == [2, 2, 1]
    assert [c.kernel_size[0] for c in convs] == [5, 3, 3]
    deconvs = [m for m in vae.decoder if isinstance(m, nn.ConvTranspose1d)]
    assert [d.out_channels for d in deconvs] == [8, 4, 1]
    assert vae(torch.randn(2, 99))[0].shape == (2, 99)


def test_default_kernels_and_strides_when_only_channels_given():
    vae = ConvVAE(40, 2, channels=(4, 4, 4, 4, 4))
    assert vae.kernel_sizes == (7, 5, 5, 3, 3)
    assert vae.strides == (2, 2, 2, 2, 1)
    assert vae.padded_length == 48


def test_layer_plan_grows_and_caps_channels():
    plan = vae_layer_plan(327_680, base_channels=16, max_channels=128)
    assert max(plan["channels"]) == 128
    assert list(plan["channels"]) == sorted(plan["channels"])
    bottleneck = 327_680 / 2 ** plan["strides"].count(2)
    assert 32 < bottleneck <= 64
    assert plan["strides"][-1] == 1
    assert plan["kernel_sizes"][:4] == (7, 5, 5, 3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kernel_sizes": (4, 3)}, "odd"),
        ({"strides": (2,)}, "strides must have one entry per layer"),
        ({"latent_dim": 0}, "latent_dim"),
    ],
)
def test_invalid_arguments(kwargs, match):
    args = {"channels": (4, 4), **kwargs}
    with pytest.raises(ValueError, match=match):
        ConvVAE(32, **args)


def test_invalid_inputs():
    vae = ConvVAE(30, **TINY)
    with pytest.raises(ValueError, match="30 \\(n_pixels\\)"):
        vae(torch.zeros(2, 31))
    with pytest.raises(ValueError, match="batch, 1, n_pixels"):
        vae(torch.zeros(2, 2, 30))
    with pytest.raises(ValueError, match="z must have shape"):
        vae.decode(torch.zeros(2, 5))
    with pytest.raises(TypeError, match="n_pixels"):
        ConvVAE(30.5)


def test_not_variational_is_deterministic():
    vae = ConvVAE(64, variational=False, **TINY).train()
    x = torch.randn(4, 64)
    x_hat1, mu, logvar, z = vae(x)
    x_hat2, *_ = vae(x)
    assert logvar is None
    assert vae.fc_logvar is None
    torch.testing.assert_close(z, mu)
    torch.testing.assert_close(x_hat1, x_hat2)
    total, _, kl = vae_loss(x_hat1, x, mu, logvar)
    assert kl.item() == 0.0
    total.backward()


def test_variational_samples_in_training_mode_only():
    vae = ConvVAE(64, **TINY)
    x = torch.randn(4, 64)
    vae.train()
    _, mu, _, z1 = vae(x)
    _, _, _, z2 = vae(x)
    assert not torch.allclose(z1, z2)
    vae.eval()
    _, mu, _, z = vae(x)
    torch.testing.assert_close(z, mu)
    _, _, _, z_sampled = vae(x, sample=True)
    assert not torch.allclose(z_sampled, mu)


def test_reparameterize_statistics():
    mu = torch.full((200_000, 1), 1.0)
    logvar = torch.full((200_000, 1), math.log(4.0))
    z = ConvVAE.reparameterize(mu, logvar)
    assert abs(float(z.mean()) - 1.0) < 0.02
    assert abs(float(z.std()) - 2.0) < 0.02


@pytest.mark.parametrize("variational", [True, False])
def test_overfits_a_constant_spectrum(variational):
    vae = ConvVAE(60, variational=variational, **TINY)
    x = torch.full((8, 60), 1.5)
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        x_hat, mu, logvar, _ = vae(x)
        total, recon, _ = vae_loss(x_hat, x, mu, logvar, beta=1e-3)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        losses.append(recon.item())
    assert losses[-1] < 0.25 * losses[0]


def test_sedaghat2021_layers_and_shapes():
    paper_channels = [16, 16, 16, 32, 32, 32, 64, 64, 64, 128, 128, 128, 256, 512, 512]
    paper_kernels = [7, 5, 5] + [3] * 12
    paper_strides = [2] * 14 + [1]
    with torch.device("meta"):
        vae = ConvVAE.sedaghat2021()
        x = torch.empty(2, 1, 327_680)
        h = vae.encoder(x)
        x_hat, mu, logvar, z = vae(x)
    assert SEDAGHAT2021["n_pixels"] == 327_680
    assert vae.padded_length == 327_680
    assert h.shape == (2, 512, 20)
    assert x_hat.shape == (2, 1, 327_680)
    assert mu.shape == logvar.shape == z.shape == (2, 128)

    convs = [m for m in vae.encoder if isinstance(m, nn.Conv1d)]
    assert [c.out_channels for c in convs] == paper_channels
    assert [c.kernel_size[0] for c in convs] == paper_kernels
    assert [c.stride[0] for c in convs] == paper_strides
    acts = [m for m in vae.encoder if isinstance(m, nn.LeakyReLU)]
    assert len(acts) == 15 and all(a.negative_slope == 0.1 for a in acts)

    deconvs = [m for m in vae.decoder if isinstance(m, nn.ConvTranspose1d)]
    assert [d.in_channels for d in deconvs] == paper_channels[::-1]
    assert [d.out_channels for d in deconvs] == ([1] + paper_channels[:-1])[::-1]
    assert isinstance(vae.decoder[-1], nn.ConvTranspose1d)  # linear output

    # Expected parameter count from the published layer plan.
    c_in = [1] + paper_channels[:-1]
    conv = sum(i * o * k + o for i, o, k in zip(c_in, paper_channels, paper_kernels))
    deconv = sum(o * i * k + i for i, o, k in zip(c_in, paper_channels, paper_kernels))
    flat = 512 * 20
    linear = 2 * (flat * 128 + 128) + (128 * flat + flat)
    assert sum(p.numel() for p in vae.parameters()) == conv + deconv + linear


def test_sedaghat2021_overrides():
    with torch.device("meta"):
        vae = ConvVAE.sedaghat2021(variational=False, latent_dim=16)
    assert vae.fc_logvar is None
    assert vae.fc_mu.out_features == 16
    assert vae.bottleneck_shape == (512, 20)
