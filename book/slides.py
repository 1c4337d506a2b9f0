"""An instructor's slide deck per chapter, from its executed notebook: one self-contained HTML file.

A slide per figure: the section it belongs to, the claim it supports (the first paragraph of
the text cell before it) and the lines the cell printed last (where the verdicts and measured
numbers are). The title slide lists the chapter's learning objectives. Images are embedded as
data URIs and the few lines of script are inline, so a deck opens from a USB stick with no
network. Arrow keys, space or a click move; ``f`` goes full screen.

Why not nbconvert's reveal.js: it loads reveal.js from a CDN unless a copy is installed (npm, not
PyPI), and it needs every cell tagged as a slide by hand; these decks pick their slides
themselves, so a chapter edited the night before a workshop gets a matching deck.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import markdown_it

_MD = markdown_it.MarkdownIt("commonmark").enable("table")
STYLE = """
body { margin: 0; font-family: system-ui, sans-serif; background: #fff; color: #222; }
section { display: none; box-sizing: border-box; height: 100vh; padding: 3vh 5vw; flex-direction: column; }
section.on { display: flex; }
h1 { font-size: 2.4em; margin: 0.2em 0; } h2 { font-size: 1.6em; margin: 0 0 0.3em; color: #444; }
.claim { font-size: 1.1em; max-width: 70em; } .claim p { margin: 0.2em 0; }
.fig { flex: 1; min-height: 0; display: flex; gap: 1em; justify-content: center; align-items: center; }
.fig img { height: 100%; width: auto; max-width: 100%; object-fit: contain; }
pre { font-size: 0.8em; background: #f4f4f4; padding: 0.4em; margin: 0.3em 0; white-space: pre-wrap; }
.n { position: fixed; right: 1em; bottom: 0.5em; color: #888; font-size: 0.8em; }
"""
SCRIPT = """
const s = document.querySelectorAll('section'); let i = 0;
function go(k) { s[i].classList.remove('on'); i = Math.max(0, Math.min(s.length - 1, k));
  s[i].classList.add('on'); document.querySelector('.n').textContent = (i + 1) + ' / ' + s.length; location.hash = i + 1; }
document.addEventListener('keydown', e => {
  if (['ArrowRight', 'ArrowDown', 'PageDown', ' '].includes(e.key)) go(i + 1);
  else if (['ArrowLeft', 'ArrowUp', 'PageUp'].includes(e.key)) go(i - 1);
  else if (e.key === 'Home') go(0); else if (e.key === 'End') go(s.length - 1);
  else if (e.key === 'f') document.documentElement.requestFullscreen();
});
document.addEventListener('click', () => go(i + 1));
go((parseInt(location.hash.slice(1)) || 1) - 1);
"""


def _first_paragraph(markdown: str) -> str:
    for block in re.split(r"\n\s*\n", markdown.strip()):
        if block.strip() and not block.lstrip().startswith(("#", "```", "|", "<")):
            return block.strip()
    return ""


def _printed_tail(cell, lines: int = 6) -> str:
    text = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream" and o.get("name") == "stdout")
    kept = [line for line in text.rstrip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def slides(nb) -> list[str]:
    """The deck's sections: a title slide, then one per code cell that drew a figure."""
    title, objectives, section, claim = "", "", "", ""
    out = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            heading = re.match(r"\s*(#+)\s+(.*)", cell.source)
            if heading and not title and heading[1] == "#":
                title = heading[2].strip()
            elif heading:
                section = heading[2].strip()
            if "learning objectives" in cell.source.lower() or "you will learn" in cell.source.lower():
                objectives = cell.source
            paragraph = _first_paragraph(re.sub(r"^\s*#.*$", "", cell.source, flags=re.M))
            if paragraph:
                claim = paragraph
            continue
        images = [o["data"]["image/png"] for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        if not images:
            continue
        figs = "".join(f'<img alt="figure" src="data:image/png;base64,{str(png).strip()}">' for png in images)
        printed = _printed_tail(cell)
        out.append(f"<section><h2>{html.escape(section or title)}</h2><div class=\"claim\">{_MD.render(claim)}</div>"
                   f"<div class=\"fig\">{figs}</div>" + (f"<pre>{html.escape(printed)}</pre>" if printed else "") + "</section>")
    first = f"<section><h1>{html.escape(title)}</h1><div class=\"claim\">{_MD.render(objectives)}</div></section>"
    return [first] + out


def write_deck(nb, stem: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    sections = slides(nb)
    page = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(stem)}: slides</title>"
            f"<style>{STYLE}</style></head><body>{''.join(sections)}<div class=\"n\"></div><script>{SCRIPT}</script></body></html>")
    path = folder / f"{stem}.html"
    path.write_text(page, encoding="utf-8")
    return path
