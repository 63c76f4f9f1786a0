"""A 1-D convolutional (beta-)variational autoencoder for spectra.

The network follows Sedaghat et al. (2021, MNRAS 501, 6026): a stack of
strided `~torch.nn.Conv1d` layers with leaky ReLU activations, a linear
bottleneck to the mean and log-variance of the latent variables, and a mirrored
`~torch.nn.ConvTranspose1d` decoder whose last layer is linear.

Every convolution uses "same" padding (``kernel_size // 2``, odd kernels), so a
layer of stride ``s`` divides an input length that is a multiple of ``s``
exactly by ``s``, and the transposed layers (``output_padding = s - 1``)
multiply it back. The input length must therefore be a multiple of the product
of the strides: `ConvVAE.padded_length` (see `ConvVAE.required_length`).
"""

import math
from types import MappingProxyType

import torch
from torch import nn

from ._utils import check_float, check_int, check_int_sequence

__all__ = ["ConvVAE", "SEDAGHAT2021", "vae_layer_plan"]

#: Architecture of Sedaghat et al. (2021): keyword arguments of `ConvVAE` (read-only).
SEDAGHAT2021 = MappingProxyType(
    {
        "n_pixels": 327_680,
        "latent_dim": 128,
        "channels": (16, 16, 16, 32, 32, 32, 64, 64, 64, 128, 128, 128, 256, 512, 512),
        "kernel_sizes": (7, 5, 5) + (3,) * 12,
        "strides": (2,) * 14 + (1,),
        "negative_slope": 0.1,
        "variational": True,
    }
)


def _default_kernels(n_layers):
    """Kernel sizes 7, 5, 5, then 3, as in Sedaghat et al. (2021)."""
    return ((7, 5, 5) + (3,) * n_layers)[:n_layers]


def vae_layer_plan(
    n_pixels,
    *,
    max_bottleneck_length=64,
    base_channels=16,
    max_channels=512,
    channel_growth_every=3,
):
    """Derive the encoder layers of a `ConvVAE` from the input length.

    Stride-2 layers halve the length until at most ``max_bottleneck_length``
    positions remain; one stride-1 layer closes the encoder. Channels start at
    ``base_channels`` and double every ``channel_growth_every`` layers up to
    ``max_channels``; kernels are 7, 5, 5, then 3, as in Sedaghat et al. (2021).

    Parameters
    ----------
    n_pixels : int
        Length of the (unpadded) input spectra.
    max_bottleneck_length : int, default=64
        Largest number of positions left at the bottleneck.
    base_channels : int, default=16
        Channels of the first layer.
    max_channels : int, default=512
        Upper limit of the channels of any layer.
    channel_growth_every : int, default=3
        Number of layers between two doublings of the channels.

    Returns
    -------
    plan : dict
        ``{"channels": tuple, "kernel_sizes": tuple, "strides": tuple}``, one
        entry per encoder layer, ready to pass to `ConvVAE`.

    Examples
    --------
    >>> plan = vae_layer_plan(4300)
    >>> plan["strides"]
    (2, 2, 2, 2, 2, 2, 2, 1)
    >>> plan["channels"]
    (16, 16, 16, 32, 32, 32, 64, 64)
    >>> ConvVAE.required_length(4300, strides=plan["strides"])
    4352
    """
    n_pixels = check_int(n_pixels, "n_pixels")
    max_bottleneck_length = check_int(max_bottleneck_length, "max_bottleneck_length")
    base_channels = check_int(base_channels, "base_channels")
    max_channels = check_int(max_channels, "max_channels")
    channel_growth_every = check_int(channel_growth_every, "channel_growth_every")
    n_down = 0
    while math.ceil(n_pixels / 2**n_down) > max_bottleneck_length:
        n_down += 1
    n_layers = n_down + 1
    channels = tuple(
        min(base_channels * 2 ** (i // channel_growth_every), max_channels)
        for i in range(n_layers)
    )
    kernel_sizes = _default_kernels(n_layers)
    strides = (2,) * n_down + (1,)
    return {"channels": channels, "kernel_sizes": kernel_sizes, "strides": strides}


class ConvVAE(nn.Module):
    """Convolutional (beta-)VAE for 1-D spectra (Sedaghat et al. 2021).

    Parameters
    ----------
    n_pixels : int
        Length of the input spectra. Inputs of this length are zero-padded on
        the right to `padded_length`; inputs already of `padded_length` are used
        as they are.
    latent_dim : int, default=128
        Number of latent variables.
    channels, kernel_sizes, strides : sequence of int, default=None
        Output channels, (odd) kernel size and stride of each encoder layer;
        the decoder mirrors them. When ``channels`` is not given the plan is
        derived from ``n_pixels`` by `vae_layer_plan` (with
        ``max_bottleneck_length``, ``base_channels``, ``max_channels``); when
        only ``kernel_sizes`` or ``strides`` is missing it defaults to
        7, 5, 5, 3, ... and to stride 2 everywhere but in the last layer.
    variational : bool, default=True
        If False the network is a plain autoencoder: `encode` returns
        ``logvar=None`` and `forward` is deterministic.
    negative_slope : float, default=0.1
        Slope of the leaky ReLU for negative inputs.
    max_bottleneck_length, base_channels, max_channels : int, optional
        Passed to `vae_layer_plan` when ``channels`` is not given.

    Attributes
    ----------
    padded_length : int
        Input length the convolutions need: ``n_pixels`` rounded up to a
        multiple of the product of the strides.
    bottleneck_shape : tuple of int
        ``(channels, length)`` of the last encoder feature map.

    Notes
    -----
    Shapes (``B`` spectra, ``L = padded_length``, ``D = latent_dim``):

    * input ``x``: ``(B, n_pixels)``, ``(B, L)``, ``(B, 1, n_pixels)`` or
      ``(B, 1, L)``, finite values (zero-fill masked pixels first);
    * `encode` -> ``mu``, ``logvar``: ``(B, D)`` each (``logvar`` is None when
      not variational);
    * `decode` -> ``(B, L)``;
    * `forward` -> ``x_hat`` with the shape of ``x``, then ``mu``, ``logvar``
      and ``z`` of shape ``(B, D)``.

    A leaky ReLU follows every encoder convolution and every decoder layer but
    the last one, so reconstructions are unbounded (flux normalised to a median
    of one, as in the paper, is not squashed into an interval).

    Examples
    --------
    >>> import torch
    >>> vae = ConvVAE(1000, latent_dim=8)
    >>> vae.padded_length, vae.bottleneck_shape
    (1008, (32, 63))
    >>> x_hat, mu, logvar, z = vae(torch.zeros(3, 1000))
    >>> tuple(x_hat.shape), tuple(mu.shape), tuple(z.shape)
    ((3, 1000), (3, 8), (3, 8))
    >>> tuple(vae.decode(z).shape)
    (3, 1008)
    """

    def __init__(
        self,
        n_pixels,
        latent_dim=128,
        *,
        channels=None,
        kernel_sizes=None,
        strides=None,
        variational=True,
        negative_slope=0.1,
        max_bottleneck_length=64,
        base_channels=16,
        max_channels=512,
    ):
        super().__init__()
        self.n_pixels = check_int(n_pixels, "n_pixels")
        self.latent_dim = check_int(latent_dim, "latent_dim")
        self.variational = bool(variational)
        self.negative_slope = check_float(negative_slope, "negative_slope", minimum=0.0)
        self.channels, self.kernel_sizes, self.strides = self._layer_plan(
            self.n_pixels,
            channels,
            kernel_sizes,
            strides,
            max_bottleneck_length=max_bottleneck_length,
            base_channels=base_channels,
            max_channels=max_channels,
        )
        self.padded_length = self.required_length(self.n_pixels, strides=self.strides)
        stride_product = math.prod(self.strides)
        self.bottleneck_shape = (self.channels[-1], self.padded_length // stride_product)
        n_flat = self.bottleneck_shape[0] * self.bottleneck_shape[1]

        in_channels = (1,) + self.channels[:-1]
        layers = []
        for c_in, c_out, k, s in zip(in_channels, self.channels, self.kernel_sizes, self.strides):
            layers += [nn.Conv1d(c_in, c_out, k, stride=s, padding=k // 2), self._activation()]
        self.encoder = nn.Sequential(*layers)
        self.fc_mu = nn.Linear(n_flat, self.latent_dim)
        self.fc_logvar = nn.Linear(n_flat, self.latent_dim) if self.variational else None

        self.fc_decode = nn.Linear(self.latent_dim, n_flat)
        layers = [self._activation()]
        plan = list(zip(self.channels, in_channels, self.kernel_sizes, self.strides))[::-1]
        for i, (c_in, c_out, k, s) in enumerate(plan):
            layers.append(
                nn.ConvTranspose1d(c_in, c_out, k, stride=s, padding=k // 2, output_padding=s - 1)
            )
            if i < len(plan) - 1:
                layers.append(self._activation())
        self.decoder = nn.Sequential(*layers)

    @staticmethod
    def _layer_plan(n_pixels, channels, kernel_sizes, strides, **plan_kwargs):
        if channels is None:
            plan = vae_layer_plan(n_pixels, **plan_kwargs)
            channels = plan["channels"]
            kernel_sizes = plan["kernel_sizes"] if kernel_sizes is None else kernel_sizes
            strides = plan["strides"] if strides is None else strides
        channels = check_int_sequence(channels, "channels")
        n_layers = len(channels)
        if kernel_sizes is None:
            kernel_sizes = _default_kernels(n_layers)
        if strides is None:
            strides = (2,) * (n_layers - 1) + (1,)
        kernel_sizes = check_int_sequence(kernel_sizes, "kernel_sizes")
        strides = check_int_sequence(strides, "strides")
        for name, values in (("kernel_sizes", kernel_sizes), ("strides", strides)):
            if len(values) != n_layers:
                raise ValueError(
                    f"{name} must have one entry per layer ({n_layers}, the length of "
                    f"channels), got {len(values)}"
                )
        if any(k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"kernel_sizes must all be odd ('same' padding), got {kernel_sizes}")
        return channels, kernel_sizes, strides

    @staticmethod
    def required_length(n_pixels, *, strides=None, **plan_kwargs):
        """Input length needed by a network with these strides.

        Parameters
        ----------
        n_pixels : int
            Length of the unpadded spectra.
        strides : sequence of int, default=None
            Encoder strides; derived by `vae_layer_plan` from ``n_pixels`` and
            ``plan_kwargs`` when not given.
        **plan_kwargs
            Passed to `vae_layer_plan`.

        Returns
        -------
        length : int
            ``n_pixels`` rounded up to a multiple of the product of the strides.

        Examples
        --------
        >>> ConvVAE.required_length(327_680, strides=(2,) * 14 + (1,))
        327680
        >>> ConvVAE.required_length(1001)
        1008
        """
        n_pixels = check_int(n_pixels, "n_pixels")
        if strides is None:
            strides = vae_layer_plan(n_pixels, **plan_kwargs)["strides"]
        step = math.prod(check_int_sequence(strides, "strides"))
        return -(-n_pixels // step) * step

    @classmethod
    def sedaghat2021(cls, **overrides):
        """Build the network of Sedaghat et al. (2021), see `SEDAGHAT2021`.

        Parameters
        ----------
        **overrides
            Keyword arguments of `ConvVAE` that replace the published ones
            (for example ``variational=False``).

        Returns
        -------
        vae : `ConvVAE`
            Input length 327,680, 15 encoder layers, a 512 x 20 bottleneck and
            128 latent variables. Build it under ``torch.device("meta")`` to
            inspect shapes without allocating memory.

        Examples
        --------
        >>> import torch
        >>> with torch.device("meta"):
        ...     vae = ConvVAE.sedaghat2021()
        >>> vae.bottleneck_shape, vae.latent_dim
        ((512, 20), 128)
        """
        kwargs = dict(SEDAGHAT2021)
        kwargs.update(overrides)
        return cls(**kwargs)

    def _activation(self):
        return nn.LeakyReLU(self.negative_slope)

    def _as_padded_3d(self, x):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim == 2:
            x = x.unsqueeze(1)
        elif x.ndim != 3 or x.shape[1] != 1:
            raise ValueError(
                "x must have shape (batch, n_pixels) or (batch, 1, n_pixels), "
                f"got {tuple(x.shape)}"
            )
        length = x.shape[-1]
        if length == self.n_pixels and length != self.padded_length:
            x = nn.functional.pad(x, (0, self.padded_length - length))
        elif length != self.padded_length:
            raise ValueError(
                f"x must have {self.n_pixels} (n_pixels) or {self.padded_length} "
                f"(padded_length) pixels, got {length}"
            )
        return x

    def encode(self, x):
        """Mean and log-variance of the latent distribution.

        Parameters
        ----------
        x : Tensor, shape (B, n_pixels), (B, padded_length) or (B, 1, ...)
            Finite flux.

        Returns
        -------
        mu : Tensor, shape (B, latent_dim)
        logvar : Tensor, shape (B, latent_dim), or None
            None when the network is not variational.
        """
        h = self.encoder(self._as_padded_3d(x)).flatten(1)
        logvar = self.fc_logvar(h) if self.variational else None
        return self.fc_mu(h), logvar

    @staticmethod
    def reparameterize(mu, logvar):
        """Draw ``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, 1)``.

        Parameters
        ----------
        mu : Tensor, shape (B, latent_dim)
        logvar : Tensor, shape (B, latent_dim), or None
            With None, ``mu`` is returned.

        Returns
        -------
        z : Tensor, shape (B, latent_dim)
        """
        if logvar is None:
            return mu
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def decode(self, z):
        """Reconstruct spectra from latent vectors.

        Parameters
        ----------
        z : Tensor, shape (B, latent_dim)

        Returns
        -------
        x_hat : Tensor, shape (B, padded_length)
        """
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[1] != self.latent_dim:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"z must have shape (batch, {self.latent_dim}), got {shape}")
        h = self.fc_decode(z).unflatten(1, self.bottleneck_shape)
        return self.decoder(h).squeeze(1)

    def forward(self, x, sample=None):
        """Encode, sample and decode.

        Parameters
        ----------
        x : Tensor, shape (B, n_pixels), (B, padded_length) or (B, 1, ...)
            Finite flux.
        sample : bool, default=None
            Draw ``z`` from the posterior (True) or take its mean (False).
            Default: sample in training mode only. Ignored when the network is
            not variational.

        Returns
        -------
        x_hat : Tensor
            Reconstruction with the shape of ``x`` (padding cropped away when
            ``x`` was not padded).
        mu, logvar, z : Tensor, shape (B, latent_dim)
            ``logvar`` is None when the network is not variational.
        """
        mu, logvar = self.encode(x)
        if sample is None:
            sample = self.training
        z = self.reparameterize(mu, logvar) if sample else mu
        x_hat = self.decode(z)[:, : x.shape[-1]]
        if x.ndim == 3:
            x_hat = x_hat.unsqueeze(1)
        return x_hat, mu, logvar, z

    def extra_repr(self):
        return (
            f"n_pixels={self.n_pixels}, padded_length={self.padded_length}, "
            f"latent_dim={self.latent_dim}, variational={self.variational}"
        )
