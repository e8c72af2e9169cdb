"""The reports as a small site: a header on every report (index, previous and next notebook, contents) and the index page.

`build_site(out_dir, notebooks)` (`python -m helpers.reports --site`) rebuilds them from what is already in a
reports folder (NN_name.html, NN_name.ipynb, metrics/*.json, runs.json) and runs nothing; the runner calls it
after every run. It is idempotent: a second build changes no byte, and a header inserted earlier is replaced.

Every report stays one self-contained file that opens from the file system with no network: scripts and
stylesheets from CDNs (require.js, MathJax, mermaid, the widget manager) are removed, a remote image is
replaced by its alt text (the Colab badge keeps its link), and a PNG output above JPEG_ABOVE_BYTES becomes a
JPEG when that is smaller (photo grids).

What the index shows per notebook, and where it comes from (the contract for notebook authors):

- title: the report's first h1; page titles are the same;
- summary: metrics["summary"] (one line), else the first sentence of the notebook's opening paragraph;
- headline figure: the first image output of the code cell tagged `headline-figure` (HEADLINE_TAG) in the
  executed notebook (reports/NN_name.ipynb, or the report's HTML, which keeps cell tags as classes), else the
  report's first image;
- headline: helpers.reporting.results.index_headline (a declared `metrics["headline"]`, a plain-text headline, else
  the best balanced accuracy on the notebook's main test set), with the test set it is on;
- goals: the rows of the README's goals table (between <!-- goals:start --> and <!-- goals:end -->) whose
  notebook column is the notebook's number; "all" rows go with the series row;
- status, preset, data, hardware and wall time from runs.json and metrics;
- the series row links the model card (model_card.md, helpers.reporting.model_card) when it exists: the build
  writes it whenever notebook 07's metrics (metrics/07_external_test.json) exist.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.io import atomic_open
from .model_card import MODEL_CARD, model_card, source_path
from .results import Goal, index_headline, load_metrics

RUNS_FILE = "runs.json"
HEADLINE_TAG = "headline-figure"
JPEG_ABOVE_BYTES = 150_000
JPEG_QUALITY = 85
THUMB_WIDTH = 400
THUMB_QUALITY = 80
NAV_START, NAV_END = "<!-- site:nav -->", "<!-- /site:nav -->"
STYLE_START, STYLE_END = "<!-- site:style -->", "<!-- /site:style -->"
INDEX_TITLE = "Skin-lesion course reports"
WARNINGS = {  # by reports folder: what the title adds, and the warning under it
    "demo": ("SYNTHETIC DEMO DATA", "These reports ran on the built-in synthetic demo set, not on real skin images: "
                                    "their numbers demonstrate the pipeline only."),
    "check": ("CHECK RUN", "These reports come from a check run (--check): a few dozen images and at most 2 epochs "
                           "per training, to prove the code path; their numbers mean nothing."),
}

_REMOTE = r"(?:https?:)?//"
_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.S | re.I)
_LINK = re.compile(rf"<link\b[^>]*\bhref\s*=\s*[\"']?{_REMOTE}[^>]*>", re.I)
_IMG = re.compile(r"<img\b([^>]*)>", re.I)
_DATA_PNG = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=\s]+)")
_IMG_DATA = re.compile(r"<img\b[^>]*\bsrc\s*=\s*\"data:image/(?:png|jpeg);base64,([A-Za-z0-9+/=\s]+)\"", re.I)
_H1 = re.compile(r"<h1\b[^>]*>(.*?)</h1\s*>", re.S | re.I)
_H2 = re.compile(r"<h2\b[^>]*\bid\s*=\s*\"([^\"]+)\"[^>]*>(.*?)</h2\s*>", re.S | re.I)
_ANCHOR_LINK = re.compile(r"<a\b[^>]*class=\"anchor-link\"[^>]*>.*?</a>", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")
_CELL = re.compile(r"<div\b[^>]*class=\"jp-Cell\b([^\"]*)\"", re.I)


# ---------------------------------------------------------------- one self-contained report


def offline(text: str) -> str:
    """text without scripts or stylesheets from the network, and remote images replaced by their alt text."""
    text = _SCRIPT.sub(_keep_local_script, text)
    text = _LINK.sub("", text)
    return _IMG.sub(_local_image, text)


def _keep_local_script(match: re.Match[str]) -> str:
    """A script element unless it loads or imports code from the network (a data script is kept)."""
    attrs, body = match.group(1), match.group(2)
    if re.search(rf"\bsrc\s*=\s*[\"']?{_REMOTE}", attrs, re.I) or "mathjax" in attrs.lower():
        return ""
    is_data = re.search(r"\btype\s*=\s*[\"']?application/", attrs, re.I)
    loads_remote_code = re.search(r"[\"']https?://[^\"'\s]*\.m?js(?:\?[^\"']*)?[\"']", body)  # mermaid, widgets
    return "" if loads_remote_code and not is_data else match.group(0)


def _local_image(match: re.Match[str]) -> str:
    """An img element unless its src is remote: then a span with its alt text."""
    attrs = match.group(1)
    src = re.search(r"\bsrc\s*=\s*\"([^\"]*)\"", attrs)
    if not src or not re.match(_REMOTE, src.group(1)):
        return match.group(0)
    alt = re.search(r"\balt\s*=\s*\"([^\"]*)\"", attrs)
    return f'<span class="site-offline-image">{alt.group(1) if alt else "image"}</span>'


def png_to_jpeg(data: bytes, above: int = JPEG_ABOVE_BYTES, quality: int = JPEG_QUALITY) -> bytes | None:
    """data (a PNG) as a JPEG when it is larger than `above` bytes and the JPEG is smaller; else None."""
    if len(data) <= above:
        return None
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        out = io.BytesIO()
        _flat(image).save(out, "JPEG", quality=quality, optimize=True)
    jpeg = out.getvalue()
    return jpeg if len(jpeg) < len(data) else None


def _flat(image: Any) -> Any:
    """image as RGB (or L), transparency composited onto white."""
    from PIL import Image

    if image.mode in ("RGB", "L"):
        return image
    rgba = image.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")


def html_images_to_jpeg(text: str, above: int = JPEG_ABOVE_BYTES) -> str:
    """text with every data-URI PNG above `above` bytes replaced by a JPEG (when smaller)."""
    def convert(match: re.Match[str]) -> str:
        encoded = re.sub(r"\s", "", match.group(1))
        if len(encoded) * 3 // 4 <= above:  # small: not worth decoding
            return match.group(0)
        jpeg = png_to_jpeg(base64.b64decode(encoded), above)
        return match.group(0) if jpeg is None else "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")

    return _DATA_PNG.sub(convert, text)


def notebook_images_to_jpeg(notebook: Any, above: int = JPEG_ABOVE_BYTES) -> int:
    """Replace image/png outputs above `above` bytes of a notebook node by JPEGs (when smaller); how many changed."""
    changed = 0
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            data = output.get("data") or {}
            if "image/png" not in data:
                continue
            encoded = data["image/png"]
            jpeg = png_to_jpeg(base64.b64decode("".join(encoded) if isinstance(encoded, list) else encoded), above)
            if jpeg is None:
                continue
            del data["image/png"]
            data["image/jpeg"] = base64.b64encode(jpeg).decode("ascii")
            metadata = output.get("metadata") or {}
            if "image/png" in metadata:
                metadata["image/jpeg"] = metadata.pop("image/png")
            changed += 1
    return changed


# ---------------------------------------------------------------- titles, contents and the header


@dataclass(frozen=True)
class Page:
    """A report in the site: its notebook name (NN_name) and its title."""

    name: str
    title: str

    @property
    def href(self) -> str:
        """The report's file name, relative to the index."""
        return f"{self.name}.html"


def plain(fragment: str) -> str:
    """The text of an HTML fragment: tags and nbconvert's ¶ anchor links removed, entities decoded, spaces collapsed."""
    return re.sub(r"\s+", " ", html.unescape(_TAG.sub("", _ANCHOR_LINK.sub("", fragment)))).strip()


def page_title(text: str) -> str | None:
    """The text of the report's first h1 (None when it has none)."""
    match = _H1.search(_without_nav(text))
    title = plain(match.group(1)) if match else ""
    return title or None


def sections(text: str) -> list[tuple[str, str]]:
    """The report's h2 headings as (id, text), in order."""
    return [(anchor, plain(inner)) for anchor, inner in _H2.findall(_without_nav(text))]


def _without_nav(text: str) -> str:
    return _between_removed(_between_removed(text, NAV_START, NAV_END), STYLE_START, STYLE_END)


def _between_removed(text: str, start: str, end: str) -> str:
    """text without the blocks from start to end, markers included."""
    return re.sub(re.escape(start) + r".*?" + re.escape(end) + r"\n?", "", text, flags=re.S)


def nav_html(name: str, pages: Sequence[Page], contents: Sequence[tuple[str, str]], failed: bool = False) -> str:
    """The header of a report: links to the index, the previous and the next report, and its contents."""
    names = [page.name for page in pages]
    here = names.index(name) if name in names else -1
    prev_page = pages[here - 1] if here > 0 else None
    next_page = pages[here + 1] if 0 <= here < len(pages) - 1 else None
    links = ['<a class="site-index" href="index.html">All reports</a>']
    links.append(f'<a class="site-prev" rel="prev" href="{prev_page.href}">← {html.escape(prev_page.title)}</a>'
                 if prev_page else '<span class="site-prev site-none">first report</span>')
    if failed:
        links.append(f'<span class="site-failed">failed run of {html.escape(name)}</span>')
    links.append(f'<a class="site-next" rel="next" href="{next_page.href}">{html.escape(next_page.title)} →</a>'
                 if next_page else '<span class="site-next site-none">last report</span>')
    toc = "".join(f'<li><a href="#{html.escape(anchor, quote=True)}">{html.escape(title)}</a></li>'
                  for anchor, title in contents)
    toc_block = (f'<nav class="site-toc" aria-label="Contents"><details open><summary>Contents</summary>'
                 f'<ul>{toc}</ul></details></nav>' if contents else "")
    return (f'{NAV_START}\n<header class="site-header"><nav class="site-nav" aria-label="Reports">'
            f'{"".join(links)}</nav>{toc_block}</header>\n{NAV_END}\n')


def is_document(text: str) -> bool:
    """Whether text is a whole HTML page (with a body), which the site may give a header."""
    return re.search(r"<body\b", text, re.I) is not None


def as_document(text: str, title: str) -> str:
    """text (an HTML fragment, e.g. a failed run's error) as a whole HTML page."""
    if is_document(text):
        return text
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>'
            f"<body>\n{text}\n</body></html>\n")


def set_title(text: str, title: str) -> str:
    """text with its <title> set to title."""
    element = f"<title>{html.escape(title)}</title>"
    if re.search(r"<title\b", text, re.I):
        return re.sub(r"<title\b[^>]*>.*?</title\s*>", lambda _: element, text, count=1, flags=re.S | re.I)
    return re.sub(r"</head\s*>", lambda m: element + m.group(0), text, count=1, flags=re.I)


def finish_report(text: str, name: str, pages: Sequence[Page], failed: bool = False) -> str:
    """A report made self-contained, titled with its first h1 and given the site header (replacing an earlier one)."""
    text = _without_nav(as_document(text, name))
    text = html_images_to_jpeg(offline(text))
    title = page_title(text) or name
    text = set_title(text, f"{title} (failed run)" if failed else title)
    style = f"{STYLE_START}\n<style>{REPORT_CSS}</style>\n{STYLE_END}\n"
    text = re.sub(r"</head\s*>", lambda m: style + m.group(0), text, count=1, flags=re.I)
    header = nav_html(name, pages, sections(text), failed)
    return re.sub(r"<body\b[^>]*>\n?", lambda m: m.group(0).rstrip("\n") + "\n" + header, text, count=1, flags=re.I)


REPORT_CSS = """
.site-header{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;font-size:14px;line-height:1.4;margin:0 0 8px}
.site-nav{position:sticky;top:0;z-index:10;display:flex;flex-wrap:wrap;gap:6px 18px;align-items:center;
  background:#f6f8fa;border-bottom:1px solid #d0d7de;padding:8px 20px 8px 84px}
.site-nav a{color:#0a58ca;text-decoration:none} .site-nav a:hover{text-decoration:underline}
.site-index{font-weight:600} .site-next{margin-left:auto} .site-none{color:#888}
.site-failed{color:#b00;font-weight:600}
.site-toc{border:1px solid #d0d7de;border-radius:6px;padding:6px 14px;margin:12px 20px 0 84px;background:#fff}
.site-toc summary{cursor:pointer;font-weight:600}
.site-toc ul{list-style:none;margin:6px 0 2px;padding-left:8px;columns:2;column-gap:32px}
.site-toc li{margin:2px 0;break-inside:avoid} .site-toc a{color:#0a58ca;text-decoration:none}
.site-toc a:hover{text-decoration:underline}
.site-offline-image{display:inline-block;border:1px solid #999;border-radius:3px;padding:0 6px;font-size:12px;color:#333}
.jp-Notebook h2[id],.jp-Notebook h1[id]{scroll-margin-top:48px}
@media (max-width:760px){.site-toc ul{columns:1}.site-nav{padding-left:12px}.site-toc{margin:12px 12px 0}}
"""


# ---------------------------------------------------------------- what the index shows


def load_runs(out_dir: Path) -> dict[str, dict[str, Any]]:
    """The latest run record of each notebook in out_dir (empty if none yet)."""
    path = out_dir / RUNS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def first_sentence(text: str) -> str:
    """The first sentence of a paragraph's text (a full stop outside brackets, followed by a space or the end)."""
    depth = 0
    for i, char in enumerate(text):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth = max(0, depth - 1)
        elif char in ".!?" and depth == 0 and text[i + 1:i + 2] in ("", " ") and not _abbreviation(text, i):
            return text[:i + 1]
    return text


def _abbreviation(text: str, i: int) -> bool:
    return bool(re.search(r"(?:\be\.g|\bi\.e|\betc|\bvs|\bcf)$", text[:i]))


def opening_summary(text: str) -> str:
    """The first sentence of the report's opening paragraph (the first <p> of the first markdown cell with prose)."""
    for paragraph in re.findall(r"<p\b[^>]*>(.*?)</p\s*>", _without_nav(text), re.S | re.I):
        words = plain(re.sub(r"<a\b[^>]*>.*?</a\s*>", "", paragraph, flags=re.S | re.I))
        if len(words.split()) >= 4:  # not a badge or a lone link
            return first_sentence(plain(paragraph))
    return ""


def headline_image(out_dir: Path, name: str) -> bytes | None:
    """The headline figure's image bytes: the image of the cell tagged HEADLINE_TAG in the executed notebook, else
    in the HTML report, else the report's first image (None without a report or an image)."""
    notebook = out_dir / f"{name}.ipynb"
    if notebook.exists():
        found = _tagged_notebook_image(json.loads(notebook.read_text(encoding="utf-8")))
        if found is not None:
            return found
    report = out_dir / f"{name}.html"
    if not report.exists():
        return None
    text = report.read_text(encoding="utf-8")
    return _tagged_html_image(text) or _first_html_image(text)


def _tagged_notebook_image(notebook: Mapping[str, Any]) -> bytes | None:
    for cell in notebook.get("cells", []):
        if HEADLINE_TAG not in (cell.get("metadata") or {}).get("tags", []):
            continue
        for output in cell.get("outputs", []):
            for kind in ("image/png", "image/jpeg"):
                encoded = (output.get("data") or {}).get(kind)
                if encoded:
                    return base64.b64decode("".join(encoded) if isinstance(encoded, list) else encoded)
    return None


def _tagged_html_image(text: str) -> bytes | None:
    cells = list(_CELL.finditer(text))
    for i, cell in enumerate(cells):
        if f"celltag_{HEADLINE_TAG}" in cell.group(1).split():
            end = cells[i + 1].start() if i + 1 < len(cells) else len(text)
            return _first_html_image(text[cell.end():end])
    return None


def _first_html_image(text: str) -> bytes | None:
    match = _IMG_DATA.search(_without_nav(text))
    return base64.b64decode(re.sub(r"\s", "", match.group(1))) if match else None


def thumbnail(data: bytes, width: int = THUMB_WIDTH) -> str:
    """An image as a small JPEG data URI, `width` pixels wide at most."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        flat = _flat(image)
        if flat.width > width:
            flat = flat.resize((width, max(1, round(flat.height * width / flat.width))), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        flat.save(out, "JPEG", quality=THUMB_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def series_time(runs: Mapping[str, Any], notebooks: Sequence[str]) -> str:
    """The summed wall time of the notebooks' latest successful runs, and which presets those runs used."""
    done = [runs[name] for name in notebooks if runs.get(name, {}).get("status") == "ok"]
    seconds = sum(run["wall_time_s"] for run in done)
    presets = sorted({run.get("parameters", {}).get("preset", "auto") for run in done})
    return (f"{len(done)} of {len(notebooks)} notebooks ran; their latest successful runs took {seconds:,.0f} s "
            f"({seconds / 60:.1f} min) in all, preset {' + '.join(presets) or '-'}")


def duration(seconds: Any) -> str:
    """A wall time for readers: seconds below two minutes, else minutes."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return "–"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def estimated(minutes: Any) -> str | None:
    """The cost model's estimate recorded with a run, as "low–high min" (None when the run recorded none)."""
    if not isinstance(minutes, (list, tuple)) or len(minutes) != 2:
        return None
    return f"{minutes[0]:.1f}–{minutes[1]:.1f} min"


def goals_by_notebook(goals: Sequence[Goal], notebooks: Sequence[str]) -> dict[str, list[Goal]]:
    """The goals table's rows keyed by notebook name (a row's notebook column is the notebook's number) or "all"."""
    keyed: dict[str, list[Goal]] = {}
    for goal in goals:
        key = next((name for name in notebooks if name.split("_")[0] == goal.notebook), goal.notebook)
        keyed.setdefault(key, []).append(goal)
    return keyed


def _markdown_inline(text: str) -> str:
    """A table cell's markdown as HTML: escaped, `code` and **bold** kept."""
    escaped = html.escape(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", escaped)


def goals_html(goals: Sequence[Goal]) -> str:
    """The goal rows of one notebook as a small list: goal, what was reached, met? coloured by status."""
    if not goals:
        return ""
    items = "".join(f'<li><span class="goal-{g.status}">{_markdown_inline(g.met)}</span>: {_markdown_inline(g.goal)} '
                    f'<span class="reached">(reached: {_markdown_inline(g.reached)})</span></li>' for g in goals)
    return f'<div class="goals"><b>Goals</b> (from the README)<ul>{items}</ul></div>'


def card_html(out_dir: Path, name: str, page: Page | None, run: Mapping[str, Any], metrics: Mapping[str, Any],
              goals: Sequence[Goal]) -> str:
    """One notebook on the index: thumbnail, title, summary, headline with its test set, goals and run facts."""
    status = run.get("status", "not run")
    report = out_dir / f"{name}.html"
    text = report.read_text(encoding="utf-8") if report.exists() else ""
    title = html.escape(page.title if page else name)
    heading = f'<a href="{name}.html">{title}</a>' if page else title
    summary = metrics.get("summary") or opening_summary(text)
    image = headline_image(out_dir, name)
    figure = (f'<a class="thumb" href="{name}.html"><img src="{thumbnail(image)}" alt="headline figure of {name}"></a>'
              if image and page else '<div class="thumb none">no figure</div>')
    headline = index_headline(metrics)
    lines = [f'<h2 id="{name}">{heading}</h2>']
    if summary:
        lines.append(f'<p class="summary">{html.escape(summary)}</p>')
    if headline:
        count = f" ({headline.n_test:,} images)" if isinstance(headline.n_test, int) else ""
        on = f'<br><span class="testset">on the {html.escape(headline.test_set)}{count}</span>' if headline.test_set else ""
        lines.append(f'<p class="headline">{html.escape(headline.text)}{on}</p>')
    lines.append(goals_html(goals))
    lines.append(f'<p class="facts">{_facts(out_dir, name, status, run, metrics)}</p>')
    if status == "failed":
        lines.append(f'<p class="error">{html.escape(run.get("error", "")[:300])}</p>')
    return f'<section class="card">{figure}<div class="text">{"".join(lines)}</div></section>'


def _facts(out_dir: Path, name: str, status: str, run: Mapping[str, Any], metrics: Mapping[str, Any]) -> str:
    """status · preset · data · hardware · wall time · date, and links to the executed notebook and a failed run."""
    facts = [f'<span class="{html.escape(status.replace(" ", "-"))}">{html.escape(status)}</span>']
    labelled = (("preset", metrics.get("preset") or run.get("parameters", {}).get("preset")),
                ("data", metrics.get("data_source")), ("hardware", metrics.get("device_name", metrics.get("device"))),
                ("wall time", duration(run.get("wall_time_s", metrics.get("wall_time_s")))),
                ("estimated", estimated(run.get("estimate_minutes"))),
                ("run", str(metrics.get("created", run.get("started", "")))[:10]))
    facts += [f"{label} <b>{html.escape(str(value))}</b>" for label, value in labelled if value]
    if (out_dir / f"{name}.ipynb").exists():
        facts.append(f'<a href="{name}.ipynb">executed notebook</a>')
    if status == "failed" and (out_dir / f"{name}.failed.html").exists():
        facts.append(f'<a href="{name}.failed.html">failed run</a>')
    return " · ".join(facts)


def model_card_link(out_dir: Path) -> str:
    """The series row's link to the model card, when out_dir has one (else nothing)."""
    if not (out_dir / MODEL_CARD).exists():
        return ""
    return (f'<p class="model-card"><a href="{MODEL_CARD}">Model card</a> of the system chosen on validation: '
            "intended use, evaluation data, every metric with its interval, caveats.</p>")


def index_html(out_dir: Path, notebooks: Sequence[str], pages: Sequence[Page], goals: Sequence[Goal] = ()) -> str:
    """The index page of out_dir: one card per notebook, then the series row (with the model card's link)."""
    runs, metrics = load_runs(out_dir), load_metrics(out_dir)
    by_name = {page.name: page for page in pages}
    keyed = goals_by_notebook(goals, notebooks)
    cards = [card_html(out_dir, name, by_name.get(name), runs.get(name, {}), metrics.get(name, {}), keyed.get(name, []))
             for name in notebooks]
    series = [f'<section class="series"><h2 id="series">Series</h2><p>{html.escape(series_time(runs, notebooks))}</p>'
              f'{model_card_link(out_dir)}{goals_html(keyed.get("all", []))}</section>']
    title, warning = INDEX_TITLE, WARNINGS.get(out_dir.name)
    if warning:
        title += f" ({warning[0]})"
    warning = f"<p class='warn'>{warning[1]}</p>" if warning else ""
    started = sorted(str(run.get("started", "")) for run in runs.values() if run.get("started"))
    when = f" Latest run started {html.escape(started[-1])}." if started else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>{title}</title><style>{INDEX_CSS}</style></head>\n'
            f"<body><h1>{title}</h1>{warning}<p class='intro'>One report per notebook, executed with papermill; "
            f"headlines are test-split metrics with 95% intervals from resampling lesions.{when}</p>\n"
            + "\n".join(cards + series) + "\n</body></html>\n")


INDEX_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;
  color:#1f2328;line-height:1.45}
h1{font-size:26px;margin:0 0 6px} .intro{color:#555;margin:0 0 18px}
.card,.series{display:flex;gap:18px;border:1px solid #d0d7de;border-radius:8px;padding:14px;margin:0 0 14px;background:#fff}
.series{display:block;background:#f6f8fa}
.thumb{flex:0 0 260px;display:flex;align-items:flex-start;justify-content:center}
.thumb img{max-width:260px;max-height:200px;border:1px solid #eee;border-radius:4px}
.thumb.none{color:#999;font-size:13px;align-items:center;border:1px dashed #ccc;border-radius:4px;min-height:120px}
.text{flex:1;min-width:0} h2{font-size:19px;margin:0 0 4px} h2 a{color:#0a58ca;text-decoration:none}
h2 a:hover{text-decoration:underline} p{margin:4px 0}
.summary{color:#333} .headline{font-weight:600} .testset{font-weight:400;color:#555;font-size:14px}
.goals{font-size:14px;margin:6px 0} .goals ul{margin:2px 0 0;padding-left:20px} .reached{color:#555}
.goal-met{color:#1a7f37;font-weight:600} .goal-not-met{color:#b00;font-weight:600} .goal-partly{color:#9a6700;font-weight:600}
.facts{font-size:13px;color:#555;margin-top:8px} .facts a{color:#0a58ca}
.ok{color:#1a7f37;font-weight:600} .failed,.warn,.error{color:#b00;font-weight:600} .not-run{color:#888}
code{font-size:90%;background:#f0f0f0;padding:0 3px;border-radius:3px}
@media (max-width:700px){.card{flex-direction:column}.thumb{flex-basis:auto}}
"""


# ---------------------------------------------------------------- the build


def report_names(out_dir: Path, notebooks: Sequence[str]) -> list[str]:
    """The notebooks (in series order) that have a report in out_dir."""
    return [name for name in notebooks if (out_dir / f"{name}.html").exists()]


def pages_of(out_dir: Path, notebooks: Sequence[str]) -> list[Page]:
    """The site's pages: every notebook with a report, titled with its first h1."""
    return [Page(name, page_title((out_dir / f"{name}.html").read_text(encoding="utf-8")) or name)
            for name in report_names(out_dir, notebooks)]


def _write_if_changed(path: Path, text: str) -> bool:
    """Write text to path atomically unless it already holds it; whether it changed."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return True


def build_site(out_dir: Path, notebooks: Sequence[str] | None = None, goals: Sequence[Goal] = ()) -> list[Path]:
    """Give every report in out_dir its header and rebuild index.html (runs nothing); the files that changed.

    notebooks: the series in order (default: every NN_name.html in out_dir); goals: the README's goals table
    (helpers.reporting.results.read_goals) to show beside each notebook (none for demo and check runs). The model
    card (model_card.md) is rewritten first whenever notebook 07's metrics exist, so that the index links it.
    """
    if notebooks is None:
        notebooks = sorted(p.stem for p in out_dir.glob("[0-9][0-9]_*.html") if not p.stem.endswith(".failed"))
    pages = pages_of(out_dir, notebooks)
    changed = []
    for name in notebooks:
        for path, failed in ((out_dir / f"{name}.html", False), (out_dir / f"{name}.failed.html", True)):
            text = path.read_text(encoding="utf-8") if path.exists() else ""
            if is_document(text) and _write_if_changed(path, finish_report(text, name, pages, failed)):
                changed.append(path)  # a file that is no HTML page is not ours to change
    card = out_dir / MODEL_CARD
    if source_path(out_dir).exists() and _write_if_changed(card, model_card(out_dir)):
        changed.append(card)
    index = out_dir / "index.html"
    if _write_if_changed(index, index_html(out_dir, notebooks, pages, goals)):
        changed.append(index)
    return changed
