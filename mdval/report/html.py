"""Self-contained HTML and Markdown documents, and the plain-text terminal table.

A report is a list of blocks, rendered three ways:

- ``("h", text)``                 a section heading;
- ``("p", text)``                 a paragraph (plain text; HTML-escaped);
- ``("list", [text, ...])``       a bulleted list;
- ``("table", header, rows)``     a table; cells are strings (numbers pre-formatted);
- ``("img", png_path, caption)``  a figure: in HTML embedded as a ``data:image/png;base64`` URI,
                                  in Markdown a relative link to the PNG;
- ``("pre", text)``               preformatted text (a TOML spec, commands).

The HTML has inline CSS, no scripts, and no reference to any file or URL: every image is a data
URI, so the file can be mailed or attached to a CI run and opens anywhere. Figures are drawn at
150 dpi (mdval/report/plots.py): a wide one (at least :data:`WIDE_ASPECT` times as wide as tall)
spans the page, a narrower one shows at 2/3 of its pixel width (its size at 100 dpi); both stay
sharp when the page is zoomed.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

from mdval.fileio import write_text

#: width/height from which a figure spans the page
WIDE_ASPECT: float = 1.6

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1500px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #bbb; }
div.tw { overflow-x: auto; }
table { border-collapse: collapse; margin: .8em 0; font-size: .8em; }
th, td { border: 1px solid #ccc; padding: .25em .55em; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; white-space: normal; vertical-align: bottom; } td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
td.bad { color: #b00020; font-weight: 600; } td.good { color: #1b7f3b; }
figure { display: block; margin: .8em 0 1.4em 0; max-width: 100%; }
figure img { max-width: 100%; border: 1px solid #ddd; display: block; }
figcaption { font-size: .88em; color: #444; margin-top: .3em; max-width: 100%; }
ul { margin: .4em 0 .8em 0; } li { margin: .25em 0; }
pre { background: #f6f6f6; padding: .8em; font-size: .78em; overflow-x: auto; }
"""


def data_uri(png_path) -> str:
    """The PNG file as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(Path(png_path).read_bytes()).decode("ascii")


def _png_size(png_path) -> tuple[int, int]:
    """Pixel width and height of a PNG (from its IHDR chunk); (800, 600) for anything else."""
    head = Path(png_path).read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return 800, 600
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _figure_width(png_path) -> str:
    """The CSS width of a figure: the page's for a wide one, else 2/3 of its pixels (module docstring)."""
    width, height = _png_size(png_path)
    return "100%" if width >= WIDE_ASPECT * height else f"{round(width * 2 / 3)}px"


def _cell(value) -> str:
    text = str(value)
    cls = ""
    if text.startswith("FAIL") or text.startswith("failed"):
        cls = ' class="bad"'
    elif text in ("ok", "PASS", "3/3 ok"):
        cls = ' class="good"'
    return f"<td{cls}>{html.escape(text)}</td>"


def render_html(title: str, blocks: list) -> str:
    """The self-contained HTML document of ``blocks`` (see the module docstring)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for block in blocks:
        kind = block[0]
        if kind == "h":
            parts.append(f"<h2>{html.escape(block[1])}</h2>")
        elif kind == "p":
            parts.append(f"<p>{html.escape(block[1])}</p>")
        elif kind == "pre":
            parts.append(f"<pre>{html.escape(block[1])}</pre>")
        elif kind == "list":
            parts.append("<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in block[1]) + "</ul>")
        elif kind == "table":
            header, rows = block[1], block[2]
            parts.append(
                '<div class="tw"><table><thead><tr>'
                + "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
                + "</tr></thead><tbody>"
            )
            parts += ["<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows]
            parts.append("</tbody></table></div>")
        elif kind == "img":
            path, caption = block[1], block[2]
            parts.append(
                f'<figure style="width: {_figure_width(path)}"><img alt="{html.escape(caption)}" '
                f'src="{data_uri(path)}" style="width: 100%"><figcaption>{html.escape(caption)}</figcaption>'
                "</figure>"
            )
        else:
            raise ValueError(f"unknown report block kind {kind!r}; expected h, p, list, pre, table or img")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_markdown(title: str, blocks: list, base_dir) -> str:
    """The Markdown document of ``blocks``; images are links relative to ``base_dir``."""
    lines = [f"# {title}", ""]
    for block in blocks:
        kind = block[0]
        if kind == "h":
            lines += [f"## {block[1]}", ""]
        elif kind == "p":
            lines += [block[1], ""]
        elif kind == "pre":
            lines += ["```", block[1], "```", ""]
        elif kind == "list":
            lines += [f"- {item}" for item in block[1]] + [""]
        elif kind == "table":
            header, rows = block[1], block[2]
            lines.append("| " + " | ".join(str(h) for h in header) + " |")
            lines.append("|" + "|".join("---" for _ in header) + "|")
            lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
            lines.append("")
        elif kind == "img":
            rel = os.path.relpath(block[1], base_dir)
            lines += [f"![{block[2]}]({rel})", "", f"*{block[2]}*", ""]
    return "\n".join(lines)


def text_table(header, rows) -> str:
    """A plain-text table with aligned columns (for the terminal)."""
    table = [[str(h) for h in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[k]) for r in table) for k in range(len(header))]
    fmt = ["  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths))) for r in table]
    return "\n".join([fmt[0], "  ".join("-" * w for w in widths)] + fmt[1:])


def write_documents(out_dir, stem: str, title: str, blocks: list) -> dict:
    """Write ``<stem>.html`` and ``<stem>.md`` into ``out_dir`` (atomically); returns their paths."""
    out_dir = Path(out_dir)
    html_path, md_path = out_dir / f"{stem}.html", out_dir / f"{stem}.md"
    write_text(html_path, render_html(title, blocks))
    write_text(md_path, render_markdown(title, blocks, out_dir))
    return {"html": str(html_path), "markdown": str(md_path)}


def fmt(value, digits: int = 3) -> str:
    """A number for a table cell: ``digits`` significant digits, "–" for None/NaN."""
    if value is None:
        return "–"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if v != v:
        return "–"
    return f"{v:.{digits}g}"
