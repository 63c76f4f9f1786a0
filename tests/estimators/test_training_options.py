"""Background batch reading, bfloat16 autocast and torch.compile."""

import numpy as np
import pytest
import torch
from sklearn.base import clone

from stellarlatent.estimators import DeepREMAP, SpectralVAE


def _spectra(n=40, n_pixels=96, seed=0):
    rng = np.random.default_rng(seed)
    teff = rng.uniform(4000, 7000, n)
    x = np.linspace(-1, 1, n_pixels)
    flux = 1 - (teff[:, None] - 3500) / 5000 * np.exp(-0.5 * ((x - 0.1) / 0.05) ** 2)
    flux += 0.01 * rng.standard_normal(flux.shape)
    return flux.astype(np.float32), teff


def _vae(**kwargs):
    return SpectralVAE(latent_dim=2, max_epochs=2, batch_size=8, validation_fraction=0.25,
                       random_state=0, verbose=0, **kwargs)


def _remap(**kwargs):
    return DeepREMAP(("teff",), n_bins=6, base_channels=4, n_stages=2, blocks_per_stage=1,
                     embedding_dim=8, max_epochs=2, batch_size=8, validation_fraction=0.25,
                     random_state=0, verbose=0, **kwargs)


def test_worker_processes_give_the_same_vae():
    X, _ = _spectra()
    alone = _vae().fit(X)
    workers = _vae(num_workers=2).fit(X)
    # The VAE samples its noise from the global RNG: reading in workers must not disturb it.
    np.testing.assert_array_equal(workers.transform(X), alone.transform(X))
    assert [r["train_loss"] for r in workers.history_] == [r["train_loss"] for r in alone.history_]


def test_worker_processes_give_the_same_deep_remap():
    X, teff = _spectra()
    alone = _remap().fit(X, teff)
    workers = _remap(num_workers=2).fit(X, teff)
    np.testing.assert_array_equal(workers.predict(X)["teff"].value, alone.predict(X)["teff"].value)


def test_bf16_autocast_trains_close_to_float32():
    X, teff = _spectra()
    full = _remap().fit(X, teff)
    mixed = _remap(precision="bf16-mixed").fit(X, teff)
    assert all(np.isfinite(r["train_loss"]) for r in mixed.history_)
    # bfloat16 keeps 8 bits of mantissa: the losses agree to a few per cent, not bit for bit.
    np.testing.assert_allclose(mixed.history_[0]["train_loss"], full.history_[0]["train_loss"],
                               rtol=0.05)
    assert mixed.predict(X)["teff"].dtype == np.float64


# torch's own compiler stack imports a deprecated torch.jit decorator.
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compiled_network_trains_like_the_eager_one():
    pytest.importorskip("torch._inductor")
    X, _ = _spectra(n=24, n_pixels=64)
    eager = _vae(variational=False).fit(X)
    compiled = _vae(variational=False, compile=True).fit(X)
    assert not hasattr(compiled, "_wrapped_module") or compiled._wrapped_module is None
    assert not any("_orig_mod" in name for name in compiled.module_.state_dict())
    np.testing.assert_allclose(compiled.transform(X), eager.transform(X), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("num_workers", -1, "num_workers must be a non-negative integer"),
    ("num_workers", 1.5, "num_workers must be a non-negative integer"),
    ("precision", "fp16", "precision must be one of"),
    ("compile", "yes", "compile must be True or False"),
])
@pytest.mark.parametrize("make", [_vae, _remap])
def test_bad_training_options_are_named(make, name, value, message):
    X, teff = _spectra(n=8)
    estimator = make(**{name: value})
    with pytest.raises(ValueError, match=message):
        estimator.fit(X) if isinstance(estimator, SpectralVAE) else estimator.fit(X, teff)


def test_options_are_parameters_that_clone():
    vae = _vae(num_workers=3, precision="bf16-mixed", compile=True)
    params = clone(vae).get_params()
    assert ((params["num_workers"], params["precision"], params["compile"])
            == (3, "bf16-mixed", True))


@pytest.mark.gpu
def test_bf16_training_on_cuda_with_pinned_workers():
    X, teff = _spectra()
    model = _remap(device="cuda", precision="bf16-mixed", num_workers=2).fit(X, teff)
    assert model.device_.type == "cuda"
    assert np.all(np.isfinite(model.predict(X)["teff"].value))
    assert torch.cuda.max_memory_allocated() > 0
