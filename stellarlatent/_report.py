"""A self-contained HTML report: text, tables and figures embedded as PNG."""

import base64
import html
import io
from pathlib import Path

__all__ = ["HTMLReport"]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; } figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; }
img { max-width: 100%; } .note { color: #555; }
"""


class HTMLReport:
    """Collect sections, tables and matplotlib figures; write one HTML file.

    Figures are embedded in the page (base64 PNG) and also written beside it
    as PNG files, so the page works on its own and the figures can be reused.
    """

    def __init__(self, title):
        self.title = title
        self._parts = []
        self.figures = []

    def heading(self, text):
        self._parts.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text):
        self._parts.append(f"<p>{html.escape(text)}</p>")

    def table(self, table, caption=None, float_format="{:.4g}"):
        """Add an astropy Table (units shown in the header)."""
        head = "".join(
            f"<th>{html.escape(name)}"
            + (f" [{html.escape(str(table[name].unit))}]"
               if getattr(table[name], "unit", None) else "")
            + "</th>"
            for name in table.colnames
        )
        rows = []
        for row in table:
            cells = []
            for name in table.colnames:
                value = row[name]
                value = getattr(value, "value", value)
                try:
                    text = (float_format.format(float(value))
                            if not isinstance(value, (str, bool)) else str(value))
                except (TypeError, ValueError):
                    text = str(value)
                cells.append(f"<td>{html.escape(text)}</td>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self._parts.append(f"<table>{cap}<tr>{head}</tr>{''.join(rows)}</table>")

    def figure(self, fig, name, caption):
        """Add a matplotlib figure; it is saved as ``name``.png beside the page."""
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
        data = buffer.getvalue()
        self.figures.append((f"{name}.png", data))
        encoded = base64.b64encode(data).decode("ascii")
        self._parts.append(
            f'<figure><img src="data:image/png;base64,{encoded}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)} (also saved as "
            f'<a href="{html.escape(name)}.png">{html.escape(name)}.png</a>)</figcaption></figure>'
        )

    def link(self, href, text):
        self._parts.append(f'<p><a href="{html.escape(href)}">{html.escape(text)}</a></p>')

    def write(self, directory):
        """Write ``index.html`` and the figures into ``directory``; return the page path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for filename, data in self.figures:
            (directory / filename).write_bytes(data)
        page = directory / "index.html"
        page.write_text(
            "<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>" + "\n".join(self._parts) + "</body></html>",
            encoding="utf-8",
        )
        return page
