"""The model card: its ten sections in order, every number it shows found in the metrics files it read (a hard-coded
one fails), what it says without an external test or without 04's metrics, and the index linking it only when it
exists. Runs on tmp_path copies of two samples of notebook 07's metrics (tests/fixtures) and of reports/metrics."""

from __future__ import annotations

import json
import math
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.reporting import model_card as card_module
from helpers.reporting.model_card import MODEL_CARD, Quote, model_card, write_model_card, written_card
from helpers.reporting.site import build_site, index_html

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SAMPLES = {"real": FIXTURES / "07_external_test.smoke-real.json",
           "synthetic": FIXTURES / "07_external_test.smoke-synthetic.json"}
SECTIONS = ["Model details", "Intended use", "Out-of-scope uses", "Factors", "Metrics", "Evaluation data",
            "Training data", "Quantitative analyses", "Ethical considerations", "Caveats and recommendations"]
FIXED_PROSE = ("Mitchell et al., 2019", "Tschandl et al., 2018", "ISIC 2018 Task 3", "ISIC 2018", "95%")  # its numbers
NUMBER = re.compile(r"(?<![\w.,])\d+(?:,\d{3})*(?:\.\d+)?%?(?!\w)")
LETTER = re.compile(r"[A-Za-z]")


def reports_with(tmp_path: Path, sample: str | None) -> Path:
    """A reports folder holding copies of the committed reports/metrics files and, unless None, a sample of 07's."""
    metrics = tmp_path / "reports" / "metrics"
    metrics.mkdir(parents=True)
    for path in sorted((ROOT / "reports" / "metrics").glob("0[1-6]_*.json")):
        shutil.copy(path, metrics / path.name)
    if sample is not None:
        shutil.copy(SAMPLES[sample], metrics / "07_external_test.json")
    return tmp_path / "reports"


@pytest.fixture(params=sorted(SAMPLES))
def reports(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A reports folder with each sample of 07's metrics in turn."""
    return reports_with(tmp_path, request.param)


def leaves(value: Any) -> Iterator[Any]:
    """Every key and leaf value of a JSON document."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item)
    else:
        yield value


def files_read(text: str, reports_dir: Path) -> dict[str, Any]:
    """The metrics files the card's Sources line names, loaded."""
    sources = text.strip().splitlines()[-1]
    assert sources.startswith("*Sources: "), sources
    names = re.findall(r"`metrics/([\w]+)\.json`", sources)
    return {name: json.loads((reports_dir / "metrics" / f"{name}.json").read_text(encoding="utf-8")) for name in names}


def values_of(files: dict[str, Any]) -> tuple[list[float], list[str]]:
    """The numbers of the files (numeric leaves, and the numbers in strings without letters: "0.627–0.809", "0.8"),
    and their strings with letters and digits (names, dates, devices), longest first."""
    numbers, texts = [], set()
    for document in files.values():
        for leaf in leaves(document):
            if isinstance(leaf, (int, float)) and not isinstance(leaf, bool) and math.isfinite(leaf):
                numbers.append(float(leaf))
            elif isinstance(leaf, str) and LETTER.search(leaf):
                texts |= {leaf} if re.search(r"\d", leaf) else set()
            elif isinstance(leaf, str):
                numbers += [float(n.replace(",", "")) for n in NUMBER.findall(leaf)]
    return numbers, sorted(texts, key=len, reverse=True)


def shown_as(token: str, value: float) -> bool:
    """Whether value, at the precision of token ("0.685", "1,510", "90%"), is token."""
    digits = token.rstrip("%").replace(",", "")
    value = value * 100 if token.endswith("%") else value
    decimals = len(digits.partition(".")[2])
    if decimals == 0 and not token.endswith("%"):
        return value == int(digits)  # a count: exactly
    return f"{value:.{decimals}f}" == digits


def card_numbers(text: str, files: dict[str, Any]) -> list[str]:
    """The numbers of the card's text, headings, FIXED_PROSE and the files' own strings with letters left out."""
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    for phrase in (*values_of(files)[1], *FIXED_PROSE):
        body = body.replace(phrase, " ")
    return NUMBER.findall(body)


def unsourced(text: str, files: dict[str, Any]) -> list[str]:
    """The numbers of the card that no metrics file it read holds at the precision shown."""
    numbers = values_of(files)[0]
    return [token for token in card_numbers(text, files) if not any(shown_as(token, value) for value in numbers)]


def unquoted(text: str, quotes: list[Quote], files: dict[str, Any]) -> list[str]:
    """The numbers of the card beyond those its quotes show: numbers that did not go through Sources.number."""
    shown = Counter(token for quote in quotes for token in NUMBER.findall(quote.shown))
    return sorted((Counter(card_numbers(text, files)) - shown).elements())


MISSING = object()


def resolve(document: Any, path: tuple) -> Any:
    """The value at path in a JSON document (MISSING when a key is not there)."""
    for key in path:
        try:
            document = document[key]
        except (KeyError, IndexError, TypeError):
            return MISSING
    return document


def test_the_card_has_the_ten_sections_in_order(reports: Path) -> None:
    text = model_card(reports)
    assert re.findall(r"^## (.+)$", text, re.M) == SECTIONS
    assert text.startswith("# Model card: ")


def test_every_number_of_the_card_is_in_a_metrics_file_it_read_and_quoted(reports: Path) -> None:
    text, sources = written_card(reports)
    files = files_read(text, reports)
    assert {"07_external_test", "03_custom_cnn", "04_resnet_transfer", "05_efficientnet_binary"} <= set(files)
    assert len(card_numbers(text, files)) > 200  # the check has something to check
    assert unsourced(text, files) == []
    assert unquoted(text, sources.quotes, files) == []


@pytest.mark.parametrize("number", ["0.731", "0.308"])  # in no metrics file; in 07's (the real sample's ensemble)
def test_a_hard_coded_number_is_caught(reports: Path, monkeypatch: pytest.MonkeyPatch, number: str) -> None:
    def hard_coded(s: Any) -> str:
        return card_module.intended_use(s) + f" It reaches {number} on most lesions."

    monkeypatch.setattr(card_module, "SECTION_BODIES", tuple(
        hard_coded if body is card_module.intended_use else body for body in card_module.SECTION_BODIES))
    text, sources = written_card(reports)
    files = files_read(text, reports)
    assert unquoted(text, sources.quotes, files) == [number]
    numbers = values_of(files)[0]
    assert unsourced(text, files) == ([] if any(shown_as(number, value) for value in numbers) else [number])


def test_every_quote_is_the_value_at_its_key_path(reports: Path) -> None:
    text, sources = written_card(reports)
    files = files_read(text, reports)
    assert sources.quotes and set(sources.read) == set(files)
    for quote in sources.quotes:
        assert quote.shown in text, quote
        if quote.style == "level":  # a coverage level: the key itself
            assert quote.path[-1] in resolve(files[quote.source], quote.path[:-1])
            assert quote.value == float(quote.path[-1])
            continue
        value = resolve(files[quote.source], quote.path)
        if value is MISSING or value is None or value != value:  # not recorded, null or NaN: a dash
            assert quote.shown == "–", quote
        else:
            assert value == quote.value, quote


def test_the_card_names_its_sources_preset_hardware_and_what_it_is(tmp_path: Path) -> None:
    reports_dir = reports_with(tmp_path, "real")
    text = model_card(reports_dir)
    metrics = json.loads(SAMPLES["real"].read_text(encoding="utf-8"))
    assert f"`metrics/07_external_test.json` (created {metrics['created']})" in text.splitlines()[-1]
    assert "`smoke` preset" in text and metrics["device_name"] in text
    assert "not a medical device" in text and "Central European and Australian" in text
    assert "fitted on the validation split" in text and "resample images" in text
    assert "| ensemble | ISIC 2018 test | 140 |" in text  # the chosen system's external row
    assert "No external test set" not in text


def test_without_an_external_test_the_card_says_so(tmp_path: Path) -> None:
    text = model_card(reports_with(tmp_path, "synthetic"))
    assert "No external test set was in this run" in text
    assert "ISIC 2018 test |" not in text and "Synthetic demo data" in text


def test_without_04_metrics_the_card_says_so(tmp_path: Path) -> None:
    reports_dir = reports_with(tmp_path, "real")
    (reports_dir / "metrics" / "04_resnet_transfer.json").unlink()
    text = model_card(reports_dir)
    assert "No metrics of `04_resnet_transfer` in this reports folder, so there is no subgroup table." in text
    assert "`04_resnet_transfer`: no metrics in this reports folder" in text
    assert "04_resnet_transfer.json" not in text.splitlines()[-1]
    assert re.findall(r"^## (.+)$", text, re.M) == SECTIONS
    assert unsourced(text, files_read(text, reports_dir)) == []


def test_write_model_card_needs_07s_metrics(tmp_path: Path) -> None:
    reports_dir = reports_with(tmp_path, None)
    assert write_model_card(reports_dir) is None
    assert not (reports_dir / MODEL_CARD).exists()
    with pytest.raises(FileNotFoundError, match="07"):
        model_card(reports_dir)


def test_write_model_card_writes_the_card(tmp_path: Path) -> None:
    reports_dir = reports_with(tmp_path, "real")
    path = write_model_card(reports_dir)
    assert path == reports_dir / MODEL_CARD
    assert path.read_text(encoding="utf-8") == model_card(reports_dir)
    assert {p.name for p in reports_dir.iterdir()} == {"metrics", MODEL_CARD}  # no temporary left


def test_the_index_links_the_card_only_when_it_exists(tmp_path: Path) -> None:
    reports_dir = reports_with(tmp_path, None)
    build_site(reports_dir, [])
    assert not (reports_dir / MODEL_CARD).exists()
    assert f'href="{MODEL_CARD}"' not in (reports_dir / "index.html").read_text(encoding="utf-8")
    shutil.copy(SAMPLES["real"], reports_dir / "metrics" / "07_external_test.json")
    changed = build_site(reports_dir, [])
    assert {p.name for p in changed} == {MODEL_CARD, "index.html"}
    index = (reports_dir / "index.html").read_text(encoding="utf-8")
    assert index.count(f'href="{MODEL_CARD}"') == 1 and ">Model card</a>" in index
    assert (reports_dir / MODEL_CARD).read_text(encoding="utf-8") == model_card(reports_dir)
    assert build_site(reports_dir, []) == []  # idempotent: the card is rewritten only when it changes
    (reports_dir / MODEL_CARD).unlink()
    assert f'href="{MODEL_CARD}"' not in index_html(reports_dir, [], [])
