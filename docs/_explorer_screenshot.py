"""Render the latent explorer of a small synthetic example for the documentation.

`make_screenshot` fits a small SpectralVAE on synthetic spectra, writes its
`~stellarlatent.diagnostics.LatentExplorer` page to ``_static/explorer.html``
and, when a chromium is installed, a screenshot of it to
``_static/explorer.png``. docs/conf.py calls it at build time and adds the
Sphinx tag ``explorer_screenshot`` when the image exists, so a machine
without chromium builds the pages (with a note instead of the picture).

Run it on its own with ``python docs/_explorer_screenshot.py``.
"""

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger("stellarlatent.docs")

BROWSERS = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars")


def find_browser():
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def build_page(path):
    """Fit a small SpectralVAE on synthetic spectra and write its explorer page."""
    import astropy.units as u
    import torch

    from stellarlatent.datasets import make_synthetic_spectra
    from stellarlatent.diagnostics import LatentExplorer
    from stellarlatent.estimators import SpectralVAE
    from stellarlatent.preprocessing import SpectralGrid

    torch.set_num_threads(1)
    grid = SpectralGrid.log_uniform(4800 * u.AA, 5600 * u.AA, 512)
    spectra, labels = make_synthetic_spectra(400, grid=grid, rv=0 * u.km / u.s,
                                             random_state=0)
    vae = SpectralVAE(latent_dim=6, beta=0.003, max_epochs=25, lr=3e-3, verbose=0,
                      random_state=0, device="cpu").fit(spectra)
    explorer = LatentExplorer.from_estimator(vae, spectra, labels, n_neighbors=5,
                                             title="Latent explorer: 400 synthetic spectra")
    return explorer.save(path)


def make_screenshot(static_dir, force=False):
    """Write explorer.html and explorer.png into ``static_dir``; True when the image exists.

    Skips the work when both files are newer than the explorer's source
    (unless ``force``); returns False, with a log message, when no chromium
    is found or it fails.
    """
    static_dir = Path(static_dir)
    static_dir.mkdir(parents=True, exist_ok=True)
    page, image = static_dir / "explorer.html", static_dir / "explorer.png"
    import stellarlatent.diagnostics._explorer_page as page_source
    import stellarlatent.diagnostics.explorer as source

    stamp = max(Path(m.__file__).stat().st_mtime for m in (source, page_source))
    fresh = all(p.is_file() and p.stat().st_mtime > stamp for p in (page, image))
    if fresh and not force:
        return True
    browser = find_browser()
    if browser is None:
        log.info("no chromium found: the explorer screenshot is left out of the docs")
        return False
    try:
        build_page(page)
        with tempfile.TemporaryDirectory(prefix="stellarlatent-docs-chromium-") as profile:
            subprocess.run(
                [browser, *FLAGS, f"--user-data-dir={profile}", "--window-size=1300,1180",
                 "--virtual-time-budget=5000", f"--screenshot={image}", page.resolve().as_uri()],
                check=True, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("the explorer screenshot failed (%s): left out of the docs", exc)
        return False
    return image.is_file()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    ok = make_screenshot(Path(__file__).parent / "_static", force=True)
    print("screenshot written" if ok else "no screenshot")
    raise SystemExit(0 if ok else 1)
