"""The residual 1-D CNN of deep-REMAP (Gilda 2025, arXiv:2510.09362).

`ResNet1D` is the backbone: a convolutional stem, then stages of residual
blocks whose channels double as the length halves, then global average
pooling. `DeepREMAPNet` adds an embedding head (for the triplet loss and
nearest-neighbour search) and one classification head per stellar label, each
returning logits over that label's bins.
"""

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from ._utils import check_choice, check_float, check_int, check_odd_int

__all__ = ["ResidualBlock1D", "ResNet1D", "DeepREMAPNet", "DeepREMAPOutput"]


def _conv_bn(c_in, c_out, kernel_size, stride=1):
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm1d(c_out),
    )


class ResidualBlock1D(nn.Module):
    """Two convolution + batch-norm layers with a shortcut connection.

    With ``stride=1`` and equal channels the shortcut is the identity (an
    identity block); otherwise it is a 1x1 convolution of the same stride
    followed by batch normalisation (a projection block).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int, default=7
        Odd kernel size of both convolutions.
    stride : int, default=1
        Stride of the first convolution and of the projection shortcut; an
        input of length ``L`` gives ``ceil(L / stride)`` positions.

    Examples
    --------
    >>> import torch
    >>> block = ResidualBlock1D(8, 16, stride=2)
    >>> tuple(block(torch.zeros(2, 8, 101)).shape)
    (2, 16, 51)
    """

    def __init__(self, in_channels, out_channels, kernel_size=7, stride=1):
        super().__init__()
        in_channels = check_int(in_channels, "in_channels")
        out_channels = check_int(out_channels, "out_channels")
        kernel_size = check_odd_int(kernel_size, "kernel_size")
        stride = check_int(stride, "stride")
        self.conv1 = _conv_bn(in_channels, out_channels, kernel_size, stride)
        self.conv2 = _conv_bn(out_channels, out_channels, kernel_size)
        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = _conv_bn(in_channels, out_channels, 1, stride)

    def forward(self, x):
        """Map ``(B, in_channels, L)`` to ``(B, out_channels, ceil(L / stride))``."""
        h = self.conv2(F.relu(self.conv1(x)))
        return F.relu(h + self.shortcut(x))


class ResNet1D(nn.Module):
    """Residual 1-D CNN backbone: stem, residual stages, global average pooling.

    Parameters
    ----------
    in_channels : int, default=1
        Input channels: 1 for flux, 2 for flux and a bad-pixel mask.
    base_channels : int, default=16
        Channels of the stem and of the first stage; each later stage doubles
        them and halves the length.
    n_stages : int, default=4
        Number of stages; all but the first start with a stride-2 projection
        block.
    blocks_per_stage : int, default=2
        Residual blocks per stage.
    kernel_size : int, default=7
        Odd kernel size of the stem and of the residual convolutions.
    stem_stride : int, default=2
        Stride of the stem convolution.

    Attributes
    ----------
    blocks : `~torch.nn.ModuleList`
        The stem followed by every residual block, in order: the units that
        `freeze` counts.
    out_channels : int
        Channels of the pooled features.

    Examples
    --------
    >>> import torch
    >>> net = ResNet1D(base_channels=4, n_stages=3)
    >>> len(net.blocks), net.out_channels
    (7, 16)
    >>> tuple(net(torch.zeros(2, 1, 300)).shape)
    (2, 16)
    """

    def __init__(
        self,
        in_channels=1,
        base_channels=16,
        n_stages=4,
        blocks_per_stage=2,
        kernel_size=7,
        stem_stride=2,
    ):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels")
        base_channels = check_int(base_channels, "base_channels")
        n_stages = check_int(n_stages, "n_stages")
        blocks_per_stage = check_int(blocks_per_stage, "blocks_per_stage")
        kernel_size = check_odd_int(kernel_size, "kernel_size")
        stem_stride = check_int(stem_stride, "stem_stride")
        stem = nn.Sequential(
            *_conv_bn(self.in_channels, base_channels, kernel_size, stem_stride), nn.ReLU()
        )
        blocks = [stem]
        channels = base_channels
        for stage in range(n_stages):
            out_channels = base_channels * 2**stage
            for i in range(blocks_per_stage):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(ResidualBlock1D(channels, out_channels, kernel_size, stride))
                channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = channels
        self.n_frozen = 0

    def forward(self, x):
        """Map ``(B, in_channels, L)`` to pooled features ``(B, out_channels)``."""
        for block in self.blocks:
            x = block(x)
        return x.mean(dim=-1)

    def freeze(self, n_blocks=None):
        """Stop training the first ``n_blocks`` units of `blocks` (all if None).

        Frozen units get ``requires_grad=False`` and keep their batch-norm
        statistics: they stay in evaluation mode even when the network is put
        in training mode. Units after the first ``n_blocks`` are unfrozen.

        Parameters
        ----------
        n_blocks : int, default=None
            Between 0 and ``len(blocks)``.

        Returns
        -------
        self
        """
        if n_blocks is None:
            n_blocks = len(self.blocks)
        n_blocks = check_int(n_blocks, "n_blocks", minimum=0)
        if n_blocks > len(self.blocks):
            raise ValueError(
                f"n_blocks must be <= {len(self.blocks)} (the number of blocks), got {n_blocks}"
            )
        for i, block in enumerate(self.blocks):
            block.requires_grad_(i >= n_blocks)
        self.n_frozen = n_blocks
        return self.train(self.training)

    def unfreeze(self):
        """Make every unit trainable again; returns ``self``."""
        return self.freeze(0)

    def train(self, mode=True):
        """Set training mode, keeping frozen units in evaluation mode."""
        super().train(mode)
        for block in self.blocks[: self.n_frozen]:
            block.eval()
        return self


class DeepREMAPOutput(NamedTuple):
    """What `DeepREMAPNet` returns.

    Attributes
    ----------
    logits : dict of str to Tensor
        ``{label: (B, n_bins)}`` unnormalised log-probabilities over the bins.
    embedding : Tensor, shape (B, embedding_dim)
        L2-normalised when the network has ``normalize_embedding=True``.
    """

    logits: dict
    embedding: torch.Tensor


class DeepREMAPNet(nn.Module):
    """deep-REMAP: a residual CNN with an embedding and one classifier per label.

    Parameters
    ----------
    n_pixels : int or None
        Input length; inputs of another length are refused. None accepts any
        length (the network pools globally).
    label_bins : dict of str to int, or sequence of int
        Number of bins of each label, e.g. ``{"teff": 64, "logg": 32}``; a
        sequence names its labels ``"0"``, ``"1"``, ...
    in_channels : {1, 2}, default=1
        2 feeds the bad-pixel mask to the network as a second channel.
    contrast_window : int or None, default=None
        Odd width in pixels of a running mean of the flux. When set, the
        network also reads the flux minus that running mean (the lines and
        other small-scale features, without the continuum), standardised per
        spectrum over its good pixels, as one more input channel: line depths
        then weigh as much as the continuum shape, whatever the flux
        normalisation. None (the default) reads the flux (and mask) only.
    base_channels, n_stages, blocks_per_stage, kernel_size, stem_stride : int, optional
        Backbone layout, see `ResNet1D`.
    embedding_dim : int, default=64
        Size of the embedding.
    dropout : float, default=0.1
        Dropout probability before the embedding and the heads.
    normalize_embedding : bool, default=True
        Return L2-normalised embeddings (for the triplet loss and cosine
        neighbours).
    head_input : {"features", "embedding"}, default="features"
        Whether the classification heads read the pooled backbone features or
        the (unnormalised) embedding.

    Attributes
    ----------
    backbone : `ResNet1D`
    label_names : tuple of str

    Notes
    -----
    Shapes: ``x`` is ``(B, n_pixels)`` or ``(B, in_channels, n_pixels)``;
    ``mask`` (bool, True = bad pixel) is ``(B, n_pixels)``. A 2-D ``x`` gets
    its masked and non-finite pixels replaced by zero and, with
    ``in_channels=2``, the mask as second channel (all zeros if ``mask`` is
    None), then the contrast channel if ``contrast_window`` is set; a 3-D
    ``x`` (``in_channels`` channels) gets only the contrast channel added,
    computed from its first channel with every pixel good unless
    ``in_channels=2``, whose second channel is then the mask.

    Examples
    --------
    >>> import torch
    >>> net = DeepREMAPNet(200, {"teff": 10, "logg": 5}, base_channels=4, n_stages=2)
    >>> out = net(torch.zeros(3, 200))
    >>> {k: tuple(v.shape) for k, v in out.logits.items()}
    {'teff': (3, 10), 'logg': (3, 5)}
    >>> tuple(out.embedding.shape)
    (3, 64)
    >>> _ = net.freeze()  # the backbone; the heads stay trainable
    >>> any(p.requires_grad for p in net.backbone_parameters())
    False
    >>> lines = DeepREMAPNet(200, [10], in_channels=2, contrast_window=33, base_channels=4)
    >>> lines.backbone.in_channels  # flux, mask and contrast
    3
    """

    def __init__(
        self,
        n_pixels,
        label_bins,
        *,
        in_channels=1,
        contrast_window=None,
        base_channels=16,
        n_stages=4,
        blocks_per_stage=2,
        kernel_size=7,
        stem_stride=2,
        embedding_dim=64,
        dropout=0.1,
        normalize_embedding=True,
        head_input="features",
    ):
        super().__init__()
        self.n_pixels = None if n_pixels is None else check_int(n_pixels, "n_pixels")
        self.label_bins = self._check_label_bins(label_bins)
        self.label_names = tuple(self.label_bins)
        self.in_channels = check_choice(in_channels, "in_channels", (1, 2))
        if contrast_window is not None:
            contrast_window = check_odd_int(contrast_window, "contrast_window", minimum=3)
        self.contrast_window = contrast_window
        self.embedding_dim = check_int(embedding_dim, "embedding_dim")
        self.normalize_embedding = bool(normalize_embedding)
        self.head_input = check_choice(head_input, "head_input", ("features", "embedding"))
        dropout = check_float(dropout, "dropout", minimum=0.0, maximum=1.0)

        self.backbone = ResNet1D(
            in_channels=in_channels + (contrast_window is not None),
            base_channels=base_channels,
            n_stages=n_stages,
            blocks_per_stage=blocks_per_stage,
            kernel_size=kernel_size,
            stem_stride=stem_stride,
        )
        self.dropout = nn.Dropout(dropout)
        self.embedding = nn.Linear(self.backbone.out_channels, self.embedding_dim)
        n_head_in = self.backbone.out_channels if head_input == "features" else self.embedding_dim
        self.heads = nn.ModuleDict(
            {name: nn.Linear(n_head_in, n_bins) for name, n_bins in self.label_bins.items()}
        )

    @staticmethod
    def _check_label_bins(label_bins):
        if isinstance(label_bins, dict):
            items = list(label_bins.items())
        elif isinstance(label_bins, (str, bytes)) or not hasattr(label_bins, "__iter__"):
            raise TypeError(
                "label_bins must be a dict {label: n_bins} or a sequence of int, "
                f"got {label_bins!r}"
            )
        else:
            items = [(str(i), n) for i, n in enumerate(label_bins)]
        if not items:
            raise ValueError("label_bins must name at least one label")
        checked = {}
        for name, n_bins in items:
            if not isinstance(name, str) or not name or "." in name:
                raise ValueError(
                    f"label_bins keys must be non-empty strings without '.', got {name!r}"
                )
            checked[name] = check_int(n_bins, f"label_bins[{name!r}]", minimum=2)
        return checked

    @property
    def blocks(self):
        """The backbone units that `freeze` counts (stem first)."""
        return self.backbone.blocks

    def backbone_parameters(self):
        """Parameters of the convolutional backbone (an iterator)."""
        return self.backbone.parameters()

    def head_parameters(self):
        """Parameters of the embedding and classification heads (an iterator)."""
        yield from self.embedding.parameters()
        yield from self.heads.parameters()

    def freeze(self, n_blocks=None):
        """Freeze the first ``n_blocks`` backbone units (all when None).

        See `ResNet1D.freeze`; the heads stay trainable. Returns ``self``.
        """
        self.backbone.freeze(n_blocks)
        return self

    def unfreeze(self):
        """Make the whole backbone trainable again; returns ``self``."""
        self.backbone.unfreeze()
        return self

    def _prepare_input(self, x, mask):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim == 3 and x.shape[1] == self.in_channels:
            if mask is not None:
                raise ValueError("mask must be None when x already has its channel axis")
            length = x.shape[-1]
        elif x.ndim == 2:
            length = x.shape[-1]
            bad = ~torch.isfinite(x)
            if mask is not None:
                if mask.shape != x.shape:
                    raise ValueError(
                        f"mask must have the shape of x {tuple(x.shape)}, got {tuple(mask.shape)}"
                    )
                bad = bad | mask.to(torch.bool)
            flux = torch.where(bad, 0.0, x)
            if self.in_channels == 2:
                channel = torch.zeros_like(flux) if mask is None else mask.to(flux.dtype)
                x = torch.stack([flux, channel], dim=1)
            else:
                x = flux.unsqueeze(1)
        else:
            raise ValueError(
                f"x must have shape (batch, n_pixels) or (batch, {self.in_channels}, n_pixels), "
                f"got {tuple(x.shape)}"
            )
        if self.n_pixels is not None and length != self.n_pixels:
            raise ValueError(f"x must have {self.n_pixels} pixels (n_pixels), got {length}")
        if self.contrast_window is not None:
            x = torch.cat([x, self._contrast(x)], dim=1)
        return x

    def _contrast(self, x):
        """The first channel minus its running mean over good pixels, standardised."""
        flux = x[:, :1]
        good = 1.0 - x[:, 1:2] if self.in_channels == 2 else torch.ones_like(flux)
        window = self.contrast_window
        kernel = torch.full((1, 1, window), 1.0 / window, dtype=x.dtype, device=x.device)
        local_sum = F.conv1d(flux * good, kernel, padding=window // 2)
        local_n = F.conv1d(good, kernel, padding=window // 2)
        contrast = (flux - local_sum / local_n.clamp_min(1e-3)) * good
        n_good = good.sum(dim=-1, keepdim=True).clamp_min(1.0)
        rms = (contrast.square().sum(dim=-1, keepdim=True) / n_good).sqrt()
        return contrast / rms.clamp_min(1e-6)

    def forward(self, x, mask=None):
        """Logits per label and the embedding.

        Parameters
        ----------
        x : Tensor, shape (B, n_pixels) or (B, in_channels, n_pixels)
        mask : Tensor of bool, shape (B, n_pixels), default=None
            True marks a bad pixel; only with a 2-D ``x``.

        Returns
        -------
        output : `DeepREMAPOutput`
            ``logits`` ``{label: (B, n_bins)}`` and ``embedding``
            ``(B, embedding_dim)``.
        """
        features = self.dropout(self.backbone(self._prepare_input(x, mask)))
        embedding = self.embedding(features)
        head_input = features if self.head_input == "features" else self.dropout(embedding)
        logits = {name: head(head_input) for name, head in self.heads.items()}
        if self.normalize_embedding:
            embedding = F.normalize(embedding, dim=1)
        return DeepREMAPOutput(logits, embedding)
