"""The training loop's pieces: early stopping, and runs whose epochs and history the caller owns."""

import pytest

from stellarlatent.estimators._stopping import EarlyStopping

from ._helpers import line_spectra, small_remap


def test_early_stopping_counts_epochs_without_an_improvement_beyond_min_delta():
    stopping = EarlyStopping(patience=2, min_delta=0.1)
    assert stopping.update(1.0)
    assert not stopping.update(0.95)  # better, but not by more than min_delta
    assert not stopping.should_stop
    assert not stopping.update(0.92)
    assert stopping.should_stop
    assert stopping.best == 1.0


def test_early_stopping_without_patience_or_on_the_training_loss_never_stops():
    for stopping in (EarlyStopping(None), EarlyStopping(1, monitor_only=True)):
        stopping.update(1.0)
        for _ in range(5):
            stopping.update(2.0)
        assert not stopping.should_stop
        assert stopping.best == 1.0


def test_fine_tune_neither_changes_max_epochs_nor_the_fit_history():
    flux, labels = line_spectra(n=40, n_pixels=64)
    model = small_remap(max_epochs=2).fit(flux, labels)
    fit_history = list(model.history_)
    model.fine_tune(flux, labels, max_epochs=3)
    assert model.max_epochs == 2
    assert model.history_ == fit_history
    assert [r["epoch"] for r in model.fine_tune_history_] == [1, 2, 3]


def test_a_checkpoint_dir_that_is_a_file_is_refused(tmp_path):
    flux, labels = line_spectra(n=20, n_pixels=64)
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(NotADirectoryError, match="checkpoint_dir .* is a file"):
        small_remap(max_epochs=1).fit(flux, labels, checkpoint_dir=path)
