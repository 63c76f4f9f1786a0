"""What the estimators refuse: other grids, other data behind a checkpoint, impossible
sizes, damaged model files and parameters of the wrong kind."""

import json

import astropy.units as u
import numpy as np
import pytest
import torch
from specutils import Spectrum

from stellarlatent.datasets import SpectralStore
from stellarlatent.estimators import DeepREMAP, SpectralVAE

from ._helpers import line_spectra, small_remap

pytestmark = pytest.mark.usefixtures("one_thread")


def _log_axis(start, stop, n):
    return np.geomspace(start, stop, n) * u.AA


def _spectra(flux, axis, medium=None):
    meta = {} if medium is None else {"wavelength_medium": medium}
    return Spectrum(flux=flux * u.one, spectral_axis=axis, spectral_axis_index=1, meta=meta)


@pytest.fixture(scope="module")
def fitted_on_grid():
    flux, labels = line_spectra(n=48, n_pixels=128)
    spectra = _spectra(flux, _log_axis(5000, 5500, 128), medium="air")
    model = small_remap(max_epochs=1).fit(spectra, labels)
    return model, flux, labels


# -- another grid of the same length ------------------------------------------------------

def test_remap_refuses_spectra_on_another_grid_of_the_same_length(fitted_on_grid):
    model, flux, _ = fitted_on_grid
    elsewhere = _spectra(flux, _log_axis(6000, 6500, 128))
    with pytest.raises(ValueError, match=r"6000-6500 Angstrom \(128 pixels\).*5000-5500 Angstrom"):
        model.predict(elsewhere)
    for method in (model.predict_proba, model.embed):
        with pytest.raises(ValueError,
                           match="resample the spectra onto the model's spectral_axis_"):
            method(elsewhere)


def test_remap_accepts_its_own_grid_in_other_units(fitted_on_grid):
    model, flux, _ = fitted_on_grid
    in_nm = _spectra(flux, _log_axis(5000, 5500, 128).to(u.nm))
    assert len(model.predict(in_nm)) == len(flux)
    # plain arrays carry no axis: only their length can be checked
    assert len(model.predict(flux)) == len(flux)


def test_spectra_on_a_frequency_axis_are_put_in_the_training_order(fitted_on_grid, tmp_path):
    model, flux, _ = fitted_on_grid
    in_wavelength = _spectra(flux[:5], _log_axis(5000, 5500, 128))
    # a frequency axis increases from red to blue: the pixels come in the other order
    frequency = _log_axis(5000, 5500, 128).to(u.THz, equivalencies=u.spectral())[::-1]
    in_frequency = _spectra(flux[:5, ::-1], frequency)
    np.testing.assert_allclose(model.embed(in_frequency), model.embed(in_wavelength),
                               rtol=1e-5, atol=1e-6)
    expected = model.predict(in_wavelength)
    for name in model.labels:
        np.testing.assert_allclose(model.predict(in_frequency)[name], expected[name], rtol=1e-6)
    # a store cannot be reordered on the fly: it is refused, not read backwards
    with SpectralStore.create(tmp_path / "f.h5", frequency, ivar=False) as store:
        store.append(flux[:5, ::-1])
        with pytest.raises(ValueError, match="against the order of the training grid"):
            model.predict(store)


def test_remap_refuses_vacuum_spectra_when_trained_on_air(fitted_on_grid):
    model, flux, _ = fitted_on_grid
    vacuum = _spectra(flux, _log_axis(5000, 5500, 128), medium="vacuum")
    with pytest.raises(ValueError, match="vacuum wavelengths.*trained on air.*vacuum_to_air"):
        model.predict(vacuum)


def test_the_grid_convention_survives_save_and_load(fitted_on_grid, tmp_path):
    model, flux, _ = fitted_on_grid
    loaded = DeepREMAP.load(model.save(tmp_path / "m.pt"), device="cpu")
    assert loaded.wavelength_medium_ == "air"
    with pytest.raises(ValueError, match="trained on 5000-5500"):
        loaded.predict(_spectra(flux, _log_axis(6000, 6500, 128)))


def test_flux_in_another_unit_is_converted_to_the_training_one(tmp_path):
    flux, _ = line_spectra(n=32, n_pixels=64)
    axis = _log_axis(5000, 5500, 64)
    in_jy = Spectrum(flux=flux * u.Jy, spectral_axis=axis, spectral_axis_index=1)
    vae = SpectralVAE(latent_dim=2, max_epochs=1, batch_size=16, validation_fraction=0.0,
                      verbose=0, random_state=0).fit(in_jy)
    assert vae.flux_unit_ == u.Jy
    in_mjy = Spectrum(flux=flux * 1000 * u.mJy, spectral_axis=axis, spectral_axis_index=1)
    np.testing.assert_allclose(vae.transform(in_mjy), vae.transform(in_jy), rtol=1e-5, atol=1e-6)
    other = Spectrum(flux=flux * u.erg / u.s / u.cm**2 / u.AA, spectral_axis=axis,
                     spectral_axis_index=1)
    with pytest.raises(ValueError, match=r"X has flux in 'erg .*', but SpectralVAE was trained "
                                         r"on flux in 'Jy'; convert them with "):
        vae.transform(other)
    loaded = SpectralVAE.load(vae.save(tmp_path / "vae.pt"), device="cpu")
    assert loaded.flux_unit_ == u.Jy
    with pytest.raises(ValueError, match="trained on flux in 'Jy'"):
        loaded.transform(other)
    # plain arrays carry no unit, and are taken as they are
    assert vae.transform(flux).shape == (32, 2)


def test_vae_transform_refuses_another_grid():
    flux, _ = line_spectra(n=32, n_pixels=64)
    vae = SpectralVAE(latent_dim=2, max_epochs=1, batch_size=16, validation_fraction=0.0,
                      verbose=0, random_state=0)
    vae.fit(_spectra(flux, _log_axis(5000, 5500, 64)))
    with pytest.raises(ValueError, match="SpectralVAE was trained on 5000-5500"):
        vae.transform(_spectra(flux, _log_axis(6000, 6500, 64)))


def test_remap_refuses_a_store_on_another_grid(fitted_on_grid, tmp_path):
    model, flux, labels = fitted_on_grid
    axis = _log_axis(4000, 7000, 128)
    with SpectralStore.create(tmp_path / "other.h5", axis, labels={"teff": u.K},
                              ivar=False) as store:
        store.append(_spectra(flux, axis), labels[["teff"]])
    with SpectralStore(tmp_path / "other.h5") as store, \
            pytest.raises(ValueError, match="4000-7000 Angstrom"):
        model.predict(store)


# -- checkpoints ---------------------------------------------------------------------------

def test_a_checkpoint_of_other_flux_with_the_same_shape_is_not_resumed(tmp_path):
    flux, labels = line_spectra(n=40, n_pixels=96)
    small_remap(max_epochs=2).fit(flux, labels, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=r"written for other data .*\(the spectra\)"):
        small_remap(max_epochs=2).fit(flux[::-1].copy(), labels, checkpoint_dir=tmp_path)
    # the same data resumes
    small_remap(max_epochs=2).fit(flux, labels, checkpoint_dir=tmp_path)
    # the schedule spans the epochs, so a run of another length does not resume it, and the
    # refusal says what differs
    for epochs in (1, 3):
        with pytest.raises(ValueError, match=f"epochs: 2 in the checkpoint, {epochs} now"):
            small_remap(max_epochs=epochs).fit(flux, labels, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="parameters lr"):
        small_remap(max_epochs=2, lr=0.5).fit(flux, labels, checkpoint_dir=tmp_path)


def test_vae_checkpoint_of_other_flux_is_not_resumed(tmp_path):
    flux, _ = line_spectra(n=24, n_pixels=64)
    params = dict(latent_dim=2, batch_size=8, validation_fraction=0.0, verbose=0, random_state=0)
    SpectralVAE(max_epochs=1, **params).fit(flux, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="written for other data"):
        SpectralVAE(max_epochs=2, **params).fit(flux + 0.01, checkpoint_dir=tmp_path)


def test_a_checkpoint_longer_than_asked_is_said_to_be(tmp_path, caplog):
    flux, _ = line_spectra(n=24, n_pixels=64)
    params = dict(latent_dim=2, batch_size=8, validation_fraction=0.0, verbose=0, random_state=0)
    SpectralVAE(max_epochs=3, **params).fit(flux, checkpoint_dir=tmp_path)
    with caplog.at_level("WARNING", logger="stellarlatent"):
        shorter = SpectralVAE(max_epochs=1, **params).fit(flux, checkpoint_dir=tmp_path)
    assert len(shorter.history_) == 3
    assert "the checkpoint holds 3 epochs, more than the 1 asked" in caplog.text
    # with a cosine schedule the length is part of the run: another one is refused
    cosine = dict(params, lr_schedule="cosine")
    SpectralVAE(max_epochs=2, **cosine).fit(flux, checkpoint_dir=tmp_path / "cosine")
    with pytest.raises(ValueError, match="epochs: 2 in the checkpoint, 4 now"):
        SpectralVAE(max_epochs=4, **cosine).fit(flux, checkpoint_dir=tmp_path / "cosine")


def test_num_workers_does_not_invalidate_a_remap_checkpoint(tmp_path):
    flux, labels = line_spectra(n=40, n_pixels=96)
    small_remap(max_epochs=2).fit(flux, labels, checkpoint_dir=tmp_path)
    model = small_remap(max_epochs=2, num_workers=1).fit(flux, labels, checkpoint_dir=tmp_path)
    assert len(model.history_) == 2


# -- impossible sizes ----------------------------------------------------------------------

def test_a_network_too_large_to_train_is_refused_with_its_size():
    flux, labels = line_spectra(n=20, n_pixels=128)
    with pytest.raises(ValueError, match=r"would need about .* GiB.*n_stages=20"):
        small_remap(n_stages=20).fit(flux, labels)


@pytest.mark.parametrize("n_bins", [10_000_000, 2, True])
def test_n_bins_out_of_range_is_refused(n_bins):
    flux, labels = line_spectra(n=20, n_pixels=64)
    with pytest.raises(ValueError, match=r"n_bins must be 'auto' or an integer in \[3, 10000\]"):
        small_remap(n_bins=n_bins).fit(flux, labels)


def test_a_bin_width_making_too_many_bins_is_refused():
    flux, labels = line_spectra(n=20, n_pixels=64)
    with pytest.raises(ValueError, match="makes .* bins; expected at most 10000"):
        small_remap(bin_width={"teff": 1e-3}).fit(flux, labels)


# -- model files ---------------------------------------------------------------------------

def _rewrite_metadata(path, change):
    payload = torch.load(path, weights_only=True)
    payload["metadata"] = change(payload["metadata"])
    torch.save(payload, path)


def test_load_refuses_corrupt_metadata(fitted_on_grid, tmp_path):
    path = fitted_on_grid[0].save(tmp_path / "m.pt")
    _rewrite_metadata(path, lambda text: text[: len(text) // 2])
    with pytest.raises(ValueError, match=r"m\.pt is not a readable DeepREMAP model"):
        DeepREMAP.load(path)


def test_a_bad_device_is_named_as_such_not_as_a_damaged_file(fitted_on_grid, tmp_path):
    path = fitted_on_grid[0].save(tmp_path / "m.pt")
    with pytest.raises(ValueError, match="^device must be .* got 'gpu'$"):
        DeepREMAP.load(path, device="gpu")


def test_load_refuses_n_bins_that_disagree_with_the_weights(fitted_on_grid, tmp_path):
    path = fitted_on_grid[0].save(tmp_path / "m.pt")

    def change(text):
        metadata = json.loads(text)
        metadata["params"]["n_bins"] = 30
        return json.dumps(metadata)

    _rewrite_metadata(path, change)
    with pytest.raises(ValueError, match="n_bins=30 for 'teff' but its bin edges make 12 bins"):
        DeepREMAP.load(path)


def test_save_into_a_missing_folder_names_the_folder(fitted_on_grid, tmp_path):
    with pytest.raises(FileNotFoundError, match="the folder .*missing does not exist"):
        fitted_on_grid[0].save(tmp_path / "missing" / "m.pt")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        fitted_on_grid[0].save(tmp_path)
    assert list(tmp_path.iterdir()) == []


# -- parameters of the wrong kind ----------------------------------------------------------

@pytest.mark.parametrize("params, message", [
    ({"lr": True}, "lr must be a positive number"),
    ({"validation_fraction": None}, r"validation_fraction must be a number in \[0, 1\)"),
])
@pytest.mark.parametrize("estimator", ["remap", "vae"])
def test_both_estimators_refuse_the_same_bad_training_parameters(estimator, params, message):
    flux, labels = line_spectra(n=20, n_pixels=64)
    with pytest.raises(ValueError, match=message):
        if estimator == "remap":
            small_remap(**params).fit(flux, labels)
        else:
            SpectralVAE(max_epochs=1, verbose=0, **params).fit(flux)


@pytest.mark.parametrize("params, error, message", [
    ({"weight_decay": -1.0}, ValueError, "weight_decay must be a non-negative number"),
    ({"variational": 1}, TypeError, "variational must be True or False"),
    ({"channels": (8, "a")}, ValueError, "channels must be None or a non-empty sequence"),
    ({"beta": float("inf")}, ValueError, "beta must be a non-negative number"),
])
def test_vae_checks_every_architecture_parameter(params, error, message):
    flux, _ = line_spectra(n=20, n_pixels=64)
    with pytest.raises(error, match=message):
        SpectralVAE(max_epochs=1, verbose=0, **params).fit(flux)


def test_fitting_again_forgets_the_preprocessing_of_the_earlier_spectra(caplog):
    flux, _ = line_spectra(n=32, n_pixels=64)
    vae = SpectralVAE(latent_dim=2, max_epochs=1, batch_size=16, validation_fraction=0.0,
                      verbose=0, random_state=0).fit(flux)
    vae.preprocessing_ = {"steps": ["as a loaded model records them"]}
    with caplog.at_level("WARNING", logger="stellarlatent"):
        vae.fit(flux)
    assert vae.preprocessing_ is None
    assert "preprocessing recorded for the earlier training spectra is forgotten" in caplog.text


def test_fine_tuning_a_calibrated_network_says_its_calibration_is_dropped(
        fitted_on_grid, caplog):
    import copy

    model, flux, labels = fitted_on_grid
    tuned = copy.deepcopy(model)
    tuned.temperatures_ = {label: 0.7 for label in tuned.temperatures_}
    with caplog.at_level("WARNING", logger="stellarlatent"):
        tuned.fine_tune(_spectra(flux, _log_axis(5000, 5500, 128), medium="air"), labels,
                        max_epochs=1)
    assert set(tuned.temperatures_.values()) == {1.0}
    assert "calibration of the network before" in caplog.text
