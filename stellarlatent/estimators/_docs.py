"""Parameter descriptions that several estimators share, filled into their docstrings."""

from .._docfill import doc_filler

__all__ = ["fill_doc"]

_SNIPPETS = {
    # the training loop's runtime options (TorchEstimator)
    "runtime_parameters": """\
verbose : int, default=1
    0 for silence, 1 for a progress bar.
num_workers : int, default=0
    Background processes reading batches (a `torch.utils.data.DataLoader`
    with prefetching; batches go to pinned memory when the network is on
    a GPU). 0 reads in the training process, best for data in memory;
    a few workers keep a GPU fed from a `~stellarlatent.datasets.SpectralStore`.
precision : {"float32", "bf16-mixed"}, default="float32"
    ``"bf16-mixed"`` runs the training forward passes under bfloat16
    autocast (weights and optimiser stay float32): about twice the
    throughput on recent GPUs, for a small loss of precision.
compile : bool, default=False
    Compile the training network with `torch.compile` (worth it for long
    GPU runs; the first epoch pays the compilation).
""",
    # the only parameter of predict, predict_proba and transform: spectra
    "X_parameters": """\
Parameters
----------
X : array-like (n_spectra, n_pixels), Spectrum or SpectralStore
    Spectra on the training grid: an array, a batch `~specutils.Spectrum` or
    a `~stellarlatent.datasets.SpectralStore`.
""",
    # DeepREMAPEnsemble.pretrain and fit
    "ensemble_fit_parameters": """\
Parameters
----------
X, y, sample_weight
    As in `DeepREMAP.fit`.
checkpoint_dir : str or `pathlib.Path`, default=None
    Member m writes a checkpoint after every epoch in
    ``checkpoint_dir/member-m`` and resumes from one written for the same
    data and parameters, so an interrupted run picks up where it stopped
    (with the same result). Needs a fixed ``random_state``. Give each
    step (`pretrain`, `fit`, `fine_tune`) a folder of its own.

Returns
-------
self
""",
}

#: fills ``%(name)s`` lines of the estimators' docstrings (see `stellarlatent._docfill`)
fill_doc = doc_filler(_SNIPPETS)
