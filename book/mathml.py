"""A Sphinx math renderer that writes MathML at build time (latex2mathml), so the site needs no
MathJax from a CDN: browsers render MathML Core natively (Chromium since 109, Firefox, Safari)."""

from __future__ import annotations

from docutils import nodes
from latex2mathml.converter import convert


def _inline(self, node: nodes.Element) -> None:
    self.body.append(convert(node.astext()))
    raise nodes.SkipNode


def _block(self, node: nodes.Element) -> None:
    self.body.append('<div class="math">' + convert(node.astext(), display="block") + "</div>")
    raise nodes.SkipNode


def setup(app):
    app.add_html_math_renderer("mathml", (_inline, None), (_block, None))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
