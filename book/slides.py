"""An instructor's slide deck per chapter, from its executed notebook: one self-contained HTML file.

A slide per correction of the article (the "The article says / In fact" box, and what the cell
after it printed to settle it) and a slide per figure: the section it belongs to, the claim it
supports (the first paragraph of the text cell before it) and the lines the cell printed last
(where the verdicts and measured numbers are). The title slide lists the chapter's learning objectives. Images are embedded as
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


def _corrections(markdown: str) -> list[str]:
    """The "The article says ... / In fact ..." boxes (block quotes) in a text cell."""
    boxes, current = [], []
    for line in markdown.splitlines() + [""]:
        if line.lstrip().startswith(">"):
            current.append(line)
        elif current:
            boxes.append("\n".join(current))
            current = []
    return [box for box in boxes if "**In fact**" in box]


def _page_links(rendered: str) -> str:
    """A chapter's links to notebooks (chapters/X.ipynb, ../solutions/X.ipynb), as the site's pages."""
    def to_page(match: re.Match) -> str:
        target = match[1] if "/" in match[1] else f"../chapters/{match[1]}"
        return f'href="{target}.html{match[2] or ""}"'
    return re.sub(r'href="((?:\.\./(?:chapters|solutions)/)?[\w.-]+)\.ipynb(#[^"]*)?"', to_page, rendered)


def _slide(heading: str, claim_md: str, images: list[str], printed: str) -> str:
    figs = "".join(f'<img alt="figure" src="data:image/png;base64,{str(png).strip()}">' for png in images)
    return (f"<section><h2>{html.escape(heading)}</h2><div class=\"claim\">{_page_links(_MD.render(claim_md))}</div>"
            + (f"<div class=\"fig\">{figs}</div>" if figs else "")
            + (f"<pre>{html.escape(printed)}</pre>" if printed else "") + "</section>")


def slides(nb) -> list[str]:
    """The deck's sections: a title slide with the learning objectives; a slide per correction of the
    article (the box and what the next cell printed to settle it); a slide per figure."""
    title, objectives, section, claim, corrections = "", "", "", "", []
    out = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            heading = re.match(r"\s*(#+)\s+(.*)", cell.source)
            if heading and not title and heading[1] == "#":
                title = heading[2].strip()
            elif heading:
                section = heading[2].strip()
            if "learning objectives" in cell.source.lower() or "you will learn" in cell.source.lower():
                objectives = re.sub(r"^#\s.*$", "", cell.source, flags=re.M)  # the title is the slide's own
            paragraph = _first_paragraph(re.sub(r"^\s*#.*$", "", cell.source, flags=re.M))
            if paragraph:
                claim = paragraph
            corrections += _corrections(cell.source)
            continue
        if cell.cell_type != "code":
            continue
        images = [o["data"]["image/png"] for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        if corrections:  # the cell after a correction measures it
            out.append(_slide(section or title, "\n\n".join(corrections), images, _printed_tail(cell)))
            corrections = []
        elif images:
            out.append(_slide(section or title, claim, images, _printed_tail(cell)))
    first = f"<section><h1>{html.escape(title)}</h1><div class=\"claim\">{_page_links(_MD.render(objectives))}</div></section>"
    return [first] + out


def write_deck(nb, stem: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    sections = slides(nb)
    page = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(stem)}: slides</title>"
            f"<style>{STYLE}</style></head><body>{''.join(sections)}<div class=\"n\"></div><script>{SCRIPT}</script></body></html>")
    path = folder / f"{stem}.html"
    path.write_text(page, encoding="utf-8")
    return path
