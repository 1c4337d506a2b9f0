"""Sphinx configuration of the course's site (``make book``; the sources are staged by book/build.py).

Sphinx with myst-nb: it renders executed notebooks as they are (nothing runs here), builds a
search index that works from the files alone, and, with the settings below, loads nothing from
the network when a page is opened: math is rendered to MathML at build time (book/mathml.py,
no MathJax from a CDN), and myst-nb's widget JavaScript (require.js and the widget manager from
a CDN) is switched off, since an explorer needs a live kernel anyway.

Why this tool: everything comes from PyPI through requirements.txt (no Node), it renders executed
notebooks without running them, and its search index works from file://. Jupyter Book 2 (mystmd)
needs Node and fetches its theme at build time, so it does not build offline from a fresh clone;
mkdocs-jupyter's notebook template loads require.js and MathJax from CDNs by default.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

project = "compresskit"
author = "the compresskit authors"
copyright = "the compresskit authors (MIT licence)"
html_title = "compresskit: model compression you can run on a laptop"

extensions = ["myst_nb", "book.mathml"]
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3  # README's and the guides' #section links resolve
nb_execution_mode = "off"  # the notebooks arrive executed (book/build.py)
nb_ipywidgets_js = {}  # no require.js / widget manager from a CDN
nb_merge_streams = True
html_math_renderer = "mathml"
html_theme = "furo"
html_copy_source = False
html_show_sourcelink = False
html_css_files = ["book.css"]
html_static_path = [str(Path(__file__).resolve().parent / "static")]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
suppress_warnings = ["myst.header"]  # a notebook may go from # to ### as JupyterLab allows
