import re
import subprocess
import sys
from pathlib import Path

import pytest

from stellarlatent.cli import main


def test_info_prints_versions_and_device(capsys):
    assert main(["info", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "stellarlatent" in out and "torch" in out and "device cpu" in out


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["no-such-command"])
    assert excinfo.value.code == 2
    with pytest.raises(SystemExit) as excinfo:
        main(["demo", "--n-spectra", "many"])
    assert excinfo.value.code == 2


def test_every_subcommand_has_help_with_examples(capsys):
    for command in ("demo", "info"):
        with pytest.raises(SystemExit) as excinfo:
            main([command, "--help"])
        assert excinfo.value.code == 0
        assert "examples:" in capsys.readouterr().out


def test_user_error_is_one_line_without_traceback(tmp_path, capsys):
    code = main(["demo", "--quick", "--quiet", "--miles", str(tmp_path / "missing"),
                 "--out", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--miles" in err[0] and "Traceback" not in err[0]


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "stellarlatent.cli", "info", "--device", "cpu"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_demo_writes_report_that_references_only_existing_files(tmp_path, capsys, miles_dir):
    out = tmp_path / "report"
    assert main(["demo", "--quick", "--quiet", "--device", "cpu", "--out", str(out)]) == 0
    summary = capsys.readouterr().out
    assert "informative latents" in summary and "DeepREMAP" in summary and "ridge" in summary
    page = out / "index.html"
    html = page.read_text()
    for name in ("models/spectral_vae.pt", "models/deep_remap.pt", "predictions.ecsv",
                 "coverage.ecsv", "disentanglement.ecsv", "latent_mad.png", "calibration.png",
                 "explorer.html"):
        assert (out / name).is_file(), name
    references = re.findall(r'(?:href|src)="([^"#]+)"', html)
    local = [r for r in references if not r.startswith(("data:", "http"))]
    assert local, "the report links its files"
    for ref in local:
        assert (out / ref).is_file(), f"index.html references missing file {ref}"
    assert "explorer.html" in local, "the report links the latent explorer"
    assert "window.explorer" in (out / "explorer.html").read_text()
    assert html.count("data:image/png;base64,") >= 3
    # the dependence verdict of the latents is in the report
    assert re.search(r"(disentangled|entangled|not pruned|collapsed):", html)

    # DeepREMAP and the ridge baseline, one row per label each
    accuracy = Table.read(out / "accuracy.ecsv")
    assert accuracy.colnames[:2] == ["method", "label"]
    for method in ("DeepREMAP", "ridge"):
        rows = accuracy[accuracy["method"] == method]
        assert sorted(rows["label"]) == ["feh", "logg", "teff"], method
        assert np.all(np.isfinite(rows["robust_scatter"])) and np.all(rows["n"] > 0)
        # a loose band: the quick run calibrates on about 40 spectra
        assert np.all((rows["coverage_68"] > 0.4) & (rows["coverage_68"] < 0.95)), rows
    disentanglement = Table.read(out / "disentanglement.ecsv")
    assert {"dim", "best_label", "spearman"} <= set(disentanglement.colnames)

    from stellarlatent.estimators import SpectralVAE

    SpectralVAE.load(out / "models" / "spectral_vae.pt")
    check_demo_models(out / "models", miles_dir, tmp_path, capsys)


def test_demo_default_shows_both_methods_working(tmp_path, capsys):
    """The embedded default (about 3 minutes on 2 cores): DeepREMAP beats ridge regression
    in every label with honest 68% intervals, and the VAE has distinct velocity and
    temperature latents."""
    out = tmp_path / "report"
    assert main(["demo", "--quiet", "--device", "cpu", "--out", str(out)]) == 0
    accuracy = Table.read(out / "accuracy.ecsv")
    for label in ("teff", "logg", "feh"):
        mine = accuracy[(accuracy["method"] == "DeepREMAP") & (accuracy["label"] == label)]
        ridge = accuracy[(accuracy["method"] == "ridge") & (accuracy["label"] == label)]
        assert mine["robust_scatter"][0] < ridge["robust_scatter"][0], label
        assert 0.6 <= mine["coverage_68"][0] <= 0.76, label
    latents = Table.read(out / "disentanglement.ecsv")
    best = {}
    for label in ("rv", "log_teff"):
        rows = latents[latents["best_label"] == label]
        assert len(rows), f"no latent tracks {label}"
        strongest = rows[np.argmax(np.abs(rows["spearman"]))]
        assert abs(strongest["spearman"]) >= 0.9, (label, strongest)
        best[label] = strongest["dim"]
    assert best["rv"] != best["log_teff"]
    assert "tracks rv" in capsys.readouterr().out


def check_demo_models(models, miles_dir, tmp_path, capsys):
    """The demo's saved models record their preprocessing and read a raw MILES file through it.

    Returns the loaded `DeepREMAPEnsemble`.
    """
    from stellarlatent.estimators import DeepREMAPEnsemble

    remap = DeepREMAPEnsemble.load(models / "deep_remap.pt")
    assert [s["class"] for s in remap.preprocessing_["steps"]] == ["Resampler",
                                                                   "ContinuumNormalizer"]
    star = str(Path(miles_dir) / "MILES_res2.50_star_m0001V.fits")
    for name in ("deep_remap.pt", "spectral_vae.pt"):
        predictions = tmp_path / f"{name}.ecsv"
        assert main(["predict", str(models / name), star, "--out", str(predictions),
                     "--device", "cpu", "--quiet"]) == 0, capsys.readouterr().err
        assert len(QTable.read(predictions)) == 1
    return remap


# -- the subcommands on small synthetic data -------------------------------------------------

import json  # noqa: E402

import astropy.units as u  # noqa: E402
import numpy as np  # noqa: E402
from astropy.io import fits  # noqa: E402
from astropy.table import QTable, Table  # noqa: E402

SUBCOMMANDS = ("prepare", "fit-vae", "fit-remap", "diagnose", "predict", "explore", "models",
               "demo", "info")
TINY_VAE = ["--latent-dim", "3", "--epochs", "1", "--batch-size", "16"]
TINY_SWEEP = ["--epochs", "1", "--batch-size", "16"]
TINY_REMAP = ["--epochs", "2", "--batch-size", "16", "--n-bins", "8", "--members", "1",
              "--pretrain", "none"]


def _write_adp(path, wave, flux, err):
    header = fits.Header()
    header["ORIGIN"] = "ESO"
    header["INSTRUME"] = "HARPS"
    header["OBJECT"] = "synthetic"
    header["MJD-OBS"] = 55000.0
    n = wave.size
    table = fits.BinTableHDU.from_columns([
        fits.Column("WAVE", f"{n}D", unit="angstrom", array=[wave]),
        fits.Column("FLUX", f"{n}E", unit="adu", array=[flux]),
        fits.Column("ERR", f"{n}E", unit="adu", array=[err]),
    ])
    table.header["EXTNAME"] = "SPECTRUM"
    fits.HDUList([fits.PrimaryHDU(header=header), table]).writeto(path)


@pytest.fixture(scope="module")
def spectra_dir(tmp_path_factory):
    """HARPS-ADP files of synthetic spectra (raw flux scale), a label table and a bad file."""
    from stellarlatent.datasets import make_synthetic_spectra
    from stellarlatent.preprocessing import SpectralGrid

    # The label table sits beside the folder, in a parent of its own: other
    # modules reuse this fixture, each with its own copy.
    folder = tmp_path_factory.mktemp("harps") / "files"
    folder.mkdir()
    grid = SpectralGrid.linear(4500 * u.AA, 6000 * u.AA, 600)
    spectra, labels = make_synthetic_spectra(48, grid, teff=(4500.0, 7000.0), random_state=1)
    wave = spectra.spectral_axis.to_value(u.AA)
    ivar = spectra.uncertainty.array
    names = []
    for i in range(spectra.flux.shape[0]):
        scale = 1000.0 * (1 + i)
        flux = np.where(spectra.mask[i], np.nan, spectra.flux.value[i]) * scale
        with np.errstate(divide="ignore"):
            err = np.where(ivar[i] > 0, 1 / np.sqrt(ivar[i]), np.inf) * scale
        name = f"ADP.synthetic.{i:03d}.fits"
        _write_adp(folder / name, wave, flux, err)
        names.append(name)
    table = QTable({"filename": names, "teff": labels["teff"], "logg": labels["logg"],
                    "feh": labels["feh"]})
    table.write(folder.parent / "harps_labels.ecsv")
    return folder


@pytest.fixture(scope="module")
def store(spectra_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "train.h5"
    code = main(["prepare", str(spectra_dir), "--grid", "4600", "5900", "256",
                 "--labels", str(spectra_dir.parent / "harps_labels.ecsv"),
                 "--out", str(path), "--quiet"])
    assert code == 0
    return path


@pytest.fixture(scope="module")
def models(store, tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    vae, remap = folder / "vae.pt", folder / "remap.pt"
    assert main(["fit-vae", str(store), "--out", str(vae), "--device", "cpu", "--quiet",
                 *TINY_VAE]) == 0
    assert main(["fit-remap", str(store), "--out", str(remap), "--device", "cpu", "--quiet",
                 *TINY_REMAP, "--contrast-window", "15", "--label-smoothing", "1.0"]) == 0
    return vae, remap


def test_every_new_subcommand_has_help_with_examples(capsys):
    for command in SUBCOMMANDS:
        with pytest.raises(SystemExit) as excinfo:
            main([command, "--help"])
        assert excinfo.value.code == 0
        assert "examples:" in capsys.readouterr().out, command


def test_prepare_writes_a_store_with_labels_and_preprocessing(store):
    from stellarlatent.datasets import SpectralStore
    from stellarlatent.preprocessing import SpectralGrid

    with SpectralStore(store) as s:
        assert len(s) == 48 and s.n_pixels == 256
        assert {"teff", "logg", "feh", "filename"} <= set(s.label_names)
        spec = s.meta["preprocessing"]
        assert [step["class"] for step in spec["steps"]] == ["Resampler", "ContinuumNormalizer"]
        expected = SpectralGrid.log_uniform(4600 * u.AA, 5900 * u.AA, 256).spectral_axis
        assert np.allclose(s.spectral_axis.to_value(u.AA), expected.value, rtol=1e-12)
        flux = s.read().flux.value
        assert np.nanmedian(flux, axis=1) == pytest.approx(1.0, abs=0.05)  # normalised
        label = s.labels[s.labels["filename"] == "ADP.synthetic.005.fits"]["teff"]
        assert len(label) == 1 and np.isfinite(label.value[0])


def test_prepare_estimates_the_continuum_from_smoothed_flux_when_asked(spectra_dir, tmp_path):
    from stellarlatent._preprocessing_spec import build
    from stellarlatent.datasets import SpectralStore

    path = tmp_path / "smoothed.h5"
    assert main(["prepare", str(spectra_dir), "--grid", "4600", "5900", "256",
                 "--normalize", "running_quantile", "--continuum-smoothing", "900",
                 "--out", str(path), "--quiet"]) == 0
    with SpectralStore(path) as s:
        normalizer = build(s.meta["preprocessing"])[1]
        flux = s.read().flux.value
    assert normalizer.method == "running_quantile"
    assert normalizer.smoothing == 900 * u.km / u.s
    assert np.nanquantile(flux, 0.9, axis=1) == pytest.approx(1.0, abs=0.05)


def test_prepare_reports_and_skips_bad_files(spectra_dir, tmp_path, capsys):
    bad = tmp_path / "broken.fits"
    bad.write_bytes(b"this is not a FITS file")
    files = sorted(spectra_dir.glob("*.fits"))[:4]
    out = tmp_path / "small.h5"
    code = main(["prepare", *map(str, files), str(bad), str(tmp_path / "missing.fits"),
                 "--grid", "4600", "5900", "128", "--out", str(out), "--quiet"])
    assert code == 0 and out.is_file()
    captured = capsys.readouterr()
    assert "4 spectra" in captured.out and "2 skipped" in captured.out
    assert "broken.fits" in captured.out and "missing.fits" in captured.out


def test_prepare_with_nothing_readable_exits_1(tmp_path, capsys):
    bad = tmp_path / "broken.fits"
    bad.write_bytes(b"not FITS")
    code = main(["prepare", str(bad), "--grid", "4600", "5900", "64",
                 "--out", str(tmp_path / "x.h5"), "--quiet"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "no input could be read" in err[-1] and "broken.fits" in err[-1]
    assert not (tmp_path / "x.h5").exists()


def test_fitted_models_carry_the_preprocessing(models, store):
    from stellarlatent.datasets import SpectralStore
    from stellarlatent.estimators import DeepREMAP, SpectralVAE

    vae, remap = SpectralVAE.load(models[0]), DeepREMAP.load(models[1])
    with SpectralStore(store) as s:
        spec = s.meta["preprocessing"]
    assert vae.preprocessing_ == spec and remap.preprocessing_ == spec
    assert json.dumps(vae.preprocessing_)  # plain JSON
    assert remap.labels == ("teff", "logg", "feh")
    assert remap.contrast_window == 15 and remap.label_smoothing == 1.0
    assert remap.module_.backbone.in_channels == 3
    assert any(t != 1.0 for t in remap.temperatures_.values())  # calibrated


def test_predict_applies_the_models_preprocessing_to_files_on_another_grid(
        models, spectra_dir, tmp_path, capsys):
    """A model trained on a log grid of 256 pixels reads raw MILES-layout files on a
    linear grid of another length, and raw HARPS files, to the same predictions."""
    from specutils import Spectrum

    from stellarlatent.datasets import write_miles
    from stellarlatent.preprocessing import Resampler, SpectralGrid

    files = sorted(spectra_dir.glob("*.fits"))[:6]
    raw = [Spectrum.read(f, format="HARPS-ADP") for f in files]
    other = Resampler(SpectralGrid.linear(4550 * u.AA, 5950 * u.AA, 900)).fit_transform(raw)
    miles = tmp_path / "miles"
    write_miles(miles, other, Table({"miles_id": np.arange(1, 7)}))
    bad = miles / "MILES_res2.50_star_m0099V.fits"
    bad.write_bytes(b"broken")

    out_a, out_b = tmp_path / "a.ecsv", tmp_path / "b.ecsv"
    assert main(["predict", str(models[1]), *map(str, files), "--out", str(out_a),
                 "--device", "cpu", "--quiet"]) == 0
    assert main(["predict", str(models[1]), str(miles), "--format", "MILES", "--out", str(out_b),
                 "--device", "cpu", "--quiet"]) == 0
    assert "m0099V.fits" in capsys.readouterr().out
    a, b = QTable.read(out_a), QTable.read(out_b)
    assert a.colnames[0] == "filename" and list(a["filename"]) == [f.name for f in files]
    # files named after an option are files too, in the order given
    out_c = tmp_path / "c.ecsv"
    assert main(["predict", str(models[1]), *map(str, files[:3]), "--device", "cpu",
                 *map(str, files[3:]), "--out", str(out_c), "--quiet"]) == 0
    assert list(QTable.read(out_c)["filename"]) == list(a["filename"])
    with pytest.raises(SystemExit):
        main(["predict", str(models[1]), str(files[0]), "--device", "cpu", "--bogus",
              str(files[1]), "--out", str(out_c)])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    assert len(b) == 6 and "teff" in b.colnames and b["teff"].unit == u.K
    # the same stars on two grids: close predictions (resampling differs only slightly)
    assert np.allclose(a["teff"].value, b["teff"].value, rtol=0.05)

    latents = tmp_path / "z.ecsv"
    assert main(["predict", str(models[0]), str(miles), "--out", str(latents),
                 "--device", "cpu", "--quiet"]) == 0
    z = QTable.read(latents)
    # the latents, then how far to trust them (as labels get)
    assert z.colnames[:4] == ["filename", "z0", "z1", "z2"] and len(z) == 6
    assert {"coverage", "input_medium", "out_of_range", "out_of_range_reason"} <= set(z.colnames)


def test_predict_with_a_model_file_reads_a_phoenix_model_in_vacuum_from_500_angstrom(
        models, real_dir, tmp_path):
    """Converted to the model's air medium, its axis no longer folds at 2000 A, and only the
    pixels near the model's grid are kept."""
    phoenix = real_dir / "phoenix"
    out = tmp_path / "p.ecsv"
    assert main(["predict", str(models[1]),
                 str(phoenix / "lte05800-4.50-0.0.PHOENIX-ACES-AGSS-COND-2011-HiRes.fits"),
                 "--phoenix-wave", str(phoenix / "WAVE_PHOENIX-ACES-AGSS-COND-2011.fits"),
                 "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    table = QTable.read(out)
    assert len(table) == 1 and table["coverage"][0] > 0.99


def test_predict_with_nothing_readable_exits_1(models, tmp_path, capsys):
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"broken")
    code = main(["predict", str(models[1]), str(bad), "--out", str(tmp_path / "p.ecsv"), "--quiet"])
    assert code == 1
    assert "no input could be read" in capsys.readouterr().err
    assert not (tmp_path / "p.ecsv").exists()


def test_predict_on_a_store(models, store, tmp_path):
    out = tmp_path / "p.ecsv"
    assert main(["predict", str(models[1]), str(store), "--out", str(out), "--quiet",
                 "--device", "cpu"]) == 0
    table = QTable.read(out)
    assert len(table) == 48 and table["filename"][0].startswith("ADP.synthetic")
    # the same flags as for files, so that a script reads either table alike
    from stellarlatent.datasets import SpectralStore

    with SpectralStore(store) as s:
        _, mask, _ = s.read_arrays()
    np.testing.assert_allclose(table["coverage"], (~mask).mean(axis=1))
    assert {"out_of_range", "out_of_range_reason"} <= set(table.colnames)
    assert table["out_of_range"].tolist() == [bool(r) for r in table["out_of_range_reason"]]


@pytest.mark.parametrize("which", [0, 1])
def test_diagnose_writes_a_self_contained_report(models, store, spectra_dir, tmp_path, which,
                                                 capsys):
    out = tmp_path / "report"
    files = sorted(spectra_dir.glob("*.fits"))[:20]
    labels = str(spectra_dir.parent / "harps_labels.ecsv")
    assert main(["diagnose", str(models[which]), *map(str, files), "--labels", labels,
                 "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    html = (out / "index.html").read_text()
    assert "data:image/png;base64," in html
    expected = ["disentanglement.ecsv", "latent_mad.png"] if which == 0 else [
        "predictions.ecsv", "accuracy.ecsv", "coverage.ecsv", "calibration.png"]
    for name in expected:
        assert (out / name).is_file(), name
    for ref in re.findall(r'(?:href|src)="([^"#]+)"', html):
        if not ref.startswith(("data:", "http")):
            assert (out / ref).is_file(), ref
    # labels from the store's own columns
    out2 = tmp_path / "report2"
    capsys.readouterr()
    assert main(["diagnose", str(models[which]), str(store), "--out", str(out2), "--quiet",
                 "--device", "cpu"]) == 0
    assert (out2 / "index.html").is_file()
    if which == 1:  # the scatter of each label in its unit
        assert re.search(r"teff +robust scatter [\d.e+]+ K \(", capsys.readouterr().out)


def test_fit_from_raw_files_with_a_label_table(spectra_dir, tmp_path, capsys):
    from stellarlatent.estimators import DeepREMAP

    out = tmp_path / "remap.pt"
    labels = str(spectra_dir.parent / "harps_labels.ecsv")
    assert main(["fit-remap", str(spectra_dir), "--grid", "4600", "5900", "128",
                 "--labels", labels, "teff", "--out", str(out), "--quiet", "--device", "cpu",
                 *TINY_REMAP]) == 0
    remap = DeepREMAP.load(out)
    assert remap.labels == ("teff",) and remap.n_features_in_ == 128
    assert remap.preprocessing_["steps"][0]["class"] == "Resampler"
    assert "fit-remap" in capsys.readouterr().out


def test_model_errors_are_one_line(models, store, tmp_path, capsys):
    assert main(["fit-remap", str(store), "--labels", "nope", "--out", str(tmp_path / "m.pt"),
                 "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0]
    assert main(["fit-remap", str(store), "--contrast-window", "4", "--out",
                 str(tmp_path / "m.pt"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "contrast_window" in err[0]
    assert main(["predict", str(tmp_path / "missing.pt"), str(store),
                 "--out", str(tmp_path / "p.ecsv"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "MODEL" in err[0]
    assert main(["fit-vae", str(store), "--out", str(models[0]), "--quiet"]) == 1  # exists
    assert "--overwrite" in capsys.readouterr().err


def test_fit_vae_beta_sweep_writes_the_sweep_and_keeps_the_chosen_network(
        store, tmp_path, capsys):
    from astropy.table import Table

    from stellarlatent.estimators import SpectralVAE

    out = tmp_path / "swept.pt"
    assert main(["fit-vae", str(store), "--out", str(out), "--device", "cpu",
                 "--latent-dim", "2", "--beta-sweep", "0", "0.5", "--sweep-latent-dims", "3",
                 "--line-weight", "1", "--lr-schedule", "cosine", "--kl-reduction", "sum",
                 "--n-init", "2", *TINY_SWEEP]) == 0
    printed = capsys.readouterr().out
    table = Table.read(tmp_path / "swept-beta-sweep.ecsv")
    assert sorted(zip(table["beta"], table["latent_dim"])) == [(0, 2), (0, 3), (0.5, 2), (0.5, 3)]
    assert (tmp_path / "swept-beta-sweep.png").stat().st_size > 1000
    assert np.all(np.isfinite(table["loss"]))
    chosen = table.meta["chosen_beta"]
    vae = SpectralVAE.load(out)
    assert (vae.latent_dim, vae.beta, vae.line_weight, vae.lr_schedule, vae.kl_reduction) == (
        2, chosen, 1.0, "cosine", "sum")
    assert f"chosen beta {chosen:g}" in printed and "swept-beta-sweep.png" in printed
    assert vae.preprocessing_ is not None


@pytest.mark.parametrize("options, message", [
    (["--beta", "0.1", "--beta-sweep", "0", "1"], "--beta-sweep chooses beta"),
    (["--autoencoder", "--beta-sweep", "0", "1"], "--autoencoder"),
    (["--beta-sweep", "-1"], "--beta-sweep: expected numbers >= 0"),
    (["--beta-sweep", "0", "--sweep-latent-dims", "0"], "--sweep-latent-dims"),
    (["--beta-sweep", "0", "--jobs", "0"], "--jobs must be a positive integer"),
    (["--beta-sweep", "0", "--n-init", "0"], "--n-init must be a positive integer"),
    (["--n-init", "2"], "--n-init restarts the networks of --beta-sweep"),
])
def test_fit_vae_beta_sweep_refusals(store, tmp_path, capsys, options, message):
    assert main(["fit-vae", str(store), "--out", str(tmp_path / "x.pt"), "--quiet",
                 *options, *TINY_SWEEP]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_fit_vae_beta_sweep_in_parallel_on_files(spectra_dir, tmp_path):
    from astropy.table import Table

    out = tmp_path / "files.pt"
    assert main(["fit-vae", str(spectra_dir), "--grid", "4600", "5900", "256", "--out", str(out),
                 "--device", "cpu", "--quiet", "--latent-dim", "2", "--beta-sweep", "0", "1",
                 "--sweep-latent-dims", "3", "--jobs", "2", *TINY_SWEEP]) == 0
    assert len(Table.read(tmp_path / "files-beta-sweep.ecsv")) == 4


def test_fit_vae_preset_gives_its_settings_and_the_options_given_win(store, tmp_path):
    from stellarlatent.estimators import SpectralVAE

    preset = SpectralVAE.from_preset("miles")
    out = tmp_path / "preset.pt"
    assert main(["fit-vae", str(store), "--out", str(out), "--device", "cpu", "--quiet",
                 "--preset", "miles", *TINY_VAE]) == 0
    vae = SpectralVAE.load(out)
    for name in ("beta", "kl_reduction", "line_weight", "line_window", "lr_schedule", "lr"):
        assert getattr(vae, name) == getattr(preset, name), name
    assert vae.max_epochs == 1  # given in TINY_VAE: the option wins
    assert (vae.latent_dim, vae.batch_size) == (3, 16)
    plain = tmp_path / "plain.pt"
    assert main(["fit-vae", str(store), "--out", str(plain), "--device", "cpu", "--quiet",
                 "--coarse-weight", "0.5", "--coarse-window", "33", *TINY_VAE]) == 0
    vae = SpectralVAE.load(plain)
    assert (vae.beta, vae.kl_reduction, vae.line_weight, vae.lr_schedule) == (
        0.003, "mean", 0.0, "constant")
    assert (vae.coarse_weight, vae.coarse_window) == (0.5, 33)


def test_fit_with_workers_and_bf16_autocast(store, tmp_path, capsys):
    from stellarlatent.estimators import SpectralVAE

    out = tmp_path / "vae_fast.pt"
    assert main(["fit-vae", str(store), "--out", str(out), "--device", "cpu", "--quiet",
                 "--workers", "1", "--precision", "bf16-mixed", *TINY_VAE]) == 0
    vae = SpectralVAE.load(out)
    assert (vae.num_workers, vae.precision) == (1, "bf16-mixed")
    assert main(["fit-vae", str(store), "--out", str(tmp_path / "x.pt"), "--quiet",
                 "--workers", "-2", *TINY_VAE]) == 1
    assert "--workers must be 0 or more" in capsys.readouterr().err


def test_fit_remap_trains_the_recipe_ensemble_with_synthetic_pretraining(store, tmp_path,
                                                                         capsys):
    from stellarlatent.estimators import DeepREMAPEnsemble

    out = tmp_path / "ensemble.pt"
    assert main(["fit-remap", str(store), "--out", str(out), "--device", "cpu", "--members", "2",
                 "--pretrain", "synthetic", "--n-synthetic", "48", "--pretrain-epochs", "1",
                 "--epochs", "1", "--n-bins", "8", "--batch-size", "16"]) == 0
    said = capsys.readouterr().out
    assert "an ensemble of 2 DeepREMAP networks" in said and "48 synthetic spectra" in said
    ensemble = DeepREMAPEnsemble.load(out)
    assert len(ensemble.members_) == 2 and len(ensemble.pretrained_members_ if hasattr(
        ensemble, "pretrained_members_") else ensemble.members_) == 2
    assert ensemble.ridge_ is not None  # the ridge expert of the recipe
    assert ensemble.preprocessing_["steps"][0]["class"] == "Resampler"
    assert all(m.fine_tune_history_ for m in ensemble.members_)  # pre-trained, then fine-tuned
    # the ensemble predicts from a file through the command
    prediction = tmp_path / "p.ecsv"
    assert main(["predict", str(out), str(store), "--out", str(prediction), "--quiet"]) == 0
    table = QTable.read(prediction)
    assert {"teff", "teff_err", "logg", "feh"} <= set(table.colnames)


def test_fit_remap_checkpoints_every_member_of_every_step_and_resumes(
        store, tmp_path, capsys, monkeypatch):
    from stellarlatent.datasets import SpectralStore
    from stellarlatent.estimators import DeepREMAP, DeepREMAPEnsemble

    recipe = ["--device", "cpu", "--members", "2", "--n-synthetic", "48",
              "--pretrain-epochs", "1", "--epochs", "2", "--n-bins", "8", "--batch-size", "16",
              "--calibration-cv", "2", "--quiet", "--checkpoint-dir", str(tmp_path / "ckpt")]
    whole = tmp_path / "whole.pt"
    assert main(["fit-remap", str(store), "--out", str(whole), *recipe[:-2]]) == 0
    original = DeepREMAP._after_epoch

    def interrupt(self, epoch):
        # member 1 (seed 7919) is fine-tuned with seed 7920: on all stars, then on the folds;
        # the copy of the second fold stops in its last epoch
        if self._stage == "fine_tune" and self.random_state == 7920:
            if epoch == 0:  # counted from 0
                interrupt.fine_tunes += 1
            elif interrupt.fine_tunes == 3:
                raise KeyboardInterrupt
        return original(self, epoch)

    interrupt.fine_tunes = 0
    monkeypatch.setattr(DeepREMAP, "_after_epoch", interrupt)
    out = tmp_path / "resumed.pt"
    assert main(["fit-remap", str(store), "--out", str(out), *recipe]) == 130
    assert interrupt.fine_tunes == 3
    monkeypatch.setattr(DeepREMAP, "_after_epoch", original)
    assert not out.exists()
    folders = sorted(str(p.relative_to(tmp_path / "ckpt"))
                     for p in (tmp_path / "ckpt").glob("**/member-*"))
    assert folders == ["cross_calibrate/fold-0/member-0", "cross_calibrate/fold-0/member-1",
                       "cross_calibrate/fold-1/member-0", "cross_calibrate/fold-1/member-1",
                       "fine_tune/member-0", "fine_tune/member-1",
                       "pretrain/member-0", "pretrain/member-1"]
    assert main(["fit-remap", str(store), "--out", str(out), *recipe]) == 0
    capsys.readouterr()
    resumed, uninterrupted = DeepREMAPEnsemble.load(out), DeepREMAPEnsemble.load(whole)
    assert resumed.temperatures_ == pytest.approx(uninterrupted.temperatures_, rel=1e-5)
    with SpectralStore(store) as opened:
        spectra = opened.read()
    np.testing.assert_allclose(resumed.predict(spectra)["teff"],
                               uninterrupted.predict(spectra)["teff"], rtol=1e-5)


def test_fit_remap_resumes_a_checkpoint_written_with_another_jobs(store, tmp_path, capsys):
    # above --jobs 1 the store is read into memory: the same spectra, the same fingerprint
    from stellarlatent.datasets import SpectralStore
    from stellarlatent.estimators import DeepREMAPEnsemble

    recipe = ["--device", "cpu", "--members", "2", "--n-synthetic", "48",
              "--pretrain-epochs", "1", "--epochs", "2", "--n-bins", "8", "--batch-size", "16",
              "--calibration-cv", "0", "--quiet", "--checkpoint-dir", str(tmp_path / "ckpt")]
    streamed, in_memory = tmp_path / "streamed.pt", tmp_path / "in_memory.pt"
    assert main(["fit-remap", str(store), "--out", str(streamed), *recipe, "--jobs", "1"]) == 0
    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "ckpt").glob("**/checkpoint.pt")}
    assert len(written) == 4  # pre-training and fine-tuning of two members
    assert main(["fit-remap", str(store), "--out", str(in_memory), *recipe, "--jobs", "2"]) == 0
    capsys.readouterr()
    # resumed after its last epoch, not trained again
    assert {p: p.stat().st_mtime_ns for p in written} == written
    with SpectralStore(store) as opened:
        spectra = opened.read()
    np.testing.assert_allclose(DeepREMAPEnsemble.load(in_memory).predict(spectra)["teff"],
                               DeepREMAPEnsemble.load(streamed).predict(spectra)["teff"],
                               rtol=1e-5)


def test_fit_remap_calibration_cv_trains_on_every_star_and_calibrates_out_of_fold(
        store, tmp_path, capsys, monkeypatch):
    from stellarlatent.datasets import SpectralStore
    from stellarlatent.estimators import DeepREMAPEnsemble

    calls = []
    cross_calibrate = DeepREMAPEnsemble.cross_calibrate

    def recording(self, X, y=None, sample_weight=None, **kwargs):
        assert kwargs.pop("checkpoint_dir") is None
        calls.append((len(self.members_[0]._check_X(X)), kwargs))
        return cross_calibrate(self, X, y, sample_weight, checkpoint_dir=None, **kwargs)

    monkeypatch.setattr(DeepREMAPEnsemble, "cross_calibrate", recording)
    out = tmp_path / "ensemble.pt"
    recipe = ["--device", "cpu", "--members", "2", "--n-synthetic", "48",
              "--pretrain-epochs", "1", "--epochs", "1", "--n-bins", "8", "--batch-size", "16"]
    assert main(["fit-remap", str(store), "--out", str(out), *recipe,
                 "--calibration-cv", "3"]) == 0
    said = capsys.readouterr().out
    with SpectralStore(store) as opened:
        n = len(opened)
    by = ("teff", [4000.0, 7000.0])  # the recipe's types, for an ensemble predicting Teff
    assert calls == [(n, {"cv": 3, "method": "coverage", "by": by})]  # every star, three folds
    assert f"on {n} of {n} spectra" in said and "out-of-fold predictions of 3 folds" in said
    ensemble = DeepREMAPEnsemble.load(out)
    assert ensemble.temperatures_ != dict.fromkeys(ensemble.temperatures_, 1.0)
    # the default cross-calibrates on five folds; --calibration-fraction holds stars out
    calls.clear()
    assert main(["fit-remap", str(store), "--out", str(out), *recipe, "--overwrite"]) == 0
    assert calls == [(n, {"cv": 5, "method": "coverage", "by": by})]
    # the summary says how many of the three types had enough stars for their own calibration
    said = capsys.readouterr().out
    ensemble = DeepREMAPEnsemble.load(out)
    own = int(np.any(np.array(list(ensemble.type_scales_.values())) != 1.0, axis=0).sum())
    assert "out-of-fold predictions of 5 folds" in said
    assert (f"by teff (4000, 7000): {own} of 3 types of star on their own" in said if 0 < own < 3
            else "each type of star by teff" in said if own == 3
            else "no type of star by teff (4000, 7000) had 20 calibration stars" in said), said
    calls.clear()
    assert main(["fit-remap", str(store), "--out", str(out), *recipe, "--overwrite",
                 "--calibration-fraction", "0.25"]) == 0
    assert calls == [] and f"on {round(0.25 * n)} held-out spectra" in capsys.readouterr().out
    # other types, or one calibration for every star; the model keeps what it was given
    calls.clear()
    assert main(["fit-remap", str(store), "--out", str(out), *recipe, "--overwrite",
                 "--calibrate-by", "teff", "5500"]) == 0
    assert calls == [(n, {"cv": 5, "method": "coverage", "by": ("teff", [5500.0])})]
    assert DeepREMAPEnsemble.load(out).calibrated_by_ == ("teff", [5500.0])
    calls.clear()
    assert main(["fit-remap", str(store), "--out", str(out), *recipe, "--overwrite",
                 "--calibrate-by", "none"]) == 0
    assert calls == [(n, {"cv": 5, "method": "coverage"})]
    assert DeepREMAPEnsemble.load(out).calibrated_by_ is None
    # an ensemble that does not predict Teff has no types by default
    calls.clear()
    assert main(["fit-remap", str(store), "--out", str(out), *recipe, "--overwrite",
                 "--labels", "logg", "feh"]) == 0
    assert calls == [(n, {"cv": 5, "method": "coverage"})]


@pytest.mark.parametrize("option, method", [([], "cross_calibrate"),
                                            (["--calibration-cv", "0"], "calibrate")])
def test_fit_remap_writes_the_uncalibrated_model_when_the_calibration_fails(
        store, tmp_path, capsys, monkeypatch, option, method):
    from stellarlatent.estimators import DeepREMAPEnsemble

    def failing(self, *args, **kwargs):
        raise RuntimeError("no luck")

    monkeypatch.setattr(DeepREMAPEnsemble, method, failing)
    out = tmp_path / "ensemble.pt"
    assert main(["fit-remap", str(store), "--out", str(out), "--device", "cpu", "--members", "2",
                 "--n-synthetic", "48", "--pretrain-epochs", "1", "--epochs", "1",
                 "--n-bins", "8", "--batch-size", "16", "--quiet", *option]) == 1
    err = capsys.readouterr().err
    assert "failed (no luck); the uncalibrated model was written to" in err
    temperatures = DeepREMAPEnsemble.load(out).temperatures_
    assert temperatures == dict.fromkeys(("teff", "logg", "feh"), 1.0)


@pytest.mark.parametrize("options, message", [
    (["--calibration-cv", "1"], "--calibration-cv must be 0 or at least 2"),
    (["--calibration-cv", "3", "--calibration-fraction", "0.1"], "leave out --calibration-fr"),
    (["--calibration-cv", "3", "--members", "1"], "it needs --members 2 or more"),
    (["--calibration-cv", "3", "--pretrain", "none"], "it needs --members 2 or more"),
    (["--members", "0"], "--members must be at least 1"),
    (["--pretrain-epochs", "0"], "--pretrain-epochs must be at least 1"),
    (["--jobs", "0"], "--jobs must be a positive integer or -1"),
    (["--pretrain", "no/such/place"], "--pretrain: no store or folder"),
    (["--calibrate-by", "teff"], "--calibrate-by takes a label and one or more increasing"),
    (["--calibrate-by", "teff", "7000", "4000"], "--calibrate-by takes a label"),
    (["--calibrate-by", "teff", "hot"], "--calibrate-by takes a label"),
    (["--calibrate-by", "mass", "1"], "--calibrate-by: 'mass' is not a label of the model"),
    (["--calibrate-by", "teff", "5000", "--members", "1"], "give --members 2 or more"),
    (["--calibrate-by", "teff", "5000", "--calibration-fraction", "0"],
     "--calibrate-by needs a calibration"),
])
def test_fit_remap_refuses_bad_recipe_options_before_reading(store, tmp_path, capsys, options,
                                                             message):
    assert main(["fit-remap", str(store), "--out", str(tmp_path / "m.pt"), "--quiet",
                 *options]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_fit_remap_says_when_the_training_stars_were_pre_trained_on(store, tmp_path, capsys,
                                                                    caplog):
    from stellarlatent.datasets import SpectralStore

    with SpectralStore(store) as opened:
        n = len(opened)
    recipe = ["--device", "cpu", "--members", "1", "--pretrain-epochs", "1", "--epochs", "1",
              "--n-bins", "8", "--batch-size", "16", "--quiet", "--labels", "teff"]
    assert main(["fit-remap", str(store), "--pretrain", str(store), "--out",
                 str(tmp_path / "same.pt"), *recipe]) == 0
    said = [r.getMessage() for r in caplog.records if "pre-training spectra" in r.getMessage()]
    assert len(said) == 1 and f"{n} of the {n} training spectra" in said[0]
    assert "intervals come out too narrow" in said[0]
    caplog.clear()
    assert main(["fit-remap", str(store), "--out", str(tmp_path / "synthetic.pt"), *recipe,
                 "--n-synthetic", "32"]) == 0
    assert not [r for r in caplog.records if "pre-training spectra" in r.getMessage()]


def test_shared_stars_needs_the_same_labels_and_the_same_flux():
    from stellarlatent._commands.pretrain import shared_stars

    rng = np.random.default_rng(0)
    flux = 1 + 0.1 * rng.standard_normal((6, 50))
    labels = rng.uniform(4000, 7000, (6, 2))
    pretrain_flux = np.concatenate([flux[[4, 1]], 1 + 0.1 * rng.standard_normal((3, 50))])
    pretrain_labels = np.concatenate([labels[[4, 1]], labels[[0, 2]], [[np.nan, 1.0]]])
    masked = np.ma.masked_array(flux, mask=np.zeros_like(flux, dtype=bool))
    masked.mask[4, :10] = True
    masked.data[4, :10] = 50.0  # masked pixels do not count
    # stars 4 and 1 are shared; 0 and 2 have the labels of another flux
    np.testing.assert_array_equal(shared_stars(pretrain_flux, pretrain_labels, masked, labels),
                                  [1, 4])
    assert shared_stars(pretrain_flux[2:], pretrain_labels[2:], flux, labels).size == 0
    # a label tuple twice among the pre-training spectra (repeat observations, copies): each
    # is compared
    twice = np.concatenate([pretrain_flux[2:3], flux[[0]]])
    np.testing.assert_array_equal(shared_stars(twice, labels[[0, 0]], flux, labels), [0])
    np.testing.assert_array_equal(
        shared_stars(pretrain_flux, pretrain_labels, masked, labels, chunk=1), [1, 4])
    # spectra as a --pretrain DIR gives them: a batch Spectrum
    from specutils import Spectrum

    def batch(values):
        return Spectrum(flux=values * u.one, spectral_axis=np.arange(50.0) * u.AA,
                        spectral_axis_index=1)

    np.testing.assert_array_equal(
        shared_stars(batch(pretrain_flux), pretrain_labels, batch(flux), labels), [1, 4])


def test_fit_remap_pretrains_on_a_store_whose_labels_cover_the_training_stars(
        store, spectra_dir, tmp_path, capsys):
    from stellarlatent.estimators import DeepREMAP

    out = tmp_path / "remap.pt"
    recipe = ["--device", "cpu", "--members", "1", "--pretrain-epochs", "1", "--epochs", "1",
              "--n-bins", "8", "--batch-size", "16", "--quiet", "--labels", "teff"]
    assert main(["fit-remap", str(store), "--pretrain", str(store), "--out", str(out),
                 *recipe]) == 0
    assert DeepREMAP.load(out).labels == ("teff",)
    # a store of a few stars sets bins that would miss most of the training stars
    narrow = tmp_path / "narrow.h5"
    files = sorted(spectra_dir.glob("*.fits"))[:3]
    assert main(["prepare", *map(str, files), "--grid", "4600", "5900", "256", "--labels",
                 str(spectra_dir.parent / "harps_labels.ecsv"), "--out", str(narrow),
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["fit-remap", str(store), "--pretrain", str(narrow), "--out",
                 str(tmp_path / "no.pt"), *recipe]) == 1
    err = capsys.readouterr().err
    assert "--pretrain: its teff spans" in err and "training stars lie outside" in err
    assert not (tmp_path / "no.pt").exists()


def test_a_model_trained_on_files_of_one_resolution_brings_finer_spectra_to_it(
        miles_dir, real_dir, tmp_path):
    """MILES files record FWHM 2.5 A: the store, the model and predict keep to it."""
    from stellarlatent.datasets import SpectralStore
    from stellarlatent.estimators import DeepREMAP

    files = sorted(miles_dir.glob("MILES_res2.50_star_m00*.fits"))[:24]
    store = tmp_path / "miles.h5"
    # 2048 pixels: 1.8 A at 5500 A, finer than the 2.5 A it records (a coarser grid sets the
    # resolution itself, and the model records none)
    assert main(["prepare", *map(str, files), "--format", "MILES", "--grid", "3700", "7300",
                 "2048", "--labels", str(miles_dir / "paramsMILES_v9.1.txt"), "--out",
                 str(store), "--quiet"]) == 0
    with SpectralStore(store) as opened:
        assert opened.meta["fwhm"] == "2.5 Angstrom"
    model = tmp_path / "remap.pt"
    assert main(["fit-remap", str(store), "--labels", "teff", "--out", str(model),
                 "--device", "cpu", "--quiet", *TINY_REMAP]) == 0
    assert DeepREMAP.load(model).preprocessing_["instrument"] == {
        "fwhm": {"Quantity": 2.5, "unit": "Angstrom"}}
    harps = next((real_dir / "harps").glob("*_s1d_A.fits"))
    out = tmp_path / "p.ecsv"
    assert main(["predict", str(model), str(harps), "--out", str(out), "--quiet",
                 "--device", "cpu"]) == 0
    assert QTable.read(out)["resolution_status"][0] == "matched"
    coarse = tmp_path / "coarse.h5"
    assert main(["prepare", *map(str, files), "--format", "MILES", "--grid", "3700", "7300",
                 "256", "--out", str(coarse), "--quiet"]) == 0
    assert main(["fit-vae", str(coarse), "--out", str(tmp_path / "vae.pt"), "--device", "cpu",
                 "--quiet", *TINY_VAE]) == 0
    from stellarlatent.estimators import SpectralVAE

    assert "instrument" not in SpectralVAE.load(tmp_path / "vae.pt").preprocessing_
    # files of different resolutions record none, and their model broadens nothing
    mixed = tmp_path / "mixed.h5"
    assert main(["prepare", *map(str, files[:3]), str(harps), "--grid", "3700", "7300", "256",
                 "--out", str(mixed), "--quiet"]) == 0
    with SpectralStore(mixed) as opened:
        assert "fwhm" not in opened.meta and "resolution" not in opened.meta


def test_diagnose_of_a_collapsed_vae_says_so_instead_of_an_empty_table(
        models, store, tmp_path, monkeypatch):
    from stellarlatent.estimators import SpectralVAE

    def collapsed(self, X):
        return np.zeros((len(self._check_X(X)), self.latent_dim))

    monkeypatch.setattr(SpectralVAE, "transform", collapsed)
    out = tmp_path / "report"
    assert main(["diagnose", str(models[0]), str(store), "--out", str(out), "--quiet",
                 "--device", "cpu"]) == 0
    html = (out / "index.html").read_text()
    assert "nothing to compare with the labels" in html
