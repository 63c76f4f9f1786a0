"""stellarlatent.pretrained: bundled models, checked by SHA-256, used by name."""

import hashlib
import json
import re

import numpy as np
import pytest
from astropy.table import QTable

from stellarlatent import pretrained
from stellarlatent.cli import main
from stellarlatent.estimators import DeepREMAP


@pytest.fixture()
def registry(tmp_path):
    rng = np.random.default_rng(0)
    flux = 1 + 0.01 * rng.standard_normal((40, 32))
    teff = rng.uniform(4000, 7000, 40)
    flux[:, 10] -= (teff - 3000) / 8000
    model = DeepREMAP(labels=("teff",), n_bins=8, base_channels=4, n_stages=2, embedding_dim=8,
                      max_epochs=1, verbose=0, random_state=0).fit(flux, {"teff": teff})
    path = model.save(tmp_path / "tiny.pt")
    entry = {"kind": "DeepREMAP", "file": "tiny.pt",
             "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
             "training_data": "made up", "wavelength_range": "-", "resolution": "-",
             "medium": "air", "label_ranges": "Teff 4000-7000 K", "precision": "none"}
    file = tmp_path / "registry.json"
    file.write_text(json.dumps({"tiny": entry}))
    return file, flux


def test_list_and_load_a_registered_model(registry):
    file, flux = registry
    table = pretrained.list_models(file)
    assert list(table["name"]) == ["tiny"] and table["kind"][0] == "DeepREMAP"
    model = pretrained.load("tiny", device="cpu", registry=file)
    assert model.predict(flux[:2])["teff"].unit == "K"


def test_a_damaged_file_and_an_unknown_name_are_refused(registry):
    file, _ = registry
    with pytest.raises(ValueError, match="name must be the name of a bundled model .tiny"):
        pretrained.load("nope", registry=file)
    model_file = file.parent / "tiny.pt"
    model_file.write_bytes(model_file.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ValueError, match="SHA-256 .* damaged or was replaced"):
        pretrained.load("tiny", registry=file)
    model_file.unlink()
    with pytest.raises(ValueError, match="is missing: reinstall"):
        pretrained.load("tiny", registry=file)


def test_the_bundled_registry_lists_every_file_it_ships():
    table = pretrained.list_models()
    for name in table["name"]:
        assert pretrained.model_path(name).is_file()  # its SHA-256 checked
    registry = json.loads(pretrained.REGISTRY_FILE.read_text())
    listed = {entry["file"] for entry in registry.values()}
    listed |= {entry["instrument"]["rv_templates"] for entry in registry.values()
               if "rv_templates" in entry.get("instrument", {})}
    listed |= {entry["denoiser"] for entry in registry.values() if "denoiser" in entry}
    shipped = {p.name for p in pretrained.REGISTRY_FILE.parent.iterdir()
               if p.suffix in (".pt", ".fits")}
    assert shipped == listed


def test_models_command_and_an_unknown_name(capsys, tmp_path):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in pretrained.list_models()["name"]:
        assert f"{name}:" in out
    assert "recipe: " in out
    assert main(["predict", "no-such-model", str(tmp_path), "--out",
                 str(tmp_path / "p.ecsv"), "--quiet"]) == 1
    assert "no bundled model of that name" in capsys.readouterr().err


def test_the_listing_says_how_each_model_was_calibrated():
    table = pretrained.list_models()
    recipes = dict(zip(table["name"], table["recipe"]))
    assert "each type by teff (4000, 7000) on its own" in recipes["miles-normalized"]
    assert "calibrated on 5-fold out-of-fold" in recipes["miles"]
    assert "on its own" not in recipes["miles"]


@pytest.mark.skipif("miles" not in pretrained.list_models()["name"],
                    reason="the bundled 'miles' model is not built")
def test_predict_with_the_bundled_miles_model_on_raw_files(miles_dir, tmp_path):
    files = sorted(miles_dir.glob("*.fits"))[:3]
    out = tmp_path / "labels.ecsv"
    assert main(["predict", "miles", *map(str, files), "--out", str(out), "--quiet",
                 "--device", "cpu"]) == 0
    table = QTable.read(out)
    assert len(table) == 3 and {"teff", "teff_err", "logg", "feh"} <= set(table.colnames)
    assert np.all((table["teff"].value > 2500) & (table["teff"].value < 40000))


def test_predict_brings_other_instruments_to_the_model_and_flags_what_it_cannot(
        miles_dir, real_dir, tmp_path):
    lamost = real_dir / "lamost"
    files = [miles_dir / "MILES_res2.50_star_m0001V.fits",
             next(lamost.glob("spec-*.fits")), next(lamost.glob("med-*.fits"))]
    out = tmp_path / "labels.ecsv"
    assert main(["predict", "miles", *map(str, files), "--out", str(out), "--quiet",
                 "--device", "cpu"]) == 0
    table = QTable.read(out)
    rows = {name.split("-")[0].split("_")[0]: k for k, name in enumerate(table["filename"])}
    assert {"coverage", "rv", "rv_err", "input_medium", "input_fwhm", "resolution_status",
            "excess_noise", "out_of_range", "out_of_range_reason"} <= set(table.colnames)
    assert table["input_medium"].tolist() == ["air", "vacuum", "vacuum"]
    miles, lrs, mrs = rows["MILES"], rows["spec"], rows["med"]
    # MILES itself: the model's instrument, at rest, every wavelength
    assert table["coverage"][miles] == 1 and abs(table["rv"][miles].value) < 20
    assert table["resolution_status"][miles] == "matched" and not table["out_of_range"][miles]
    assert table["excess_noise"][miles] == 0  # as clean as the training stars: not denoised
    # LAMOST low resolution (R ~ 1800, vacuum) is coarser than 2.5 Angstrom: flagged, said why
    assert table["resolution_status"][lrs] == "coarser" and table["out_of_range"][lrs]
    # the FWHM said is the spectrum's, not the model's 2.5 Angstrom
    assert re.search(r"its FWHM \((2\.[6-9]|3\.\d)\d A at its middle pixel\) is coarser than the "
                     r"model's resolution", str(table["out_of_range_reason"][lrs]))
    # LAMOST medium resolution covers two narrow bands of the model's range
    assert table["coverage"][mrs] < 0.5 and table["out_of_range"][mrs]
    assert "of the model's wavelengths" in str(table["out_of_range_reason"][mrs])
    assert 4800 < table["teff"][lrs].value < 6500  # a G3 star by LAMOST's own class


def test_predict_flags_a_velocity_it_cannot_find_and_noise_beyond_the_training_spectra(
        miles_dir, tmp_path):
    from astropy.io import fits

    source = miles_dir / "MILES_res2.50_star_m0003V.fits"
    files = {}
    for name, rv, snr in (("clean", 0, None), ("fast", 700, None), ("noisy", 0, 8)):
        with fits.open(source) as hdus:
            flux = np.asarray(hdus[0].data, dtype=float)
            if snr:
                noise = np.random.default_rng(0).normal(0, np.median(flux) / snr, flux.shape)
                hdus[0].data = (flux + noise).astype(np.float32)
            stretch = 1 + rv / 299792.458  # beyond the matcher's search, 500 km/s
            hdus[0].header["CRVAL1"] *= stretch
            hdus[0].header["CDELT1"] *= stretch
            files[name] = tmp_path / f"MILES_{name}.fits"
            hdus.writeto(files[name])
    out = tmp_path / "labels.ecsv"
    assert main(["predict", "miles-normalized", *map(str, files.values()), "--out", str(out),
                 "--quiet", "--device", "cpu", "--format", "MILES"]) == 0
    table = QTable.read(out)
    reasons = dict(zip(table["filename"], table["out_of_range_reason"]))
    assert "radial velocity" not in reasons["MILES_clean.fits"]
    assert "noisier" not in reasons["MILES_clean.fits"]
    assert "no radial velocity found" in reasons["MILES_fast.fits"]
    assert "noisier than the training spectra (S/N about" in reasons["MILES_noisy.fits"]


def _build_script():
    """benchmarks/build_pretrained.py, imported (its main is not run)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "build_pretrained.py"
    if not path.is_file():
        pytest.skip("benchmarks/build_pretrained.py is not beside the tests")
    spec = importlib.util.spec_from_file_location("build_pretrained", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_registry_records_the_lowest_snr_the_build_drew_for_each_model():
    """What out_of_range judges noise against is the build's, not a copy of its number."""
    import re

    build = _build_script()
    for name, entry in json.loads(pretrained.REGISTRY_FILE.read_text()).items():
        assert "lowest_training_snr" in entry, name
        if entry["kind"] == "SpectralVAE":
            assert entry["lowest_training_snr"] is None  # the stars as observed: no noise drawn
            continue
        found = re.search(r"(\d+) degraded copies of each training star \(([^)]*)\)",
                          entry["recipe"])
        copies, steps = (int(found[1]), found[2].split(", ")) if found else (0, [])
        assert entry["lowest_training_snr"] == build.lowest_training_snr(copies, steps), name
        assert entry["lowest_training_snr"] == 20  # the noisiest degraded copies
    # without noisy copies, the noisiest spectra are the synthetic pre-training ones
    assert build.lowest_training_snr(3, ["resolution", "rv"]) == build.SYNTHETIC_SNR[0] == 30
    assert "lowest_training_snr" not in pretrained.list_models().colnames


def test_excess_noise_is_judged_against_the_lowest_snr_recorded_before_it():
    import astropy.units as u
    from specutils import Spectrum

    from stellarlatent._commands.transfer import add_transfer_columns

    denoised = Spectrum(flux=np.ones((3, 8)) * u.one,
                        spectral_axis=np.linspace(5000.0, 5010.0, 8) * u.AA,
                        meta={"excess_noise": np.array([0.0, 0.04, 0.1])}, spectral_axis_index=1)
    reasons = {}
    for snr in (20.0, 5.0, None):
        table = QTable({"teff": np.full(3, 5000.0)})
        add_transfer_columns(table, denoised, min_coverage=0.5, lowest_snr=snr)
        assert table["excess_noise"].tolist() == [0.0, 0.04, 0.1]
        reasons[snr] = table["out_of_range_reason"].tolist()
    assert reasons[20.0][:2] == ["", ""]
    assert "S/N about 10.0 at the median continuum, below 20)" in reasons[20.0][2]
    assert reasons[5.0] == reasons[None] == ["", "", ""]  # a model trained on S/N 5; none recorded


def test_predict_judges_noise_by_the_lowest_snr_in_the_models_registry_entry(
        miles_dir, tmp_path, monkeypatch):
    from astropy.io import fits

    path = tmp_path / "MILES_noisy.fits"
    with fits.open(miles_dir / "MILES_res2.50_star_m0003V.fits") as hdus:
        flux = np.asarray(hdus[0].data, dtype=float)
        noise = np.random.default_rng(0).normal(0, np.median(flux) / 8, flux.shape)
        hdus[0].data = (flux + noise).astype(np.float32)
        hdus.writeto(path)
    registry = json.loads(pretrained.REGISTRY_FILE.read_text())
    registry["miles-normalized"]["lowest_training_snr"] = 5.0  # a build that drew S/N 5-150
    file = tmp_path / "registry.json"
    file.write_text(json.dumps(registry))
    monkeypatch.setattr(pretrained, "REGISTRY_FILE", file)  # the model files stay where they are
    out = tmp_path / "labels.ecsv"
    assert main(["predict", "miles-normalized", str(path), "--out", str(out), "--quiet",
                 "--device", "cpu", "--format", "MILES"]) == 0
    table = QTable.read(out)
    assert 0.05 < table["excess_noise"][0] < 0.2  # S/N about 8: in the range of S/N 5 and up
    assert "noisier" not in table["out_of_range_reason"][0]


def test_predict_without_matching_and_its_bad_options(miles_dir, tmp_path, capsys):
    file = str(miles_dir / "MILES_res2.50_star_m0001V.fits")
    out = tmp_path / "labels.ecsv"
    assert main(["predict", "miles", file, "--out", str(out), "--quiet", "--no-match"]) == 0
    table = QTable.read(out)
    assert "rv" not in table.colnames and table["coverage"][0] == 1
    assert main(["predict", "miles", file, "--out", str(out), "--quiet", "--overwrite",
                 "--no-match", "--resolution", "2000"]) == 1
    assert "--no-match" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["predict", "miles", file, "--out", str(out), "--min-coverage", "1.5"])
    assert "expected a number from 0 to 1" in capsys.readouterr().err


def test_the_bundled_denoiser_cleans_a_noisy_star_and_leaves_a_clean_one(miles_dir, tmp_path,
                                                                         capsys):
    import astropy.units as u
    from specutils import Spectrum

    from stellarlatent.datasets import read_miles

    spectra, _ = read_miles(miles_dir, ids=[1, 3, 5])
    flux = spectra.flux.value
    noise = np.random.default_rng(0).standard_normal(flux.shape)
    noisy = Spectrum(flux=(flux + noise * np.median(flux, axis=1, keepdims=True) / 20) * u.one,
                     spectral_axis=spectra.spectral_axis, spectral_axis_index=1)
    denoised = pretrained.pipeline("miles-normalized")
    plain = pretrained.pipeline("miles-normalized", denoise=False)
    assert type(denoised.steps[-1][1]).__name__ == "PCADenoiser"
    assert len(plain.steps) == len(denoised.steps) - 1
    reference = plain.transform(spectra).flux.value
    out = denoised.transform(noisy)
    assert np.all(out.meta["excess_noise"] > 0.02)  # S/N 20 against the continuum's ~1
    np.testing.assert_array_equal(denoised.transform(spectra).flux.value, reference)

    def rms(a):
        return np.sqrt(np.nanmean((a - reference) ** 2, axis=1))

    assert np.all(rms(out.flux.value) < 0.6 * rms(plain.transform(noisy).flux.value))
    # from the command line: the column, and --no-denoise
    from astropy.io import fits

    path = tmp_path / "MILES_res2.50_star_m0001V.fits"  # the MILES file, made noisy
    with fits.open(miles_dir / path.name) as hdus:
        data = hdus[0].data.astype(float)
        hdus[0].data = data + np.nanmedian(data) / 20 * noise[0].reshape(data.shape)
        hdus.writeto(path)
    out_file = tmp_path / "labels.ecsv"
    assert main(["predict", "miles-normalized", str(path), "--out", str(out_file), "--quiet",
                 "--device", "cpu"]) == 0
    assert QTable.read(out_file)["excess_noise"][0] > 0.02
    assert main(["predict", "miles-normalized", str(path), "--out", str(out_file), "--quiet",
                 "--device", "cpu", "--overwrite", "--no-denoise"]) == 0
    assert "excess_noise" not in QTable.read(out_file).colnames


def test_a_damaged_denoiser_is_refused(tmp_path):
    registry = json.loads(pretrained.REGISTRY_FILE.read_text())
    entry = dict(registry["miles"])
    (tmp_path / entry["denoiser"]).write_bytes(b"not the denoiser")
    file = tmp_path / "registry.json"
    file.write_text(json.dumps({"miles": entry}))
    with pytest.raises(ValueError, match="denoiser of the pretrained model .* damaged"):
        pretrained.denoiser("miles", registry=file)
    del entry["denoiser"]
    file.write_text(json.dumps({"miles": entry}))
    assert pretrained.denoiser("miles", registry=file) is None


def test_instrument_matcher_refuses_damaged_templates(tmp_path):
    registry = json.loads(pretrained.REGISTRY_FILE.read_text())
    entry = registry["miles"]
    (tmp_path / entry["instrument"]["rv_templates"]).write_bytes(b"not the templates")
    file = tmp_path / "registry.json"
    file.write_text(json.dumps({"miles": entry}))
    with pytest.raises(ValueError, match="radial-velocity templates .* damaged"):
        pretrained.instrument_matcher("miles", registry=file)
    matcher = pretrained.instrument_matcher("miles", remove_rv=False, registry=file)
    assert matcher.rv_estimators_ == []


def test_the_bundled_denoisers_take_photon_noise_and_their_pipelines_keep_the_continuum(
        tmp_path):
    from stellarlatent.preprocessing import ContinuumNormalizer

    prior = pretrained.denoiser("miles-normalized")
    assert prior.noise_exponent == 1.0
    normalizers = [step for _, step in pretrained.pipeline("miles-normalized").steps
                   if isinstance(step, ContinuumNormalizer)]
    assert [step.store_continuum for step in normalizers] == [True]
    plain = pretrained.pipeline("miles-normalized", denoise=False)
    assert not any(getattr(step, "store_continuum", False) for _, step in plain.steps)
    # a registry of an earlier release records no exponent: white noise
    registry = json.loads(pretrained.REGISTRY_FILE.read_text())
    entry = dict(registry["miles-normalized"])
    del entry["denoiser_noise_exponent"]
    for key in ("file", "denoiser"):
        (tmp_path / entry[key]).write_bytes((pretrained.REGISTRY_FILE.parent
                                             / entry[key]).read_bytes())
    file = tmp_path / "registry.json"
    file.write_text(json.dumps({"miles-normalized": entry}))
    assert pretrained.denoiser("miles-normalized", registry=file).noise_exponent == 0.0


def test_phoenix_models_are_broadened_to_the_bundled_model_and_labelled(real_dir, tmp_path):
    """1.5 million vacuum pixels from 500 Angstrom: only the model's range is matched."""
    files = sorted(str(p) for p in (real_dir / "phoenix").glob("lte*.fits"))
    out = tmp_path / "labels.ecsv"
    assert main(["predict", "miles-normalized", *files, "--phoenix-wave",
                 str(real_dir / "phoenix" / "WAVE_PHOENIX-ACES-AGSS-COND-2011.fits"),
                 "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    table = QTable.read(out)
    assert len(table) == 3 and table["resolution_status"].tolist() == ["matched"] * 3
    assert np.all(table["coverage"] > 0.99)
    # lte05800-4.50-0.0, lte06000-4.00-0.0 and lte06000-4.00-2.0
    assert np.all(np.abs(table["teff"].value - [5800, 6000, 6000]) < 400)
    assert table["feh"][2].value < -1.5 < -0.6 < table["feh"][0].value


def test_a_file_gets_the_same_labels_whatever_else_is_in_the_run(miles_dir, real_dir, tmp_path):
    """A HARPS file reports its noise, a MILES file does not: run together, each keeps its own."""
    harps = str(next((real_dir / "harps").glob("*_s1d_A.fits")))
    tables = []
    miles = str(miles_dir / "MILES_res2.50_star_m0001V.fits")
    for k, files in enumerate(([harps], [harps, miles])):
        out = tmp_path / f"labels{k}.ecsv"
        assert main(["predict", "miles-normalized", *files, "--out", str(out), "--quiet",
                     "--device", "cpu"]) == 0
        tables.append(QTable.read(out))
    alone, together = tables[0][0], tables[1][0]
    for name in ("teff", "logg", "feh", "excess_noise"):
        np.testing.assert_allclose(together[name], alone[name], rtol=1e-6, err_msg=name)


def test_the_vae_gets_spectra_at_its_resolution_but_keeps_their_velocity(real_dir, tmp_path):
    """One latent of "miles-vae" reads the velocity: spectra are matched but not shifted."""
    from stellarlatent.preprocessing import InstrumentMatcher

    matcher = pretrained.pipeline("miles-vae").steps[0][1]
    assert isinstance(matcher, InstrumentMatcher)
    assert matcher.remove_rv is False and matcher.fwhm.to_value("AA") == 2.5
    assert pretrained.instrument_matcher("miles", rescale=True).remove_rv is True
    harps = str(next((real_dir / "harps").glob("*_s1d_A.fits")))
    latents = []
    for k, extra in enumerate(([], ["--no-match"])):
        out = tmp_path / f"z{k}.ecsv"
        assert main(["predict", "miles-vae", harps, "--out", str(out), "--quiet",
                     "--device", "cpu", *extra]) == 0
        table = QTable.read(out)
        latents.append(np.array([table[f"z{j}"][0] for j in range(8)], dtype=float))
    # R = 115,000 broadened to 2.5 Angstrom (matched) or not (--no-match)
    assert np.max(np.abs(latents[0] - latents[1])) > 0.01


def test_velocities_of_the_bundled_models_carry_the_error_their_templates_add(miles_dir):
    """Rest-frame MILES stars scatter by about 6 km/s against the templates: the errors say so."""
    from specutils import Spectrum

    for name in ("miles", "miles-normalized"):
        matcher = pretrained.instrument_matcher(name)
        assert matcher.rv_systematic.to_value("km/s") == pytest.approx(5.8)
    star = Spectrum.read(miles_dir / "MILES_res2.50_star_m0001V.fits")
    out = pretrained.instrument_matcher("miles", rescale=True).transform(star)
    assert 5.8 <= out.meta["rv_err"][0].to_value("km/s") < 8


def test_a_folder_of_phoenix_models_reads_its_models_not_its_wavelength_file(real_dir, tmp_path,
                                                                             capsys):
    out = tmp_path / "labels.ecsv"
    assert main(["predict", "miles-normalized", str(real_dir / "phoenix"), "--out", str(out),
                 "--quiet", "--device", "cpu"]) == 0
    assert len(QTable.read(out)) == 3
    assert "skipped" not in capsys.readouterr().err


def test_explore_and_diagnose_bring_files_to_the_model_as_predict_does(real_dir, tmp_path):
    """Vacuum files (LAMOST, PHOENIX) get the same latents from every command."""
    import re

    from stellarlatent.diagnostics import LatentExplorer

    files = [str(next((real_dir / "lamost").glob("spec-*.fits"))),
             str(next((real_dir / "phoenix").glob("lte*.fits")))]
    common = ["--quiet", "--device", "cpu"]
    assert main(["predict", "miles-vae", *files, "--out", str(tmp_path / "z.ecsv"),
                 *common]) == 0
    table = QTable.read(tmp_path / "z.ecsv")
    predicted = np.array([[row[f"z{j}"] for j in range(8)] for row in table], dtype=float)
    # latents say how far to trust them as labels do; miles-vae measures no velocity
    assert {"coverage", "resolution_status", "out_of_range"} <= set(table.colnames)
    assert "rv" not in table.colnames and table["out_of_range"][0]  # LAMOST: coarser
    found = []
    for k, extra in enumerate(([], ["--no-match"])):
        out = tmp_path / f"explore{k}"
        assert main(["explore", "miles-vae", *files, "--out", str(out), "--neighbors", "1",
                     *common, *extra]) == 0
        page = (out / "explorer.html").read_text()
        data = re.search(r'id="explorer-data">(.*?)</script>', page, re.S).group(1)
        found.append(LatentExplorer(json.loads(data)).latents)
    np.testing.assert_allclose(found[0], predicted, atol=1e-4)
    assert np.max(np.abs(found[1] - predicted)) > 0.05  # unmatched vacuum spectra differ
    # diagnose reads them the same way (it refused the files of a bundled DeepREMAP before)
    labels = tmp_path / "labels.ecsv"
    QTable({"filename": [f.rsplit("/", 1)[1] for f in files], "teff": [5200.0, 5800.0],
            "logg": [4.4, 4.5], "feh": [0.0, 0.0]}).write(labels)
    assert main(["diagnose", "miles", *files, "--labels", str(labels), "--out",
                 str(tmp_path / "report"), *common]) == 0
    # its predictions say which file each row is, beside the true labels
    predictions = QTable.read(tmp_path / "report" / "predictions.ecsv")
    assert predictions["filename"].tolist() == [f.rsplit("/", 1)[1] for f in files]
    assert predictions["teff_true"].value.tolist() == [5200.0, 5800.0]
    # no known label: nothing to compare with, so no report of NaN
    QTable({"filename": [f.rsplit("/", 1)[1] for f in files], "teff": [np.nan] * 2,
            "logg": [np.nan] * 2, "feh": [np.nan] * 2}).write(labels, overwrite=True)
    assert main(["diagnose", "miles", *files, "--labels", str(labels), "--out",
                 str(tmp_path / "report2"), *common]) == 1
    assert not (tmp_path / "report2" / "predictions.ecsv").exists()


def test_predict_writes_only_the_velocities_the_matching_measured(real_dir, miles_dir,
                                                                  tmp_path):
    """A LAMOST header's velocity is no velocity removed: without matching there is no rv."""
    files = [str(next((real_dir / "lamost").glob("spec-*.fits"))),
             str(miles_dir / "MILES_res2.50_star_m0001V.fits")]
    out = tmp_path / "t.ecsv"
    assert main(["predict", "miles", *files, "--no-match", "--out", str(out), "--quiet",
                 "--device", "cpu"]) == 0
    assert "rv" not in QTable.read(out).colnames
    assert main(["predict", "miles", *files, "--out", str(out), "--quiet", "--device", "cpu",
                 "--overwrite"]) == 0
    assert {"rv", "rv_err"} <= set(QTable.read(out).colnames)
