"""LatentExplorer in a real browser: Debian's chromium, headless, driven by selenium.

Skipped when chromium (or selenium) is missing, except under ``CI=true``
where they must run (.ci/run installs chromium and chromium-driver).
"""

import os
import shutil
import tempfile
import time

import astropy.units as u
import numpy as np
import pytest
from astropy.table import Table

from stellarlatent.diagnostics import LatentExplorer

from .test_explorer import brute_force_neighbors, fitted_vae

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _missing(message):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (required under CI=true)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def driver():
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        _missing(f"the browser tests need {CHROMIUM} and {CHROMEDRIVER} "
                 "(apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("the browser tests need selenium (pip install selenium)")
    profile = tempfile.mkdtemp(prefix="stellarlatent-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.set_window_size(1400, 1600)
    yield browser
    browser.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    vae, X, labels = fitted_vae()
    explorer = LatentExplorer.from_estimator(vae, X, labels, n_neighbors=4, max_spectra=60)
    path = explorer.save(tmp_path_factory.mktemp("explorer") / "explorer.html")
    return vae, X, explorer, path


def _open(driver, path):
    driver.get(path.as_uri())
    driver.get_log("browser")  # start each test with an empty log
    assert driver.execute_script("return typeof window.explorer") == "object"


def _errors(driver):
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]


def test_slider_redraws_the_spectrum_inverse_transform_gives(driver, page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    vae, _, explorer, path = page
    _open(driver, path)
    js = "return window.explorer."
    before = np.array(driver.execute_script(js + "currentSpectrum()"))
    star = driver.execute_script(js + "selected()")
    np.testing.assert_allclose(driver.execute_script(js + "currentLatent()"),
                               explorer.latents[star], rtol=0, atol=0)
    dim = int(explorer.dims[0])
    slider = driver.find_element(By.ID, f"slider-{dim}")
    for _ in range(60):  # the keyboard moves the slider as a user would
        slider.send_keys(Keys.ARROW_RIGHT)
    after_keys = np.array(driver.execute_script(js + "currentSpectrum()"))
    z = np.array(driver.execute_script(js + "currentLatent()"))
    assert z[dim] > explorer.latents[star, dim]
    assert np.max(np.abs(after_keys - before)) > 0
    for d, value in [(dim, float(explorer.latents[:, dim].min())),
                     (int(explorer.dims[-1]), float(explorer.latents[:, explorer.dims[-1]].max()))]:
        driver.execute_script(js + "setLatent(arguments[0], arguments[1])", d, value)
        drawn = np.array(driver.execute_script(js + "currentSpectrum()"))
        z = np.array(driver.execute_script(js + "currentLatent()"))
        low, high = driver.execute_script(
            "var s = document.getElementById('slider-' + arguments[0]);"
            "return [+s.min, +s.max];", d)
        assert abs(z[d] - value) <= (high - low) / 1000  # the slider's step
        expected = vae.inverse_transform(z[np.newaxis]).flux.value[0]
        assert drawn.shape == expected.shape
        assert np.max(np.abs(drawn - expected)) < 1e-3 * np.max(np.abs(expected))
    assert _errors(driver) == []


def test_click_on_a_point_shows_its_neighbours(driver, page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    vae, X, explorer, path = page
    _open(driver, path)
    canvas = driver.find_element(By.ID, "scatter")
    pixels = np.array(driver.execute_script(
        "var e = window.explorer, out = [];"
        "for (var i = 0; i < arguments[0]; i++) out.push(e.pointPixel(i)); return out;",
        explorer.latents.shape[0]))
    gap = np.sqrt(((pixels[:, None] - pixels[None]) ** 2).sum(-1))
    np.fill_diagonal(gap, np.inf)
    gap = gap.min(axis=1)
    gap[driver.execute_script("return window.explorer.selected()")] = 0
    star = int(np.argmax(gap))  # the most isolated point: a click cannot miss it
    assert gap[star] > 3
    size = canvas.size
    x, y = pixels[star]
    dx, dy = int(round(x - size["width"] / 2)), int(round(y - size["height"] / 2))
    ActionChains(driver).move_to_element_with_offset(canvas, dx, dy).click().perform()
    assert driver.execute_script("return window.explorer.selected()") == star
    assert driver.find_element(By.ID, "hover").text.startswith(f"spectrum {star}: teff ")
    expected = brute_force_neighbors(vae.transform(X)[:, explorer.dims], 4)[star]
    assert driver.execute_script("return window.explorer.neighbors()") == expected.tolist()
    items = driver.find_elements(By.CSS_SELECTOR, "#neighbours li")
    assert [int(li.get_attribute("data-index")) for li in items] == expected.tolist()
    assert str(star) in driver.find_element(By.ID, "star-title").text
    labels_text = driver.find_element(By.ID, "star-labels").text
    assert "teff" in labels_text and "logg" in labels_text
    items[0].click()  # a neighbour becomes the selected star
    assert driver.execute_script("return window.explorer.selected()") == int(expected[0])
    assert _errors(driver) == []


def test_zoom_dropdowns_and_no_console_errors(driver, page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _, _, explorer, path = page
    _open(driver, path)
    for name, value in (("wmin", "5100"), ("wmax", "5300")):
        box = driver.find_element(By.ID, name)
        box.clear()
        box.send_keys(value + "\n")
    assert driver.execute_script("return window.explorer.zoom()") == [5100, 5300]
    star = driver.find_element(By.ID, "star")
    ActionChains(driver).move_to_element_with_offset(star, -100, 0).click_and_hold() \
        .move_by_offset(150, 0).release().perform()
    lo, hi = driver.execute_script("return window.explorer.zoom()")
    assert 5100 < lo < hi < 5300
    ActionChains(driver).double_click(star).perform()
    assert driver.execute_script("return window.explorer.zoom()") == [5000, 5600]
    Select(driver.find_element(By.ID, "xdim")).select_by_value("3")
    Select(driver.find_element(By.ID, "colour")).select_by_visible_text("logg [dex]")
    driver.find_element(By.ID, "reset").click()
    assert _errors(driver) == []
    assert driver.execute_script("return document.querySelectorAll('#sliders input').length") \
        == explorer.dims.size


def test_first_draw_of_10000_spectra_is_fast(driver, page, tmp_path):
    vae, X, _, _ = page
    rng = np.random.default_rng(1)
    flux = X.flux.value
    rows = rng.integers(0, flux.shape[0], 10_000)
    big = flux[rows] + rng.normal(0, 0.01, (10_000, flux.shape[1]))
    labels = Table({"teff": rng.uniform(4000, 7000, 10_000) * u.K})
    path = LatentExplorer.from_estimator(vae, big, labels).save(tmp_path / "big.html")
    started = time.perf_counter()
    _open(driver, path)
    assert time.perf_counter() - started < 10
    assert driver.execute_script("return window.explorer.firstDrawMs") < 3000
    assert _errors(driver) == []


@pytest.mark.parametrize("variational", [True, False])
def test_page_decodes_any_layer_plan(driver, tmp_path, variational):
    """Odd lengths (padded, then cropped), stride-1 and stride-3 layers, an autoencoder."""
    from stellarlatent.estimators import SpectralVAE

    rng = np.random.default_rng(4)
    X = 1 + 0.1 * rng.normal(size=(40, 101))
    vae = SpectralVAE(latent_dim=3, beta=0.01, variational=variational, channels=(4, 8, 6),
                      kernel_sizes=(7, 5, 3), strides=(3, 2, 1), max_epochs=1, verbose=0,
                      random_state=0, device="cpu").fit(X)
    assert vae.module_.padded_length == 102
    path = LatentExplorer.from_estimator(vae, X, n_neighbors=2).save(tmp_path / "plan.html")
    _open(driver, path)
    Z = rng.normal(0, 3, (4, 3))
    drawn = np.array(driver.execute_script(
        "return arguments[0].map(function (z) { return window.explorer.decode(z); });",
        Z.tolist()))
    expected = vae.inverse_transform(Z).flux.value
    assert drawn.shape == expected.shape == (4, 101)
    assert np.max(np.abs(drawn - expected)) < 1e-3 * np.max(np.abs(expected))
    assert _errors(driver) == []
