"""Sphinx configuration for the stellarlatent documentation."""

import datetime
import os

from sphinx_astropy.conf.v3 import *  # noqa: F401,F403
from sphinx_astropy.conf.v3 import exclude_patterns, extensions, intersphinx_mapping

import stellarlatent

project = "stellarlatent"
author = "The stellarlatent developers"
copyright = f"{datetime.date.today().year}, {author}"
version = stellarlatent.__version__.split("+")[0]
release = stellarlatent.__version__

# CI and most build machines have no network: intersphinx is opt-in.
if os.environ.get("STELLARLATENT_DOCS_INTERSPHINX") != "1":
    intersphinx_mapping.clear()
    extensions.remove("sphinx.ext.intersphinx")
    extensions.remove("sphinx_astropy.ext.intersphinx_toggle")

exclude_patterns += ["_build", "**.ipynb_checkpoints"]
html_title = f"stellarlatent {version}"
html_static_path = ["_static"]
templates_path = ["_templates"]
automodapi_toctreedirnm = "api"
automodsumm_inherited_members = False
numpydoc_show_class_members = False
plot_include_source = True
plot_html_show_source_link = False
plot_formats = [("png", 100)]
plot_rcparams = {"figure.autolayout": True}

# The latent explorer page of docs/explorer.rst and its screenshot, made with a
# headless chromium when one is installed; without one the page says so
# (the "explorer_screenshot" tag selects the picture or the note).
if os.environ.get("STELLARLATENT_DOCS_SCREENSHOT", "1") != "0":
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _explorer_screenshot import make_screenshot

    if make_screenshot(os.path.join(os.path.dirname(os.path.abspath(__file__)), "_static")):
        tags.add("explorer_screenshot")  # noqa: F821 - Sphinx defines tags in conf.py
