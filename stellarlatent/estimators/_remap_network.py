"""How DeepREMAP builds, feeds and trains its network (the hooks of the base's training loop).

`RemapNetwork` holds the network side of DeepREMAP: building
`~stellarlatent.nn.DeepREMAPNet`, its inputs (standardised flux and mask) and
its outputs per batch, the reference set of embeddings (`ReferenceSet`) and
the probabilities and novelty distances of predictions; and the methods
that `TorchEstimator`'s training loop calls: the binned targets and
standardised labels of the training spectra, the focal-cost and triplet
losses per batch, AdamW with the cosine-then-SWA schedule (`CosineSWA`),
the batch-norm statistics of the averaged network and what a checkpoint
keeps of the schedule.
"""

import hashlib

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch.nn.modules.batchnorm import _BatchNorm

from .._logging import log
from ..nn import DeepREMAPNet, FocalCostLoss, class_balance_weights, triplet_loss
from ._base import TrainingDivergedError
from ._binning import digitize
from ._reference import ReferenceSet
from ._swa import CosineSWA

__all__ = ["RemapNetwork"]


class RemapNetwork:
    """The network and training hooks of `DeepREMAP` (a mixin before `TorchEstimator`)."""

    # -- the network -------------------------------------------------------------------

    def _build_module(self, n_pixels, label_bins):
        return DeepREMAPNet(
            n_pixels,
            label_bins,
            in_channels=2,
            contrast_window=self._contrast_window(),
            base_channels=self.base_channels,
            n_stages=self.n_stages,
            blocks_per_stage=self.blocks_per_stage,
            kernel_size=self.kernel_size,
            embedding_dim=self.embedding_dim,
            dropout=self.dropout,
        )

    def _contrast_window(self):
        """The contrast window in pixels (``contrast_window_`` once fitted)."""
        if hasattr(self, "contrast_window_"):
            return self.contrast_window_
        return None if self.contrast_window == "auto" else self.contrast_window

    def _inputs(self, batch):
        flux, mask = batch["flux"], batch["mask"]
        if self.standardize:
            good = (~mask).to(flux.dtype)
            n = good.sum(dim=1, keepdim=True).clamp_min(1.0)
            mean = (flux * good).sum(dim=1, keepdim=True) / n
            var = ((flux - mean).square() * good).sum(dim=1, keepdim=True) / n
            flux = (flux - mean) / var.sqrt().clamp_min(1e-6)
        return flux, mask

    def _outputs(self, source):
        """Yield ``(logits, embedding, raw embedding)`` of each batch as float64 arrays.

        ``logits`` is ``{label: (b, n_bins)}``; the raw embedding is the
        embedding layer's output before the L2 normalisation of the forward
        pass (caught with a forward hook).
        """
        network = self.module_
        network.eval()
        raw = []
        hook = network.embedding.register_forward_hook(
            lambda module, args, output: raw.append(output)
        )
        try:
            with torch.no_grad():
                for _, batch in self._batches(source):
                    raw.clear()
                    out = network(*self._inputs(batch))
                    logits = {k: v.double().cpu().numpy() for k, v in out.logits.items()}
                    yield (logits, out.embedding.double().cpu().numpy(),
                           raw[0].double().cpu().numpy())
        finally:
            hook.remove()

    def _logits(self, source):
        parts = [logits for logits, _, _ in self._outputs(source)]
        return {label: np.concatenate([p[label] for p in parts]) for label in self.bin_edges_}

    def _probabilities(self, logits):
        proba = {}
        for label, values in logits.items():
            scaled = torch.from_numpy(values) / self.temperatures_[label]
            proba[label] = torch.softmax(scaled, dim=1).numpy()
        return proba

    # -- the reference set and predictions ---------------------------------------------

    def _set_reference(self, source):
        """Embed every spectrum of ``source`` as the reference set; set the novelty threshold.

        The threshold is a quantile of the distances from reference spectra
        to their nearest other reference spectrum, in the unnormalised
        embedding (`ReferenceSet.threshold`).
        """
        raw = np.concatenate([raw for _, _, raw in self._outputs(source)])
        self._adopt_reference(ReferenceSet(raw, self._training_values, self._labels,
                                           self.label_units_))
        self.novelty_threshold_ = self._reference.threshold(self.novelty_quantile,
                                                            device=self.device_)

    def _adopt_reference(self, reference):
        self._reference = reference
        self.reference_labels_ = reference.table

    def _predicted(self, source):
        """Yield the bin probabilities and the float32 raw embeddings of each batch."""
        for logits, _, raw in self._outputs(source):
            yield self._probabilities(logits), raw.astype(np.float32)

    def _nearest_distance(self, raws):
        """Distances of raw embeddings (a list of batches) to their nearest reference spectrum."""
        # One search for every spectrum: its distance buffers are allocated once.
        return self._reference.query(np.concatenate(raws), 1, device=self.device_)[0][:, 0]

    def _proba_and_distance(self, X):
        """`predict_proba`'s probabilities and `predict`'s ``embedding_distance`` in one pass.

        Returns
        -------
        proba : dict
            ``{label: ndarray (n_spectra, n_bins)}``.
        distance : ndarray (n_spectra,)
        """
        check_is_fitted(self)
        parts = list(self._predicted(self._check_X(X)))
        proba = {label: np.concatenate([p[label] for p, _ in parts]) for label in self.bin_edges_}
        return proba, self._nearest_distance([raw for _, raw in parts])

    # -- targets and optimisation ------------------------------------------------------

    def _scaled(self, values):
        """Labels standardised with the training location and scale (for the triplet loss)."""
        return ((self._binning_space(values) - self._label_loc) / self._label_scale).astype(
            np.float32
        )

    def _set_targets(self, values, clip):
        targets = np.empty(values.shape, dtype=np.int64)
        for j, label in enumerate(self._labels):
            targets[:, j], n_outside = digitize(values[:, j], self.bin_edges_[label], clip=clip)
            if n_outside:
                edges = self.bin_edges_[label]
                log.warning(
                    "%d values of '%s' lie outside the bins [%g, %g] %s; they count in the edge "
                    "bins", n_outside, label, edges[0], edges[-1], self.label_units_[label],
                )
        self._targets = targets
        self._scaled_labels = self._scaled(values)
        self._training_values = values

    def _setup_training(self, train_idx, n_epochs, lr):
        device = self.device_
        self._losses = {}
        smoothing = self._per_label_number("label_smoothing", self._labels)
        gammas = self._per_label_number("gamma", self._labels)
        for j, label in enumerate(self._labels):
            n_bins = len(self.bin_edges_[label]) - 1
            weights = None
            if self.class_balance:
                known = self._targets[train_idx, j]
                counts = np.bincount(known[known >= 0], minlength=n_bins)
                weights = class_balance_weights(counts)
            self._losses[label] = FocalCostLoss(
                n_bins, gamma=gammas[label], class_weights=weights,
                cost_weight=self.cost_weight, label_smoothing=smoothing[label],
            ).to(device)
        params = [p for p in self.module_.parameters() if p.requires_grad]
        self.optimizer_ = torch.optim.AdamW(params, lr=lr, weight_decay=self.weight_decay)
        self._schedule = CosineSWA(
            self.optimizer_, self.module_, n_epochs, swa_start=self.swa_start,
            swa_lr=lr / 10 if self.swa_lr is None else self.swa_lr,
            restart_period=self.restart_period,
        )

    def _clear_training_state(self):
        for name in ("optimizer_", "_schedule", "_losses", "_targets", "_scaled_labels",
                     "_training_values"):
            if hasattr(self, name):
                delattr(self, name)

    # -- training hooks --------------------------------------------------------------

    def _losses_of(self, batch, indices, network=None):
        network = self.module_ if network is None else network
        out = network(*self._inputs(batch))
        targets = torch.from_numpy(self._targets[indices]).to(self.device_)
        focal = {
            label: self._losses[label](out.logits[label], targets[:, j])
            for j, label in enumerate(self._labels)
        }
        if self.triplet_weight > 0:
            labels = torch.from_numpy(self._scaled_labels[indices]).to(self.device_)
            triplet = triplet_loss(
                out.embedding, labels, margin=self.triplet_margin,
                positive_threshold=self.positive_threshold,
            )
        else:
            triplet = out.embedding.sum() * 0.0
        total_focal = sum(focal.values())
        return total_focal + self.triplet_weight * triplet, total_focal, focal, triplet

    def _training_step(self, batch, indices):
        loss, total_focal, focal, triplet = self._losses_of(
            batch, indices, network=self._training_network())
        record = {"loss": loss, "focal": total_focal.detach(), "triplet": triplet.detach()}
        record.update({f"focal_{label}": value.detach() for label, value in focal.items()})
        return record

    def _evaluate(self, source, indices):
        sums = {}
        self.module_.eval()
        with torch.no_grad():
            for idx, batch in self._batches(source, indices):
                loss, total_focal, focal, triplet = self._losses_of(batch, idx)
                values = {"loss": loss, "focal": total_focal, "triplet": triplet}
                values.update({f"focal_{label}": v for label, v in focal.items()})
                for key, value in values.items():
                    sums[key] = sums.get(key, 0.0) + float(value) * len(idx)
        return {k: v / len(indices) for k, v in sums.items()}

    def _after_epoch(self, epoch):
        self._schedule.step(epoch, self.module_)
        return {"swa_n": self._schedule.n_averaged}

    def _swa_ran(self):
        schedule = getattr(self, "_schedule", None)
        return schedule is not None and schedule.n_averaged > 0

    def _restore_best(self):
        return self.n_iter_no_change is not None and not self._swa_ran()

    def _finish_training(self, source, train_idx):
        if self._swa_ran():
            network = self._schedule.averaged_module
            self._update_batchnorm(network, source, train_idx)
            self.module_ = network
        self.module_.eval()
        self._set_reference(source)
        self._clear_training_state()

    def _update_batchnorm(self, network, source, indices):
        """Recompute the batch-norm statistics of ``network`` on the training spectra.

        The same as `torch.optim.swa_utils.update_bn`, for inputs of flux and
        mask; batch-norm layers of frozen blocks (which stay in evaluation
        mode) keep their statistics.
        """
        network.train()
        layers = [m for m in network.modules() if isinstance(m, _BatchNorm) and m.training]
        momenta = {}
        for layer in layers:
            layer.reset_running_stats()
            momenta[layer] = layer.momentum
            layer.momentum = None
        if layers:
            with torch.no_grad():
                for _, batch in self._batches(source, indices):
                    network(*self._inputs(batch))
        for layer, momentum in momenta.items():
            layer.momentum = momentum
        network.eval()

    def _extra_state(self):
        return self._schedule.state_dict()

    def _load_extra_state(self, extra):
        self._schedule.load_state_dict(extra)

    def _schedule_spans_epochs(self):
        return True  # the cosine schedule and the start of SWA

    def _reads_ivar(self):
        return False  # the network reads flux and mask only

    def _fingerprint_extra(self):
        digest = hashlib.sha256(np.ascontiguousarray(self._targets).tobytes())
        for label in self._labels:
            digest.update(np.asarray(self.bin_edges_[label], dtype=float).tobytes())
        extra = {"stage": self._stage, "labels": digest.hexdigest()}
        if self._stage == "fine_tune":
            # a fine-tuning resumes only from the network it started from, at its settings
            extra["start"] = self._fine_tune_start
        return extra

    def _train(self, source, train_idx, val_idx, sample_weight, checkpoint_dir, seed, n_epochs,
               history):
        try:
            self._run_training(
                source, train_idx, val_idx, n_epochs=n_epochs, history=history,
                sample_weight=sample_weight, checkpoint_dir=checkpoint_dir, seed=seed,
            )
        except TrainingDivergedError:
            # the last good weights were kept: leave a usable model behind
            self.module_.eval()
            self._set_reference(source)
            self._clear_training_state()
            raise


def weights_digest(module):
    """A SHA-256 of a module's weights and buffers, in the order of its state dict."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
