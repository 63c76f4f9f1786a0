"""What SpectralVAE and DeepREMAP share: devices, seeds, the training loop,
checkpoints and safe persistence."""

import contextlib
import copy
import json
import numbers
import os
import time
from pathlib import Path

import astropy.units as u
import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from .. import __version__
from .._logging import log, progress_bar
from .._params import Converted, Interval, Options, validate_params
from . import _distributed
from ._data import SpectraSource, as_source
from ._files import read_payload, writable_path, write_atomically
from ._stopping import EarlyStopping, TrainingRun

__all__ = ["EarlyStopping", "TorchEstimator", "TrainingDivergedError", "resolve_device"]

_PRECISIONS = {"float32", "bf16-mixed"}
_FORMAT = "stellarlatent-model"
_FORMAT_VERSION = 1


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite.

    The network is reset to the weights of the last complete epoch before
    this is raised; the estimator is fitted only if that epoch exists.
    """


def resolve_device(device):
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a `torch.device` into a device.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", _distributed.local_rank() % torch.cuda.device_count())
    if not isinstance(device, str):
        raise TypeError(f"device must be 'auto', 'cpu', 'cuda' or a torch.device, got {device!r}")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError("device must be 'auto', 'cpu', 'cuda' or 'cuda:N', "
                         f"got {device!r}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but CUDA is not available; use 'cpu'")
    if resolved.type == "cuda" and resolved.index is None and _distributed.is_distributed():
        resolved = torch.device("cuda", _distributed.local_rank() % torch.cuda.device_count())
    return resolved


def _check_positive_int(value, name, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _is_number(value):
    """A real number that is not a bool (True is an int to Python, not a learning rate)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_))


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, u.Quantity):
        return value.to_string()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def saved_params(estimator):
    """The parameters of ``estimator`` as JSON values, its device left out."""
    return _jsonable({k: v for k, v in estimator.get_params(deep=False).items()
                      if k != "device"})


def from_saved_params(cls, params):
    """An unfitted ``cls`` with parameters written by `saved_params` (lists back to tuples)."""
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})


class SeededEstimator(BaseEstimator):
    """Base class of the estimators of stellarlatent (`TorchEstimator` and
    `~stellarlatent.estimators.DeepREMAPEnsemble`).

    Their constructors store every parameter unchanged (`_store_params`);
    their results depend on ``random_state`` and their input may hold NaN.
    """

    def _store_params(self, arguments):
        """Set every constructor parameter from ``arguments``, the constructor's ``locals()``.

        The values are stored as given, as scikit-learn expects (they are
        checked when fitting starts).
        """
        for name in self._get_param_names():
            setattr(self, name, arguments[name])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        tags.input_tags.allow_nan = True
        return tags


class TorchEstimator(SeededEstimator):
    """Base class of the PyTorch estimators of stellarlatent.

    A subclass's ``fit`` checks its parameters, wraps the data with
    `_source`, records the grid with `_record_grid`, builds ``module_``
    and ``optimizer_`` (each estimator knows what its network needs) and
    calls `_run_training`. The loop calls back:

    * ``_training_step(batch, indices)``: a dict whose ``"loss"`` entry is a
      scalar tensor; other entries are floats recorded in the history;
    * ``_evaluate(source, indices)``: the held-out losses, as a dict;
    * `_after_step`, `_after_epoch`, `_restore_best`, `_finish_training`,
      `_extra_state` / `_load_extra_state` (defaults do nothing);
    * `_fingerprint_extra`: what a checkpoint must match besides the
      parameters (minus `_fingerprint_ignored`) and the spectra.
    """

    # -- parameters ------------------------------------------------------------------

    #: The training parameters every estimator shares (see `stellarlatent._params`);
    #: subclasses add theirs.
    _parameter_constraints = {
        "max_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "lr": [Interval(numbers.Real, 0, None, closed="neither", description="a positive number")],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left",
                                  description="a non-negative number")],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "n_iter_no_change": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "device": [Converted(lambda value, name: resolve_device(value),
                             "'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device")],
        "random_state": [None, Interval(numbers.Integral, 0, 2**32 - 1, closed="both"),
                         np.random.RandomState],
        "verbose": [Interval(numbers.Integral, 0, None, closed="left"), "boolean"],
        "num_workers": [Interval(numbers.Integral, 0, None, closed="left")],
        "precision": [Options(*sorted(_PRECISIONS))],
        "compile": ["boolean"],
    }

    def _check_params(self):
        """Check every parameter against the declared constraints (those of the base too).

        Raises
        ------
        `~stellarlatent._params.InvalidParameterError`
            A ValueError and TypeError naming the parameter.
        """
        validate_params(self)

    def _rng(self):
        seed = self.random_state
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        elif isinstance(seed, np.random.RandomState):
            seed = int(seed.randint(2**31 - 1))
        elif isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
            # True is an int to Python, not a seed (the declared table refuses it too)
            raise ValueError(f"random_state must be None or an integer, got {seed!r}")
        return int(seed)

    # -- data ------------------------------------------------------------------------

    @staticmethod
    def _source(X, name="X"):
        return as_source(X, name)

    @staticmethod
    def _check_sample_weight(sample_weight, n):
        if sample_weight is None:
            return None
        sample_weight = np.asarray(sample_weight, dtype=float)
        if sample_weight.shape != (n,):
            raise ValueError(f"sample_weight must have shape ({n},), got {sample_weight.shape}")
        if not np.all(np.isfinite(sample_weight)) or np.any(sample_weight < 0):
            raise ValueError("sample_weight must be finite and non-negative")
        return sample_weight

    def _check_X(self, X, name="X"):
        """The data source of ``X``, checked against the training grid.

        The length must match; when both the input and the training spectra
        carry a spectral axis, the axes must be the same (to a thousandth of
        a pixel) and so must their air/vacuum convention where both say.
        """
        source = self._source(X, name)
        if source.n_pixels != self.n_features_in_:
            recorded = getattr(self, "preprocessing_", None) is not None
            raise ValueError(
                f"{name} has {source.n_pixels} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input (the pixels of its training grid); "
                + ("the model records the preprocessing of its training spectra, which "
                   "'stellarlatent predict' applies to raw files (for a bundled model, "
                   "stellarlatent.pretrained.pipeline(name) in Python)"
                   if recorded else "resample the spectra onto the training grid first")
            )
        source = self._in_training_order(source, name)
        self._check_grid(source, name)
        return self._in_training_unit(source, name)

    def _in_training_unit(self, source, name):
        """``source`` with its flux in the unit of the training spectra.

        Nothing is checked where either unit is unknown (plain arrays, or a
        unit astropy does not recognise), nor for a model trained on a
        dimensionless (normalised) flux: whether other spectra went through
        the same normalisation is not a matter of their unit.
        """
        trained = getattr(self, "flux_unit_", None)
        given = getattr(source, "flux_unit", None)
        unknown = (trained is None or given is None or isinstance(trained, u.UnrecognizedUnit)
                   or isinstance(given, u.UnrecognizedUnit)
                   or trained.physical_type == "dimensionless")
        if unknown or given == trained:
            return source
        if not given.is_equivalent(trained) or not isinstance(source, SpectraSource):
            convertible = given.is_equivalent(trained)
            raise ValueError(
                f"{name} has flux in {given.to_string()!r}, but {type(self).__name__} was trained "
                f"on flux in {trained.to_string()!r}; "
                + ("build the store in the model's flux unit" if convertible else
                   f"convert them with Spectrum.with_flux_unit({trained.to_string()!r}) where "
                   "that is the same quantity, or bring them through the preprocessing of the "
                   "training spectra (for example the same normalisation)")
            )
        return source.in_unit(trained)

    def _in_training_order(self, source, name):
        """``source`` with its pixels reversed when its axis runs against the training one.

        Spectra on a frequency axis increase in frequency, so their pixels run
        from red to blue where a wavelength grid runs from blue to red.
        """
        trained = getattr(self, "spectral_axis_", None)
        given = source.spectral_axis
        if trained is None or given is None:
            return source
        try:
            values = given.to_value(trained.unit, equivalencies=u.spectral())
        except u.UnitConversionError:
            return source  # _check_grid says why
        if (values[-1] - values[0]) * (trained.value[-1] - trained.value[0]) > 0:
            return source
        if not isinstance(source, SpectraSource):
            raise ValueError(
                f"{name}: its pixels run from {given[0]:.6g} to {given[-1]:.6g}, against the "
                f"order of the training grid ({_describe_grid(trained)}); build the store on "
                "the model's grid, for example with stellarlatent.preprocessing.Resampler"
                "(SpectralGrid(model.spectral_axis_))"
            )
        return source.reversed()

    def _record_grid(self, source):
        """Remember the spectral axis and its air/vacuum convention of the training spectra.

        A preprocessing recorded for earlier training spectra (a loaded model
        fitted again) is forgotten: it need not be these spectra's.
        """
        if getattr(self, "preprocessing_", None) is not None:
            log.warning("%s.fit: the preprocessing recorded for the earlier training spectra is "
                        "forgotten (preprocessing_ is None); record that of the new ones if "
                        "'stellarlatent predict' is to apply it to raw files",
                        type(self).__name__)
        self.preprocessing_ = None
        self.n_features_in_ = source.n_pixels
        self.spectral_axis_ = source.spectral_axis
        self.wavelength_medium_ = getattr(source, "wavelength_medium", None)
        self.flux_unit_ = getattr(source, "flux_unit", None)

    def _check_grid(self, source, name):
        trained = getattr(self, "spectral_axis_", None)
        given = source.spectral_axis
        if trained is not None and given is not None:
            mismatch = _grid_mismatch(given, trained)
            if mismatch is not None:
                raise ValueError(
                    f"{name} is on the spectral grid {_describe_grid(given)}, but "
                    f"{type(self).__name__} was trained on {_describe_grid(trained)} "
                    f"({mismatch}); resample the spectra onto the model's spectral_axis_ first, "
                    "for example with stellarlatent.preprocessing.Resampler"
                    "(SpectralGrid(model.spectral_axis_))"
                )
        trained_medium = getattr(self, "wavelength_medium_", None)
        given_medium = getattr(source, "wavelength_medium", None)
        if trained_medium and given_medium and trained_medium != given_medium:
            raise ValueError(
                f"{name} has {given_medium} wavelengths, but {type(self).__name__} was trained on "
                f"{trained_medium} wavelengths; convert them first with "
                f"stellarlatent.preprocessing.{given_medium}_to_{trained_medium} and resample"
            )

    def _split(self, n, seed):
        rng = np.random.default_rng(seed)
        order = rng.permutation(n)
        n_val = int(round(n * self.validation_fraction))
        if n_val == 0 or n - n_val < 1:
            return np.sort(order), np.array([], dtype=int)
        return np.sort(order[n_val:]), np.sort(order[:n_val])

    def _to_device(self, batch):
        return {k: (None if v is None else v.to(self.device_, non_blocking=True))
                for k, v in batch.items()}

    def _iter_minibatches(self, n, generator, weights=None, shuffle=True):
        if weights is not None:
            order = torch.multinomial(weights, n, replacement=True, generator=generator)
        elif shuffle:
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        for start in range(0, n, self.batch_size):
            yield order[start : start + self.batch_size].numpy()

    def _loader(self, source, index_batches):
        """Iterate ``(indices, batch on the device)`` over lists of spectrum indices.

        A `torch.utils.data.DataLoader` reads the batches: in ``num_workers``
        background processes when asked (with prefetching), into pinned
        memory when the network lives on a GPU, so that reading the next
        batch overlaps the computation on this one.
        """
        index_batches = [np.asarray(b, dtype=np.int64) for b in index_batches]
        num_workers = int(getattr(self, "num_workers", 0))
        pin = self.device_.type == "cuda"
        if num_workers == 0 and not pin:
            for idx in index_batches:
                yield idx, self._to_device(source.batch(idx))
            return
        loader = torch.utils.data.DataLoader(
            _BatchReader(source), batch_size=None, sampler=index_batches,
            num_workers=num_workers, pin_memory=pin, collate_fn=_as_is,
            prefetch_factor=4 if num_workers else None,
            persistent_workers=False,
            # Its own generator, so that worker seeding leaves the global RNG
            # (the VAE's sampling noise) as it would be without workers.
            generator=torch.Generator().manual_seed(0),
        )
        for idx, batch in loader:
            yield idx, self._to_device(batch)

    def _batches(self, source, indices=None):
        """``(indices, device batch)`` over ``indices`` (default all) in order, in chunks of
        ``batch_size``."""
        if indices is None:
            indices = np.arange(len(source))
        indices = np.asarray(indices)
        chunks = [indices[start : start + self.batch_size]
                  for start in range(0, len(indices), self.batch_size)]
        return self._loader(source, chunks)

    def _autocast(self):
        """The autocast context of ``precision`` (a no-op for float32)."""
        if getattr(self, "precision", "float32") == "bf16-mixed":
            return torch.autocast(self.device_.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _training_network(self):
        """The network the training step calls: wrapped for DDP and compiled when asked."""
        wrapped = getattr(self, "_wrapped_module", None)
        return self.module_ if wrapped is None else wrapped

    # -- training loop ---------------------------------------------------------------

    #: Parameters that do not change the result of training, left out of checkpoint fingerprints.
    _fingerprint_ignored = ("verbose", "device", "max_epochs", "num_workers")

    def _encoded_params(self):
        """``get_params()`` with values JSON can hold (subclasses convert theirs)."""
        return self.get_params()

    def _fingerprint_extra(self):
        """What else besides parameters and spectra a checkpoint must match (subclasses extend)."""
        return {}

    def _reads_ivar(self):
        """Whether training reads the inverse variance (else checkpoints ignore it)."""
        return True

    def _schedule_spans_epochs(self):
        """Whether the learning-rate schedule is laid over the epochs asked for, so that a
        checkpoint of a run of another length resumes a run no fresh one would give."""
        return False

    def _fingerprint(self, source, n_epochs=None):
        """A string that changes when the parameters, the spectra or the targets change.

        It covers the parameters that matter (all but `_fingerprint_ignored`),
        the spectra themselves (a hash of the flux, mask and inverse
        variance, see ``source.digest``) and `_fingerprint_extra`, so a
        checkpoint is never resumed on other data of the same shape, and
        ``n_epochs`` where the schedule spans them (`_schedule_spans_epochs`).
        """
        params = {k: v for k, v in self._encoded_params().items()
                  if k not in self._fingerprint_ignored}
        epochs = {"epochs": int(n_epochs)} if (
            n_epochs is not None and self._schedule_spans_epochs()) else {}
        return json.dumps(
            _jsonable({"class": type(self).__name__, "params": params, "n": len(source),
                       "n_pixels": source.n_pixels, "data": source.digest(ivar=self._reads_ivar()),
                       **epochs, **self._fingerprint_extra()}),
            sort_keys=True,
            default=str,
        )

    def _run_training(self, source, train_idx, val_idx, *, n_epochs, history, sample_weight=None,
                      checkpoint_dir=None, seed=0):
        """Train ``self.module_`` for ``n_epochs`` with the subclass hooks.

        One epoch is three steps: `_train_epoch` (the optimiser steps over
        the training spectra), `_validate_epoch` (the held-out loss) and
        `_end_epoch` (history, best weights, checkpoint, and whether to stop
        early). Each epoch's record is appended to ``history`` (a list the
        caller owns, so that `~DeepREMAP.fine_tune` keeps its own).

        Under `torch.distributed` (for example launched by ``torchrun``) every
        process draws the same global batches from the same seeded generator
        and takes its share of each (a distributed sampler over the training
        spectra); `~torch.nn.parallel.DistributedDataParallel` averages the
        gradients, and every loss is rescaled by the share's size so that the
        step equals the one of a single process on the whole batch. Only rank
        0 shows progress and writes checkpoints.
        """
        module = self.module_
        generator = torch.Generator().manual_seed(seed)
        weights = None
        if sample_weight is not None:
            weights = torch.as_tensor(np.asarray(sample_weight, dtype=float)[train_idx],
                                      dtype=torch.double)
            if weights.sum() <= 0:
                raise ValueError(
                    "sample_weight must not be all zero over the training spectra; "
                    "give some spectra a positive weight"
                )
        run = TrainingRun(
            history=history, generator=generator,
            stopping=EarlyStopping(self.n_iter_no_change, monitor_only=not len(val_idx)),
        )
        history.clear()
        checkpoint = self._open_checkpoint(checkpoint_dir, source, run, n_epochs)
        if run.epoch > n_epochs:
            log.warning("%s: the checkpoint holds %d epochs, more than the %d asked; the network "
                        "is returned as it is (delete the checkpoint to train %d epochs anew)",
                        type(self).__name__, run.epoch, n_epochs, n_epochs)
        self._wrapped_module = self._wrap_for_training(module)
        self.n_iter_ = run.iteration
        rank = _distributed.rank()
        shown = bool(self.verbose) and rank == 0
        run.last_good = copy.deepcopy(module.state_dict())
        try:
            with progress_bar(total=n_epochs - run.epoch, enabled=shown,
                              desc=type(self).__name__, unit="epoch", leave=False) as bar:
                for epoch in range(run.epoch, n_epochs):
                    started = time.perf_counter()
                    record = {"epoch": epoch + 1}
                    record.update(self._train_epoch(source, train_idx, epoch, run, weights))
                    record.update(self._after_epoch(epoch))
                    record.update(self._validate_epoch(source, val_idx))
                    record["lr"] = self.optimizer_.param_groups[0]["lr"]
                    record["time"] = time.perf_counter() - started
                    bar.set_postfix({k: f"{v:.4g}" for k, v in record.items()
                                     if k in ("train_loss", "val_loss")}, refresh=False)
                    bar.update(1)
                    if self._end_epoch(record, run, checkpoint):
                        break
        finally:
            self._wrapped_module = None
        if self._restore_best() and run.stopping.best_state is not None and len(val_idx):
            module.load_state_dict(run.stopping.best_state)
        self._finish_training(source, train_idx)
        module.eval()
        return history

    def _wrap_for_training(self, module):
        """The network the training steps call: DDP-wrapped and compiled when asked, else None."""
        network = module
        if _distributed.world_size() > 1:
            if self.device_.type == "cuda":
                network = torch.nn.SyncBatchNorm.convert_sync_batchnorm(network)
            network = torch.nn.parallel.DistributedDataParallel(
                network, device_ids=[self.device_.index] if self.device_.type == "cuda" else None,
            )
        if self.compile:
            network = torch.compile(network)
        return None if network is module else network

    def _open_checkpoint(self, checkpoint_dir, source, run, n_epochs=None):
        """The checkpoint file (resumed into ``run`` when one exists), or None."""
        if checkpoint_dir is None:
            return None
        checkpoint_dir = checkpoint_folder(checkpoint_dir)
        run.fingerprint = self._fingerprint(source, n_epochs)
        checkpoint = checkpoint_dir / "checkpoint.pt"
        if _distributed.rank() == 0:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
        _distributed.barrier()
        if checkpoint.exists():
            self._resume(checkpoint, run)
        return checkpoint

    def _train_epoch(self, source, train_idx, epoch, run, weights):
        """One pass of optimiser steps; the mean of each training-step output, as ``train_*``."""
        module, optimizer = self.module_, self.optimizer_
        world, rank = _distributed.world_size(), _distributed.rank()
        module.train()
        totals, count = {}, 0
        global_batches = [train_idx[idx] for idx in
                          self._iter_minibatches(len(train_idx), run.generator, weights)]
        if world > 1:
            # A share must hold a spectrum on every rank: a last batch
            # smaller than the number of processes is left out.
            global_batches = [b for b in global_batches if len(b) >= world]
        shares = [batch[rank::world] for batch in global_batches]
        for batch_number, (indices, batch) in enumerate(self._loader(source, shares)):
            with self._autocast():
                out = self._training_step(batch, indices)
            loss = out["loss"]
            finite = bool(torch.isfinite(loss.detach()))
            if world > 1:
                finite = _distributed.all_true(finite, self.device_)
            if not finite:
                module.load_state_dict(run.last_good)
                raise TrainingDivergedError(
                    f"the training loss became {loss.item()} at epoch {epoch + 1}, batch "
                    f"{batch_number + 1}; the network was reset to the weights of the last "
                    "complete epoch. Lower lr, check the input for extreme values, or "
                    "normalise the flux."
                )
            if world > 1:
                loss = loss * (len(indices) * world / len(global_batches[batch_number]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            self._after_step()
            run.iteration += 1
            self.n_iter_ = run.iteration
            n_batch = len(indices)
            count += n_batch
            for key, value in out.items():
                value = value.detach() if torch.is_tensor(value) else value
                totals[key] = totals.get(key, 0.0) + float(value) * n_batch
        if world > 1:
            totals, count = _distributed.sum_totals(totals, count, self.device_)
            _distributed.average_buffers(module)
        return {f"train_{k}": v / max(count, 1) for k, v in totals.items()}

    def _validate_epoch(self, source, val_idx):
        """The held-out losses, as ``val_*`` (nothing without validation spectra)."""
        if not len(val_idx):
            return {}
        with self._autocast():
            evaluated = self._evaluate(source, val_idx)
        return {f"val_{k}": v for k, v in evaluated.items()}

    def _end_epoch(self, record, run, checkpoint):
        """Record the epoch, keep the best weights, checkpoint; True when training should stop."""
        rank = _distributed.rank()
        run.history.append(record)
        run.last_good = copy.deepcopy(self.module_.state_dict())
        monitored = record.get("val_loss", record.get("train_loss"))
        if run.stopping.update(monitored):
            run.stopping.best_state = copy.deepcopy(self.module_.state_dict())
        run.epoch = record["epoch"]
        if rank == 0:
            log.debug("%s epoch %d: %s", type(self).__name__, run.epoch, record)
        if checkpoint is not None:
            if rank == 0:
                self._save_checkpoint(checkpoint, run)
            _distributed.barrier()
        if run.stopping.should_stop:
            if rank == 0:
                log.info("%s: early stop after epoch %d (no improvement in %d epochs)",
                         type(self).__name__, run.epoch, run.stopping.patience)
            return True
        return False

    # Hooks with defaults ------------------------------------------------------------

    def _after_step(self):
        """Called after every optimiser step."""

    def _after_epoch(self, epoch):
        """Called at the end of every epoch; returns extra history entries."""
        return {}

    def _restore_best(self):
        return self.n_iter_no_change is not None

    def _finish_training(self, source, train_idx):
        """Called once training ends."""

    def _extra_state(self):
        """Tensors and plain values to checkpoint besides the module and optimiser."""
        return {}

    def _load_extra_state(self, extra):
        pass

    # -- checkpoints -----------------------------------------------------------------

    def _save_checkpoint(self, path, run):
        payload = {
            "fingerprint": run.fingerprint,
            "module": self.module_.state_dict(),
            "optimizer": self.optimizer_.state_dict(),
            "generator": run.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "state": {"epoch": run.epoch, "iteration": run.iteration,
                      "best_loss": run.stopping.best, "bad_epochs": run.stopping.bad_epochs},
            "best_state": run.stopping.best_state,
            "history": json.dumps(run.history),
            "extra": self._extra_state(),
        }
        tmp = path.with_suffix(".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)

    def _resume(self, path, run):
        try:
            payload = torch.load(path, map_location=self.device_, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
            raise ValueError(
                f"checkpoint {path} cannot be read ({exc}); delete it to start afresh"
            ) from exc
        if payload.get("fingerprint") != run.fingerprint:
            raise ValueError(
                f"checkpoint {path} was written for other data or hyperparameters "
                f"({_fingerprint_difference(payload.get('fingerprint'), run.fingerprint)}); "
                "use another checkpoint folder (checkpoint_dir, --checkpoint-dir) or delete "
                "the file"
            )
        self.module_.load_state_dict(payload["module"])
        self.optimizer_.load_state_dict(payload["optimizer"])
        run.generator.set_state(payload["generator"])
        torch.set_rng_state(payload["torch_rng"])
        state = payload["state"]
        run.epoch, run.iteration = int(state["epoch"]), int(state["iteration"])
        run.stopping.best = float(state["best_loss"])
        run.stopping.bad_epochs = int(state["bad_epochs"])
        run.stopping.best_state = payload["best_state"]
        run.history[:] = json.loads(payload["history"])
        self._load_extra_state(payload["extra"])
        log.info("%s: resumed from %s after epoch %d", type(self).__name__, path, run.epoch)

    # -- persistence -----------------------------------------------------------------

    def _metadata(self):
        """JSON-serialisable fitted state besides the weights (subclasses extend)."""
        axis = getattr(self, "spectral_axis_", None)
        return {
            "params": saved_params(self),
            "n_features_in": int(self.n_features_in_),
            "spectral_axis": None if axis is None else {
                "values": axis.value.tolist(), "unit": axis.unit.to_string()},
            "wavelength_medium": getattr(self, "wavelength_medium_", None),
            "flux_unit": (None if getattr(self, "flux_unit_", None) is None
                          else self.flux_unit_.to_string()),
            "history": self.history_,
            "n_iter": int(getattr(self, "n_iter_", 0)),
            "preprocessing": getattr(self, "preprocessing_", None),
        }

    def _tensors(self):
        """Tensors to save besides the module weights (subclasses extend)."""
        return {}

    def save(self, path):
        """Save the fitted estimator to one file.

        The file holds the weights and plain values only (package version,
        hyperparameters, spectral grid, training history, as JSON), so
        `load` reads it with ``torch.load(..., weights_only=True)`` and never
        unpickles arbitrary objects.

        The preprocessing the training spectra went through is kept too when
        the estimator has a ``preprocessing_`` attribute: a JSON-serialisable
        description of the pipeline (set by ``stellarlatent fit-vae`` and
        ``fit-remap`` from the store's ``meta["preprocessing"]``), which
        ``stellarlatent predict`` applies to raw files. `load` restores it
        (None when the file has none).

        Under `torch.distributed` only rank 0 writes; the other processes
        return at once, so every process may call ``save``.

        Parameters
        ----------
        path : str or `pathlib.Path`
            Where to write (conventionally ``*.pt``).

        Raises
        ------
        TypeError
            If ``preprocessing_`` cannot be written as JSON.
        """
        check_is_fitted(self)
        if _distributed.rank() != 0:
            return Path(path)
        try:
            json.dumps(getattr(self, "preprocessing_", None))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"preprocessing_ must be JSON-serialisable: {exc}") from None
        payload = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "estimator": type(self).__name__,
            "version": __version__,
            "metadata": json.dumps(self._metadata(), default=str),
            "state_dict": {k: v.detach().cpu() for k, v in self.module_.state_dict().items()},
            "tensors": {k: v.detach().cpu() for k, v in self._tensors().items()},
        }
        return write_atomically(payload, writable_path(path), "the model")

    @classmethod
    def load(cls, path, device="auto"):
        """Load an estimator written by `save`.

        Parameters
        ----------
        path : str or `pathlib.Path`
        device : str or `torch.device`, default="auto"
            Where to put the network.

        Raises
        ------
        ValueError
            If the file is not a readable stellarlatent model of this class.
        """
        path = Path(path)
        resolved = resolve_device(device)  # a bad device is the caller's error, not the file's
        payload = read_payload(path, _FORMAT, _FORMAT_VERSION, f"a {cls.__name__} file")
        if payload.get("estimator") != cls.__name__:
            raise ValueError(
                f"{path} holds a {payload.get('estimator')}, not a {cls.__name__}; "
                f"use {payload.get('estimator')}.load"
            )
        try:
            metadata = json.loads(payload["metadata"])
            params = metadata["params"]
            estimator = from_saved_params(cls, params)
            estimator.set_params(device=device)
            estimator.device_ = resolved
            estimator._restore(metadata, payload["tensors"])
            estimator.module_.load_state_dict(payload["state_dict"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            # json.JSONDecodeError is a ValueError: a corrupt metadata block lands here too
            raise ValueError(
                f"{path} is not a readable {cls.__name__} model (damaged, or incompatible with "
                f"this version of stellarlatent): {exc}"
            ) from exc
        estimator.module_.to(estimator.device_).eval()
        return estimator

    def _restore_common(self, metadata):
        self.n_features_in_ = metadata["n_features_in"]
        axis = metadata.get("spectral_axis")
        self.spectral_axis_ = (None if axis is None
                               else np.asarray(axis["values"]) * u.Unit(axis["unit"]))
        self.wavelength_medium_ = metadata.get("wavelength_medium")
        unit = metadata.get("flux_unit")  # absent from files of earlier versions
        self.flux_unit_ = None if unit is None else u.Unit(unit, parse_strict="silent")
        self.history_ = metadata["history"]
        self.n_iter_ = metadata.get("n_iter", 0)
        self.preprocessing_ = metadata.get("preprocessing")

    def _restore(self, metadata, tensors):  # pragma: no cover - abstract
        raise NotImplementedError


def _grid_mismatch(given, trained):
    """None when two spectral axes agree to 1e-3 pixel; otherwise what differs, in words."""
    try:
        values = given.to_value(trained.unit, equivalencies=u.spectral())
    except u.UnitConversionError:
        return f"'{given.unit}' is not a spectral unit convertible to '{trained.unit}'"
    reference = trained.value
    if values.shape != reference.shape:
        return f"{values.size} pixels against {reference.size}"
    tolerance = 1e-3 * np.min(np.abs(np.diff(reference)))
    offset = np.abs(values - reference)
    if np.all(offset <= tolerance):
        return None
    worst = int(np.argmax(offset))
    return (f"pixel {worst} is at {values[worst]:.6g} instead of {reference[worst]:.6g} "
            f"{trained.unit}")


def _describe_grid(axis):
    return f"{axis[0].value:.6g}-{axis[-1].value:.6g} {axis.unit} ({axis.size} pixels)"


class _BatchReader(torch.utils.data.Dataset):
    """A map-style dataset whose items are whole batches, keyed by arrays of indices.

    It lets a `~torch.utils.data.DataLoader` read the training loop's own
    batches (drawn in the main process from the seeded generator) in worker
    processes.
    """

    def __init__(self, source):
        self.source = source

    def __len__(self):
        return len(self.source)

    def __getitem__(self, indices):
        return indices, self.source.batch(indices)


def _as_is(item):
    return item


def checkpoint_folder(path):
    """``checkpoint_dir`` as a Path; a file there is refused (a folder is made when missing)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"checkpoint_dir {path} is a file; expected a folder (or a "
                                 "new path)")
    return path


#: what the entries of a checkpoint fingerprint are, in words
_FINGERPRINT_PARTS = {
    "class": "the estimator", "n": "the number of spectra", "n_pixels": "the number of pixels",
    "data": "the spectra", "labels": "the labels or their bins", "stage": "the training step",
    "start": "the weights, learning rate or frozen blocks a fine-tuning starts from",
}


def _fingerprint_difference(old, new):
    """What differs between two checkpoint fingerprints, in words (for the refusal)."""
    try:
        old, new = json.loads(old), json.loads(new)
    except (TypeError, ValueError):
        return "a checkpoint of another version"
    said = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key):
            continue
        if key == "params":
            names = sorted(k for k in set(old.get(key, {})) | set(new.get(key, {}))
                           if old.get(key, {}).get(k) != new.get(key, {}).get(k))
            said.append(f"parameters {', '.join(names)}")
        elif key == "epochs":
            said.append(f"epochs: {old.get(key, 'not recorded')} in the checkpoint, "
                        f"{new.get(key)} now (its learning-rate schedule spans them)")
        else:
            said.append(_FINGERPRINT_PARTS.get(key, key))
    return "; ".join(said) or "unknown"
