"""SpectralVAE: the convolutional beta-VAE of Sedaghat et al. (2021) as an estimator."""

import numbers

import astropy.units as u
import numpy as np
import torch
from sklearn.base import TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._batch import SpectraBatch, from_batch
from .._params import Interval, Options, Predicate
from ..nn import ConvVAE, linear_warmup, vae_loss
from ._base import TorchEstimator, _check_positive_int, resolve_device
from ._docs import fill_doc

__all__ = ["SpectralVAE"]

_PRESETS = {
    # Sedaghat, Romaniello, Carrick & Pineau (2021), from the paper's public code:
    # HARPS spectra padded to 327,680 px, 15 conv layers, 128 latents, L1 loss,
    # KL weight ramped 0 -> 0.3 between iterations 5k and 20k, Adam lr 1e-4, batch 32.
    "sedaghat2021": {
        "latent_dim": 128,
        "beta": 0.3,
        "beta_warmup": (5000, 20000),
        "variational": True,
        "reconstruction": "l1",
        "channels": (16, 16, 16, 32, 32, 32, 64, 64, 64, 128, 128, 128, 256, 512, 512),
        "kernel_sizes": (7, 5, 5) + (3,) * 12,
        "strides": (2,) * 14 + (1,),
        "lr": 1e-4,
        "batch_size": 32,
    },
    # Median-normalised spectra at R ~ 2000 (MILES) on a 2048-pixel log-uniform grid:
    # chosen on splits of the public MILES training stars (benchmarks/bench_discovery.py).
    "miles": {
        "latent_dim": 8,
        "beta": 0.005,
        "kl_reduction": "sum",
        "variational": True,
        "reconstruction": "l1",
        "line_weight": 1.0,
        "line_window": 51,
        "max_epochs": 450,
        "lr": 2e-3,
        "lr_schedule": "cosine",
        "batch_size": 64,
    },
}


def _is_integer(value, low):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)) \
        and value >= low


def _is_plan(value):
    """A non-empty sequence of positive integers (channels, kernel sizes or strides)."""
    return not isinstance(value, (str, bytes)) and len(value) > 0 and all(
        _is_integer(v, 1) for v in value)


def _is_warmup(value):
    """Two iterations ``(start, stop)`` with ``0 <= start < stop``."""
    if isinstance(value, (str, bytes)):
        return False
    start, stop = value
    return _is_integer(start, 0) and _is_integer(stop, 0) and start < stop


_PLAN = Predicate(_is_plan, "a non-empty sequence of positive integers")


@fill_doc
class SpectralVAE(TransformerMixin, TorchEstimator):
    """Convolutional beta-VAE (or autoencoder) that compresses spectra to a few latents.

    The encoder is a stack of 1-D convolutions (stride 2, leaky ReLU) whose
    depth and channels follow the input length (see
    `stellarlatent.nn.vae_layer_plan`); the decoder mirrors it. Spectra are
    zero-padded, with the padding masked, to the length the strides need.
    After `fit`, `transform` gives the latent means; the diagnostics of
    `stellarlatent.diagnostics` then tell which latents are informative and
    what they track (Sedaghat et al. 2021).

    Parameters
    ----------
    latent_dim : int, default=8
        Number of latent variables.
    beta : float, default=1.0
        Weight of the KL divergence (averaged over the batch, and over the
        latents or summed over them as ``kl_reduction`` says) in the loss; 0
        with ``variational=True`` is an unregularised VAE.
    kl_reduction : {"mean", "sum"}, default="mean"
        Average the KL divergence over the latents, as Sedaghat et al. (2021)
        did, or sum it, as the beta-VAE of Higgins et al. (2017) does. With
        ``"mean"`` each latent is penalised by ``beta / latent_dim``, so at
        one ``beta`` a network with more latents keeps more of them
        informative; with ``"sum"`` the penalty per latent does not depend on
        ``latent_dim``.
    variational : bool, default=True
        True for a (beta-)VAE with the reparametrisation trick; False for a
        deterministic autoencoder (no KL term).
    reconstruction : {"l1", "mse", "chi2"}, default="l1"
        Per-pixel error: absolute (the paper's), squared, or squared and
        weighted by the inverse variance. Masked pixels never count.
    beta_warmup : tuple of two ints, default=None
        Iterations ``(start, stop)``, ``0 <= start < stop``, between which the
        KL weight ramps linearly from 0 to ``beta``; None uses ``beta`` from
        the start.
    line_weight : float, default=0.0
        Weight of a second reconstruction term on the lines alone (the
        residual after a running mean over ``line_window`` pixels, see
        `stellarlatent.nn.vae_loss`). On spectra whose continuum shape
        varies much more from star to star than a Doppler shift moves the
        lines (R ~ 2000, as MILES), the single term lets the network ignore
        the velocity; this term makes the line positions count.
    line_window : int, default=51
        Width in pixels (odd, at least 3) of that running mean; it should
        span several line widths.
    coarse_weight : float, default=0.0
        Weight of a reconstruction term on the residual averaged over
        ``coarse_window`` pixels (see `stellarlatent.nn.vae_loss`). At high
        resolving power (R ~ 50,000) a velocity moves the narrow lines by
        many times their width, and the pixel error gives the network no
        direction towards the right positions; this term does, and lets a
        latent learn the velocity.
    coarse_window : int, default=129
        Width in pixels (odd, at least 3) of that average; it should span
        the largest Doppler shifts of the spectra, in pixels.
    channels, kernel_sizes, strides : tuple of int, default=None
        An explicit encoder plan (positive integers); None derives it from the
        input length.
    max_epochs : int, default=50
        Number of passes over the training spectra.
    batch_size : int, default=32
        Spectra per optimiser step.
    lr : float, default=1e-3
        Learning rate of Adam; positive.
    weight_decay : float, default=0.0
        L2 weight decay of Adam; non-negative.
    lr_schedule : {"constant", "cosine"}, default="constant"
        ``"cosine"`` anneals the learning rate from ``lr`` to 0 over
        ``max_epochs`` along a cosine (`~torch.optim.lr_scheduler.CosineAnnealingLR`,
        stepped once per epoch). Adam's steps do not shrink with the
        gradient, so at a constant rate the means of unused latents keep
        jittering around 0 (a median absolute deviation of 0.01-0.02 after
        hundreds of epochs); annealing lets them settle.
    validation_fraction : float, default=0.1
        Fraction of the spectra held out to monitor the loss, in [0, 1) (0 for
        none).
    n_iter_no_change : int, default=None
        Stop when the validation loss has not improved for this many epochs,
        and keep the best weights; None trains for ``max_epochs``.
    device : str or `torch.device`, default="auto"
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``...
    random_state : int, default=None
        Seed of the weights, the split, the batches and the sampling. The same
        seed gives the same result on CPU.
    %(runtime_parameters)s

    Every parameter is declared in ``_parameter_constraints`` (with the
    training parameters shared with `DeepREMAP`) and checked when `fit`
    starts: a value of the wrong kind or range (``lr=True``,
    ``validation_fraction=None``) raises a ValueError naming the parameter.

    Attributes
    ----------
    module_ : `stellarlatent.nn.ConvVAE`
        The trained network.
    n_features_in_ : int
        Pixels per training spectrum.
    spectral_axis_ : `~astropy.units.Quantity` or None
        The grid of the training spectra, when they were Spectrum objects.
    flux_unit_ : `~astropy.units.UnitBase` or None
        The flux unit of the training spectra, when they were Spectrum
        objects or a store: spectra in another unit of the same quantity are
        converted to it, others refused (nothing is checked for a
        dimensionless, normalised flux).
    history_ : list of dict
        Per-epoch losses (``train_loss``, ``train_reconstruction``,
        ``train_kl``, ``beta``, ``val_...``), learning rate and time.
    n_iter_ : int
        Optimiser steps taken.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = np.linspace(0, 1, 256)
    >>> depth = rng.uniform(0.1, 0.9, 64)
    >>> X = 1 - depth[:, None] * np.exp(-0.5 * ((x - 0.5) / 0.05) ** 2)
    >>> vae = SpectralVAE(latent_dim=2, beta=0.01, max_epochs=3, verbose=0, random_state=0)
    >>> Z = vae.fit(X).transform(X)
    >>> Z.shape
    (64, 2)
    >>> len(vae.history_)
    3
    """

    _parameter_constraints = {
        "latent_dim": [Interval(numbers.Integral, 1, None, closed="left")],
        "beta": [Interval(numbers.Real, 0, None, closed="left",
                          description="a non-negative number")],
        "variational": ["boolean"],
        "reconstruction": [Options("l1", "mse", "chi2")],
        "kl_reduction": [Options("mean", "sum")],
        "beta_warmup": [None, Predicate(_is_warmup, "two iterations (start, stop) with "
                                                    "0 <= start < stop")],
        "line_weight": [Interval(numbers.Real, 0, None, closed="left",
                                 description="a non-negative number")],
        "line_window": [Predicate(lambda v: _is_integer(v, 3) and v % 2 == 1,
                                  "an odd integer >= 3")],
        "coarse_weight": [Interval(numbers.Real, 0, None, closed="left",
                                   description="a non-negative number")],
        "coarse_window": [Predicate(lambda v: _is_integer(v, 3) and v % 2 == 1,
                                    "an odd integer >= 3")],
        "lr_schedule": [Options("constant", "cosine")],
        "channels": [None, _PLAN],
        "kernel_sizes": [None, _PLAN],
        "strides": [None, _PLAN],
    }

    def __init__(
        self,
        latent_dim=8,
        beta=1.0,
        variational=True,
        *,
        reconstruction="l1",
        kl_reduction="mean",
        beta_warmup=None,
        line_weight=0.0,
        line_window=51,
        coarse_weight=0.0,
        coarse_window=129,
        channels=None,
        kernel_sizes=None,
        strides=None,
        max_epochs=50,
        batch_size=32,
        lr=1e-3,
        weight_decay=0.0,
        lr_schedule="constant",
        validation_fraction=0.1,
        n_iter_no_change=None,
        device="auto",
        random_state=None,
        verbose=1,
        num_workers=0,
        precision="float32",
        compile=False,
    ):
        self._store_params(locals())

    @classmethod
    def from_preset(cls, name, **overrides):
        """Build an estimator with a published configuration.

        Parameters
        ----------
        name : {"sedaghat2021", "miles"}
            ``"sedaghat2021"``: the network of Sedaghat et al. (2021) for
            HARPS spectra padded to 327,680 pixels (15 convolutions, a 512 x 20
            bottleneck, 128 latents), L1 reconstruction, KL weight ramped from
            0 to 0.3 between iterations 5,000 and 20,000, Adam with lr 1e-4
            and batches of 32.
            ``"miles"``: discovery on median-normalised spectra of MILES-like
            resolution (R ~ 2000, a 2048-pixel log-uniform grid over
            3650-7300 Angstrom): 8 latents, beta 0.005 on the KL divergence
            summed over the latents (``kl_reduction="sum"``; the same
            objective as beta 0.04 averaged over 8 latents), L1
            reconstruction plus the line term (``line_weight=1``,
            ``line_window=51``), 450 epochs, Adam with lr 2e-3 annealed to 0
            along a cosine (``lr_schedule="cosine"``) and batches of 64.
            Chosen on splits of the public MILES training stars with
            injected velocities (``benchmarks/bench_discovery.py``), where it
            gave one latent for the radial velocity and another for Teff,
            and left half of the latents unused. The epochs and the schedule
            matter: unused latents collapse onto the prior slowly (after 150
            epochs none had), and at a constant learning rate their means
            keep a jitter close to the informative threshold. The summed KL
            term makes the penalty of a latent independent of
            ``latent_dim``: with ``latent_dim=32`` the preset keeps about as
            many latents informative as with 8.
        **overrides
            Parameters that replace the preset's.

        Examples
        --------
        >>> vae = SpectralVAE.from_preset("sedaghat2021", max_epochs=1)
        >>> vae.latent_dim, vae.beta, vae.beta_warmup
        (128, 0.3, (5000, 20000))
        >>> miles = SpectralVAE.from_preset("miles")
        >>> miles.line_weight, miles.beta, miles.kl_reduction
        (1.0, 0.005, 'sum')
        """
        if name not in _PRESETS:
            raise ValueError(f"name must be one of {sorted(_PRESETS)}, got {name!r}")
        params = dict(_PRESETS[name])
        params.update(overrides)
        return cls(**params)

    # -- network ---------------------------------------------------------------------

    def build_module(self, n_pixels):
        """The untrained network for spectra of ``n_pixels`` pixels.

        Build it under ``torch.device("meta")`` to inspect the layers of a
        large network without allocating memory.

        Examples
        --------
        >>> import torch
        >>> with torch.device("meta"):
        ...     net = SpectralVAE.from_preset("sedaghat2021").build_module(312_501)
        >>> net.padded_length, net.bottleneck_shape
        (327680, (512, 20))
        """
        return ConvVAE(
            n_pixels,
            latent_dim=self.latent_dim,
            channels=self.channels,
            kernel_sizes=self.kernel_sizes,
            strides=self.strides,
            variational=self.variational,
        )

    def _current_beta(self):
        if self.beta_warmup is None:
            return float(self.beta)
        start, stop = self.beta_warmup
        return float(linear_warmup(self.n_iter_, start, stop, self.beta))

    # -- fitting ---------------------------------------------------------------------

    def fit(self, X, y=None, sample_weight=None, *, checkpoint_dir=None):
        """Train the network on spectra.

        Parameters
        ----------
        X : array-like (n_spectra, n_pixels), Spectrum, list of Spectrum or SpectralStore
            A batch `~specutils.Spectrum`, a list of them on one grid, or a
            `~stellarlatent.datasets.SpectralStore`.
            Training spectra, already on one grid and normalised (see
            `stellarlatent.preprocessing`). A store is streamed batch by
            batch.
        y : None
            Ignored (unsupervised).
        sample_weight : array-like of shape (n_spectra,), default=None
            Relative sampling weights, for example 1 / (number of spectra of
            the same star) as in Sedaghat et al. (2021): batches are drawn
            with replacement in proportion to them.
        checkpoint_dir : str or `pathlib.Path`, default=None
            Write a checkpoint there after every epoch, and resume from it if
            one from the same data and hyperparameters is found, to the same
            result as an uninterrupted run.

        Returns
        -------
        self
        """
        self._check_params()
        source = self._source(X)
        sample_weight = self._check_sample_weight(sample_weight, len(source))
        seed = self._rng()
        torch.manual_seed(seed)
        self.device_ = resolve_device(self.device)
        self._record_grid(source)
        self.module_ = self.build_module(source.n_pixels).to(self.device_)
        self.optimizer_ = torch.optim.Adam(
            self.module_.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        self._scheduler = None
        if self.lr_schedule == "cosine":
            self._scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer_, T_max=self.max_epochs, eta_min=0.0)
        self.n_iter_ = 0
        train_idx, val_idx = self._split(len(source), seed)
        self.history_ = []
        self._run_training(
            source, train_idx, val_idx, n_epochs=self.max_epochs, history=self.history_,
            sample_weight=sample_weight, checkpoint_dir=checkpoint_dir, seed=seed,
        )
        return self

    def _loss(self, batch, beta, sample=True, network=None):
        network = self.module_ if network is None else network
        x_hat, mu, logvar, _ = network(batch["flux"], sample=sample)
        ivar = batch["ivar"]
        if self.reconstruction == "chi2" and ivar is None:
            ivar = (~batch["mask"]).to(batch["flux"].dtype)
        return vae_loss(
            x_hat, batch["flux"], mu, logvar, mask=batch["mask"], ivar=ivar,
            reconstruction=self.reconstruction, beta=beta,
            line_weight=self.line_weight, line_window=self.line_window,
            coarse_weight=self.coarse_weight, coarse_window=self.coarse_window,
            kl_reduction=self.kl_reduction,
        )

    def _training_step(self, batch, indices):
        beta = self._current_beta()
        total, recon, kl = self._loss(batch, beta, network=self._training_network())
        return {"loss": total, "reconstruction": recon.detach(), "kl": kl.detach(), "beta": beta}

    def _after_epoch(self, epoch):
        if self._scheduler is not None:
            self._scheduler.step()
        return {}

    def _schedule_spans_epochs(self):
        return self.lr_schedule == "cosine"

    def _reads_ivar(self):
        return self.reconstruction == "chi2"  # the other losses weigh pixels by the mask only

    def _extra_state(self):
        return {} if self._scheduler is None else {"scheduler": self._scheduler.state_dict()}

    def _load_extra_state(self, extra):
        if self._scheduler is not None and "scheduler" in extra:
            self._scheduler.load_state_dict(extra["scheduler"])
            self._scheduler.T_max = self.max_epochs

    def _finish_training(self, source, train_idx):
        self._scheduler = None

    def _evaluate(self, source, indices):
        sums = {"loss": 0.0, "reconstruction": 0.0, "kl": 0.0}
        beta = self._current_beta()
        self.module_.eval()
        with torch.no_grad():
            for idx, batch in self._batches(source, indices):
                total, recon, kl = self._loss(batch, beta, sample=False)
                for key, value in zip(sums, (total, recon, kl)):
                    sums[key] += float(value) * len(idx)
        return {k: v / len(indices) for k, v in sums.items()}

    # -- using the model -------------------------------------------------------------

    def _map_batches(self, source, function):
        self.module_.eval()
        out = []
        with torch.no_grad():
            for _, batch in self._batches(source):
                out.append(function(batch))
        return out

    def transform(self, X):
        """Latent means of spectra.

        %(X_parameters)s

        Returns
        -------
        Z : ndarray, shape (n_spectra, latent_dim)
        """
        check_is_fitted(self)
        source = self._check_X(X)
        parts = self._map_batches(source, lambda b: self.module_.encode(b["flux"])[0].cpu())
        return torch.cat(parts).numpy().astype(np.float64)

    def _as_spectrum(self, flux):
        flux = np.asarray(flux, dtype=float)
        axis = self.spectral_axis_
        if axis is None:
            axis = np.arange(self.n_features_in_) * u.pix
        return from_batch(SpectraBatch(flux=flux, spectral_axis=axis))

    def _decode(self, Z):
        Z = torch.as_tensor(np.asarray(Z, dtype=np.float32), device=self.device_)
        self.module_.eval()
        with torch.no_grad():
            flux = self.module_.decode(Z)[:, : self.n_features_in_]
        return flux.cpu().numpy()

    def inverse_transform(self, Z):
        """Decode latent vectors into spectra on the training grid.

        Parameters
        ----------
        Z : array-like, shape (n_spectra, latent_dim)

        Returns
        -------
        `~specutils.Spectrum`
            A batch with the training spectral axis (pixel indices when the
            model was trained on plain arrays).
        """
        check_is_fitted(self)
        Z = np.asarray(Z, dtype=float)
        if Z.ndim != 2 or Z.shape[1] != self.latent_dim:
            raise ValueError(f"Z must have shape (n, {self.latent_dim}), got {Z.shape}")
        return self._as_spectrum(self._decode(Z))

    def reconstruct(self, X):
        """Encode and decode spectra (through the latent means).

        Returns
        -------
        `~specutils.Spectrum`
        """
        return self.inverse_transform(self.transform(X))

    def sample(self, n_samples=1, random_state=None):
        """Draw spectra from the prior: decode ``z ~ N(0, 1)``.

        Returns
        -------
        `~specutils.Spectrum`
            A batch of ``n_samples`` spectra.
        """
        check_is_fitted(self)
        n_samples = _check_positive_int(n_samples, "n_samples")
        Z = np.random.default_rng(random_state).standard_normal((n_samples, self.latent_dim))
        return self.inverse_transform(Z)

    def traverse(self, x, dim, values):
        """Decode one spectrum's latent vector with one latent set to each of ``values``.

        This shows what a latent node does to a spectrum (Sedaghat et al.
        2021, their latent traversals).

        Parameters
        ----------
        x : array-like (n_pixels,) or (1, n_pixels), or a single `~specutils.Spectrum`
            The spectrum whose latent vector is the starting point.
        dim : int
            The latent to vary.
        values : array-like
            Values given to latent ``dim``.

        Returns
        -------
        `~specutils.Spectrum`
            A batch of ``len(values)`` spectra.
        """
        check_is_fitted(self)
        if (isinstance(dim, bool) or not isinstance(dim, (int, np.integer))
                or not 0 <= dim < self.latent_dim):
            raise ValueError(f"dim must be an integer in [0, {self.latent_dim}), got {dim!r}")
        if not hasattr(x, "spectral_axis"):
            x = np.asarray(x, dtype=float)
            if x.ndim == 1:
                x = x[np.newaxis]
        z = self.transform(x)
        if z.shape[0] != 1:
            raise ValueError(f"x must be a single spectrum, got {z.shape[0]}")
        values = np.atleast_1d(np.asarray(values, dtype=float))
        Z = np.repeat(z, values.size, axis=0)
        Z[:, dim] = values
        return self.inverse_transform(Z)

    def score(self, X, y=None):
        """Negative mean loss (reconstruction + beta * KL) on ``X``: higher is better.

        The latent means are decoded, so the score is deterministic.
        """
        check_is_fitted(self)
        source = self._check_X(X)
        return -self._evaluate(source, np.arange(len(source)))["loss"]

    # -- persistence -----------------------------------------------------------------

    def _restore(self, metadata, tensors):
        self._restore_common(metadata)
        self.module_ = self.build_module(self.n_features_in_)
