"""The reports as a site: header and contents on every report, idempotent rebuilds, JPEG outputs, the index headline
rules (declared, text, main test set), summaries, headline figures and the README goals, on tiny fake reports."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
from PIL import Image

from helpers.reporting import series as reports_module
from helpers.reports import main as reports_main
from helpers.reporting import site
from helpers.reporting.results import GOALS_END, GOALS_START, index_headline, read_goals, validate_metrics
from helpers.reporting.site import NAV_END, NAV_START, Page, build_site, first_sentence, offline

ROOT = Path(__file__).resolve().parents[1]


def png(size: tuple[int, int], noisy: bool, seed: int = 0) -> bytes:
    """A PNG: random noise (a photo-like, large file) or a flat colour (tiny)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8) if noisy else np.full((*size[::-1], 3), 200, np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


BIG = png((300, 300), noisy=True)  # about 270 kB: above JPEG_ABOVE_BYTES
SMALL = png((40, 30), noisy=False, seed=1)
OTHER = png((50, 20), noisy=False)


def data_uri(data: bytes, kind: str = "png") -> str:
    return f"data:image/{kind};base64,{base64.b64encode(data).decode()}"


def old_report(title: str, sections: list[str], images: list[bytes] = (), tagged: int | None = None) -> str:
    """An HTML report as the old exporter made it: CDN scripts, title "Notebook", a Colab badge, nbconvert cells."""
    slug = lambda text: re.sub(r"\W+", "-", text)  # noqa: E731
    cells = [f'<div class="jp-Cell jp-MarkdownCell jp-Notebook-cell"><h1 id="{slug(title)}">{title}'
             f'<a class="anchor-link" href="#{slug(title)}">¶</a></h1>'
             '<p><a href="https://colab.research.google.com/x"><img alt="Open In Colab" '
             'src="https://colab.research.google.com/assets/colab-badge.svg"/></a></p>'
             f"<p>{title} shows a thing (e.g. one. two) in detail. Then more.</p></div>"]
    for i, image in enumerate(images):
        tag = " celltag_headline-figure" if i == tagged else ""
        cells.append(f'<div class="jp-Cell jp-CodeCell jp-Notebook-cell{tag}"><img alt="x" class="" src="{data_uri(image)}"/></div>')
    cells += [f'<div class="jp-Cell jp-MarkdownCell jp-Notebook-cell"><h2 id="{slug(s)}">{s}<a class="anchor-link" '
              f'href="#{slug(s)}">¶</a></h2><p>text</p></div>' for s in sections]
    return ("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\"/>\n<title>Notebook</title>\n"
            '<script src="https://cdnjs.cloudflare.com/ajax/libs/require.js/2.1.10/require.min.js"></script>\n'
            '<style>.x{background:url(data:image/png;base64,iVBORw0KGgo=)}</style>\n'
            '<script src="https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js?config=TeX"> </script>\n'
            '<script type="text/x-mathjax-config">\n init_mathjax = function() { if (window.MathJax) {} }\n</script>\n'
            '<script type="module">\n const m = (await import("https://cdnjs.cloudflare.com/mermaid.mjs")).default;\n</script>\n'
            '<script type="application/vnd.jupyter.widget-state+json">{"state": {}, "url": "https://x"}</script>\n'
            "<script>var local = 1;</script>\n"
            '</head>\n<body class="jp-Notebook" data-jp-theme-light="true">\n<main>\n'
            + "\n".join(cells) + "\n</main>\n</body>\n</html>\n")


MODEL = {"accuracy": 0.8, "balanced_accuracy": 0.7, "macro_f1": 0.6, "macro_auc": 0.9,
         "per_class_recall": {"a": 0.5, "b": 0.9, "c": 0.7},
         "ci95": {"accuracy": [0.75, 0.85], "balanced_accuracy": [0.65, 0.75], "macro_f1": [0.5, 0.7], "macro_auc": [0.85, 0.95]},
         "n_test": 40}


def header(name: str, **extra: Any) -> dict[str, Any]:
    return {"notebook": name, "preset": "cpu", "device": "cpu", "device_name": "CPU test", "data_source": "ham10000",
            "n_images": 140, "split": "lesion_disjoint", "wall_time_s": 12.0, "created": "2026-01-01T00:00:00+00:00",
            "models": {}, **extra}


def model(balanced: float, n_test: int) -> dict[str, Any]:
    return {**MODEL, "balanced_accuracy": balanced, "n_test": n_test}


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """A reports folder with three fake old-exporter reports, their metrics and run records."""
    folder = tmp_path / "reports"
    (folder / "metrics").mkdir(parents=True)
    reports = {"01_data": old_report("01 · Data", ["1 · Classes", "2 · <code>dx_type</code> &amp; more"], [SMALL, BIG]),
               "02_model": old_report("02 · A model", ["1 · Train"], [BIG, SMALL], tagged=1),
               "03_study": old_report("03 · A study", ["1 · Grid"])}
    metrics = {"01_data": header("01_data", headline="140 images, 3 classes"),
               "02_model": header("02_model", models={"cnn": MODEL}, summary="One line about the model."),
               "03_study": header("03_study", models={"big": model(0.9, 20), "main": model(0.6, 80)},
                                  model_splits={"big": "small extra test", "main": "main test folder"})}
    for name, text in reports.items():
        (folder / f"{name}.html").write_text(text, encoding="utf-8")
        (folder / "metrics" / f"{name}.json").write_text(json.dumps(metrics[name]), encoding="utf-8")
    runs = {name: {"status": "ok", "wall_time_s": 60.0 * (i + 1), "started": f"2026-01-0{i + 1}T00:00:00+00:00",
                   "parameters": {"preset": "cpu"}} for i, name in enumerate(reports)}
    (folder / "runs.json").write_text(json.dumps(runs), encoding="utf-8")
    return folder


NAMES = ["01_data", "02_model", "03_study", "04_never_ran"]
README = (f"# x\n\n{GOALS_START}\n| notebook | goal (`cpu` preset) | reached | met? |\n|---|---|---|---|\n"
          "| 02 | balanced accuracy ≥ 0.6 | 0.7 | yes |\n| 03 | AUC ≥ 0.99 | 0.9 | no, short |\n"
          f"| 03 | two things | one | first only |\n| all | series within 1 h | 6 min | yes |\n{GOALS_END}\n")


def goals(tmp_path: Path) -> list:
    (tmp_path / "README.md").write_text(README, encoding="utf-8")
    return read_goals(tmp_path / "README.md")


def nav_links(text: str) -> dict[str, str | None]:
    block = text[text.index(NAV_START):text.index(NAV_END)]
    found = {cls: re.search(rf'<a class="{cls}"[^>]*href="([^"]+)"', block) for cls in ("site-index", "site-prev", "site-next")}
    return {cls: match.group(1) if match else None for cls, match in found.items()}


def test_offline_keeps_no_network_script_and_no_remote_image() -> None:
    text = offline(old_report("01 · Data", ["1 · A"]))
    assert "cdnjs" not in text and "mathjax" not in text.lower() and 'type="module"' not in text
    assert "widget-state+json" in text and "var local = 1;" in text  # data and local scripts stay
    assert 'src="https://' not in text and '<span class="site-offline-image">Open In Colab</span>' in text
    assert 'href="https://colab.research.google.com/x"' in text  # the badge keeps its link
    assert offline(text) == text


def test_build_site_gives_every_report_a_header_contents_and_its_title(out: Path, tmp_path: Path) -> None:
    changed = build_site(out, NAMES, goals(tmp_path))
    assert {p.name for p in changed} == {"01_data.html", "02_model.html", "03_study.html", "index.html"}
    first, second, third = ((out / f"{n}.html").read_text(encoding="utf-8") for n in NAMES[:3])
    assert "<title>01 · Data</title>" in first and "<title>Notebook</title>" not in first
    assert nav_links(first) == {"site-index": "index.html", "site-prev": None, "site-next": "02_model.html"}
    assert nav_links(second) == {"site-index": "index.html", "site-prev": "01_data.html", "site-next": "03_study.html"}
    assert nav_links(third) == {"site-index": "index.html", "site-prev": "02_model.html", "site-next": None}
    assert "02 · A model →" in first and "← 01 · Data" in second
    toc = re.findall(r'<li><a href="#([^"]+)">([^<]*)</a></li>', first)
    assert [text for _, text in toc] == ["1 · Classes", "2 · dx_type &amp; more"]
    assert all(f'<h2 id="{anchor}">' in first for anchor, _ in toc)
    assert first.index(NAV_START) > first.index("<body") and "cdnjs" not in first


def test_large_png_outputs_become_jpeg_and_small_ones_stay(out: Path) -> None:
    build_site(out, NAMES)
    text = (out / "01_data.html").read_text(encoding="utf-8")
    images = re.findall(r'<img alt="x" class="" src="data:image/(png|jpeg);base64,([^"]+)"', text)
    assert [kind for kind, _ in images] == ["png", "jpeg"]
    assert base64.b64decode(images[0][1]) == SMALL
    jpeg = base64.b64decode(images[1][1])
    assert len(jpeg) < len(BIG) / 2 and Image.open(io.BytesIO(jpeg)).size == (300, 300)
    assert "data:image/png;base64,iVBORw0KGgo=" in text  # CSS images are not outputs


def test_rebuilding_changes_nothing_and_replaces_an_earlier_header(out: Path, tmp_path: Path) -> None:
    build_site(out, NAMES, goals(tmp_path))
    before = {p.name: p.read_bytes() for p in out.glob("*.html")}
    assert build_site(out, NAMES, goals(tmp_path)) == []
    assert {p.name: p.read_bytes() for p in out.glob("*.html")} == before
    (out / "03_study.html").unlink()  # the series shrinks: 02 loses its next link, no header is stacked
    build_site(out, NAMES)
    second = (out / "02_model.html").read_text(encoding="utf-8")
    assert second.count(NAV_START) == 1 and second.count(NAV_END) == 1 and second.count(site.STYLE_START) == 1
    assert nav_links(second)["site-next"] is None and "03_study.html" not in (out / "index.html").read_text()


def test_notebook_png_outputs_become_jpeg() -> None:
    cell = nbformat.v4.new_code_cell("plot()")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(BIG).decode(), "text/plain": "<Figure>"},
                                           metadata={"image/png": {"width": 300}}),
                    nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(SMALL).decode()})]
    node = nbformat.v4.new_notebook(cells=[cell])
    assert site.notebook_images_to_jpeg(node) == 1
    big, small = node.cells[0].outputs
    assert set(big.data) == {"image/jpeg", "text/plain"} and big.metadata == {"image/jpeg": {"width": 300}}
    assert Image.open(io.BytesIO(base64.b64decode(big.data["image/jpeg"]))).format == "JPEG"
    assert small.data["image/png"] == base64.b64encode(SMALL).decode()
    checkers = np.repeat((np.indices((300, 300)).sum(axis=0) % 2 * 255).astype(np.uint8)[..., None], 3, axis=2)
    sharp = io.BytesIO()
    Image.fromarray(checkers).save(sharp, "PNG")  # PNG's best case, JPEG's worst: it stays PNG
    assert site.png_to_jpeg(sharp.getvalue(), above=10) is None and site.png_to_jpeg(BIG, above=len(BIG)) is None


def test_runner_keeps_the_executed_notebook_beside_the_html(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import papermill

    notebook = tmp_path / "notebooks" / "01_x.ipynb"
    notebook.parent.mkdir()
    injected = nbformat.v4.new_code_cell('preset = "smoke"')
    injected.metadata["tags"] = ["injected-parameters"]
    plot = nbformat.v4.new_code_cell("plot()")
    plot.outputs = [nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(BIG).decode()}),
                    nbformat.v4.new_output("stream", name="stdout", text=f"{reports_module.project_root().resolve()}/helpers/x.py\n")]
    executed = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 01 · X"), injected, plot])
    executed.metadata["papermill"] = {"input_path": str(notebook), "output_path": "/tmp/scratch/01_x.ipynb"}
    nbformat.write(nbformat.v4.new_notebook(), str(notebook))

    def fake_execute(source: str, target: str, **_: Any) -> None:  # papermill without a kernel
        nbformat.write(executed, target)

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    record = reports_module.execute(notebook, tmp_path / "reports", {"preset": "smoke"})
    assert record["status"] == "ok"
    kept = nbformat.read(str(tmp_path / "reports" / "01_x.ipynb"), as_version=4)
    assert kept.cells[1].metadata["tags"] == ["injected-parameters"]
    assert "image/jpeg" in kept.cells[2].outputs[0].data and kept.cells[2].outputs[1].text == "helpers/x.py\n"
    assert kept.metadata["papermill"]["output_path"].endswith("reports/01_x.ipynb")
    assert not kept.metadata["papermill"]["output_path"].startswith("/tmp/scratch")
    html = (tmp_path / "reports" / "01_x.html").read_text(encoding="utf-8")
    assert "data:image/jpeg;base64," in html and "celltag_injected-parameters" not in html and "cdnjs" not in html
    assert not list((tmp_path / "reports").glob("*.tmp"))


# ---------------------------------------------------------------- what the index shows


def test_index_headline_rules() -> None:
    declared = header("x", models={"a": model(0.9, 40), "b": model(0.5, 40)},
                      headline={"model": "b", "metric": "accuracy", "test_set": "official test folder"})
    line = index_headline(declared)
    assert line.declared and line.model == "b" and line.test_set == "official test folder"
    assert line.text.startswith("b: accuracy 0.800 (95% CI 0.750–0.850), balanced accuracy 0.500")

    text = index_headline(header("02", models={"cnn": MODEL}, headline="leak: +0.03 balanced accuracy"))
    assert text.text == "leak: +0.03 balanced accuracy" and text.model is None  # a text headline beats a model score

    mixed = header("05", models={"A 5%": model(0.95, 476), "A official": model(0.92, 1000), "B": model(0.83, 1504),
                                 "B + TTA": model(0.85, 1504)},
                   model_splits={"A 5%": "5% split", "A official": "official test", "B": "lesion-disjoint test",
                                 "B + TTA": "lesion-disjoint test"})
    best = index_headline(mixed)  # never ranked across test sets: the largest one, then its best model
    assert (best.model, best.test_set, best.n_test) == ("B + TTA", "lesion-disjoint test", 1504)
    assert best.text.endswith("(best of 2 models)")

    plain = index_headline(header("03", models={"only": MODEL}))
    assert plain.test_set == "HAM10000 lesion-disjoint test split" and "(best of" not in plain.text
    assert index_headline(header("01")) is None


@pytest.mark.parametrize(("extra", "expected"), [
    ({"headline": {"model": "nope", "test_set": "t"}}, "headline: model must be a key of models ('cnn')"),
    ({"headline": {"model": "cnn", "metric": "speed", "test_set": "t"}}, "headline: metric must be a metric with a value"),
    ({"headline": {"model": "cnn"}}, "headline: missing test_set"),
    ({"headline": 3}, "headline must be a line of text or"),
    ({"summary": "two\nlines"}, "summary must be one non-empty line of text"),
    ({"summary": ""}, "summary must be one non-empty line of text"),
])
def test_broken_index_declarations_are_caught(extra: dict[str, Any], expected: str) -> None:
    metrics = header("03_custom_cnn", models={"cnn": MODEL}, **extra)
    assert any(problem.startswith(expected) for problem in validate_metrics(metrics, "03_custom_cnn")), validate_metrics(metrics, "03_custom_cnn")
    good = header("03_custom_cnn", models={"cnn": MODEL}, summary="one line", headline={"model": "cnn", "test_set": "t"})
    assert validate_metrics(good, "03_custom_cnn") == []


def cards(index: str) -> dict[str, str]:
    """The index's card of each notebook, by name."""
    found = re.findall(r'<section class="card">(.*?)</section>', index, re.S)
    return {re.search(r'<h2 id="(\w+)">', card).group(1): card for card in found}


def test_index_cards(out: Path, tmp_path: Path) -> None:
    (out / "02_model.ipynb").write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {"tags": ["headline-figure"]},
        "outputs": [{"output_type": "display_data", "data": {"image/png": base64.b64encode(OTHER).decode()}}]}]}))
    build_site(out, NAMES, goals(tmp_path))
    index = (out / "index.html").read_text(encoding="utf-8")
    card = cards(index)
    assert list(card) == NAMES
    assert "01 · Data shows a thing (e.g. one. two) in detail.</p>" in card["01_data"]  # first sentence of the opening
    assert "One line about the model." in card["02_model"] and "shows a thing" not in card["02_model"]
    assert "<p class=\"headline\">140 images, 3 classes</p>" in card["01_data"]
    assert "main: balanced accuracy 0.600" in card["03_study"] and "on the main test folder (80 images)" in card["03_study"]
    assert "big:" not in card["03_study"]
    assert '<span class="goal-met">yes</span>: balanced accuracy ≥ 0.6' in card["02_model"]
    assert '<span class="goal-not-met">no, short</span>' in card["03_study"] and "goal-partly" in card["03_study"]
    assert 'href="02_model.ipynb">executed notebook' in card["02_model"] and "executed notebook" not in card["01_data"]
    assert "wall time <b>2.0 min</b>" in card["02_model"] and "wall time <b>60 s</b>" in card["01_data"]
    assert "not run" in card["04_never_ran"] and "04_never_ran.html" not in card["04_never_ran"]
    series = index[index.index('<section class="series">'):]
    assert "3 of 4 notebooks ran" in series and "series within 1 h" in series

    thumbs = {name: re.search(r'<img src="data:image/jpeg;base64,([^"]+)"', text) for name, text in card.items()}
    assert thumbs["04_never_ran"] is None and thumbs["03_study"] is None  # no report, no image
    sizes = {name: Image.open(io.BytesIO(base64.b64decode(m.group(1)))).size for name, m in thumbs.items() if m}
    assert sizes == {"01_data": (40, 30), "02_model": (50, 20)}  # 01: its first image; 02: the tagged cell's
    (out / "02_model.ipynb").unlink()
    build_site(out, NAMES)
    thumb = re.search(r'<img src="data:image/jpeg;base64,([^"]+)"', cards((out / "index.html").read_text())["02_model"])
    assert Image.open(io.BytesIO(base64.b64decode(thumb.group(1)))).size == (40, 30)  # the HTML's tagged cell


def test_thumbnails_are_small() -> None:
    uri = site.thumbnail(png((1200, 600), noisy=True))
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert image.size == (site.THUMB_WIDTH, site.THUMB_WIDTH // 2) and image.format == "JPEG"


def test_first_sentence() -> None:
    assert first_sentence("It reported 74.35% (e.g. on a split. See below). Then more.") == "It reported 74.35% (e.g. on a split. See below)."
    assert first_sentence("Short, e.g. this one. Next") == "Short, e.g. this one."
    assert first_sentence("No full stop") == "No full stop"


def test_goals_table(tmp_path: Path) -> None:
    rows = goals(tmp_path)
    assert [(g.notebook, g.status) for g in rows] == [("02", "met"), ("03", "not-met"), ("03", "partly"), ("all", "met")]
    (tmp_path / "README.md").write_text("# no markers\n")
    with pytest.raises(ValueError, match="README.md: no goals table between"):
        read_goals(tmp_path / "README.md")
    (tmp_path / "README.md").write_text(f"{GOALS_START}\n| notebook | aim |\n|---|---|\n| 03 | x |\n{GOALS_END}\n")
    with pytest.raises(ValueError, match="the goals table needs the columns notebook | goal | reached | met?"):
        read_goals(tmp_path / "README.md")


def test_readme_goals_table_parses() -> None:
    rows = read_goals(ROOT / "README.md")
    assert rows and all(re.fullmatch(r"\d\d|all", g.notebook) for g in rows)


def test_site_command_rebuilds_without_running_anything(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = out.parent
    (root / "notebooks").mkdir()
    for name in NAMES[:3]:
        nbformat.write(nbformat.v4.new_notebook(), str(root / "notebooks" / f"{name}.ipynb"))
    (root / "README.md").write_text(README, encoding="utf-8")
    monkeypatch.setattr("helpers.reports.project_root", lambda: root)  # the command resolves the root
    monkeypatch.setattr("helpers.reports.run_series", lambda *a, **k: pytest.fail("--site ran notebooks"))
    assert reports_main(["--site"]) == 0
    assert NAV_START in (out / "02_model.html").read_text() and "goal-met" in (out / "index.html").read_text()


COMMITTED = sorted(p for p in (ROOT / "reports").glob("[0-9][0-9]_*.html") if not p.stem.endswith(".failed"))


@pytest.mark.parametrize("path", COMMITTED or [pytest.param(None, marks=pytest.mark.skip("no committed reports"))],
                         ids=lambda p: p.stem if p else "none")
def test_committed_reports_have_the_site_header(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(NAV_START) == 1, f"run `python -m helpers.reports --site` ({path.name} has no site header)"
    assert re.search(r"<title>(.*?)</title>", text).group(1) == site.page_title(text)
    assert not re.search(r"<script[^>]*\bsrc=\"https?://", text) and offline(text) == text
    assert Page(path.stem, "").href == path.name
