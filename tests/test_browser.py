"""The committed reports in a real browser: headless Chromium loads the index and every report from the file system.

Every link and image resolves (local files exist, anchors exist, images decode), nothing is fetched from the
network, no console error appears, and the header's index / previous / next links land on the right pages when
clicked. Chromium is driven over its DevTools protocol on a pipe (--remote-debugging-pipe: JSON messages
separated by NUL bytes on file descriptors 3 and 4), so no Python package and no port is needed. Skips where no
Chromium is installed (`apt-get install chromium`); .ci/run installs it.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"
CHROMIUM = os.environ.get("CHROMIUM") or next(
    (found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None)
TIMEOUT_S = 30.0  # any one browser step; a page of the series loads in well under a second
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
         "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio")

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on PATH (install Debian's chromium: apt-get install "
                                                "chromium; or set CHROMIUM to a Chrome/Chromium binary)"),
    pytest.mark.skipif(not (REPORTS / "index.html").exists(), reason="no committed reports/index.html"),
]

PAGE_FACTS = """(() => {
  const remote = u => /^(https?:)?\\/\\//i.test(u || "");
  return {
    href: location.href, title: document.title,
    h1: (document.querySelector("h1") || {textContent: ""}).textContent.replace("¶", "").trim(),
    links: [...document.querySelectorAll("a[href]")].map(a => ({raw: a.getAttribute("href"), url: a.href})),
    images: [...document.images].map(i => ({src: (i.getAttribute("src") || "").slice(0, 60),
                                            ok: i.complete && i.naturalWidth > 0})),
    remote: [...document.querySelectorAll("script[src], link[href], img[src], iframe[src], source[src]")]
              .map(e => e.getAttribute("src") || e.getAttribute("href")).filter(remote),
    ids: [...document.querySelectorAll("[id]")].map(e => e.id),
    nav: Object.fromEntries(["site-index", "site-prev", "site-next"].map(c => {
      const a = document.querySelector("a." + c); return [c, a ? a.href : null]; })),
  };
})()"""


class Chromium:
    """A headless Chromium with one page, driven over the DevTools protocol on a pipe."""

    def __init__(self, binary: str, profile: Path) -> None:
        commands, self._to_browser = os.pipe()
        self._from_browser, replies = os.pipe()
        # the browser reads fd 3 and writes fd 4: move our ends out of the way, then let a shell put them there
        to_fd = {commands: 3, replies: 4}
        high = {fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10): target for fd, target in to_fd.items()}
        for fd in to_fd:
            os.close(fd)
        redirect = " ".join(f"{target}<&{fd}" if target == 3 else f"{target}>&{fd}" for fd, target in high.items())
        closes = " ".join(f"{fd}<&-" for fd in high)
        shell = shutil.which("bash") or "sh"  # bash: redirections of fds above 9
        command = [shell, "-c", f'exec "$0" "$@" {redirect} {closes}', binary, *FLAGS, f"--user-data-dir={profile}"]
        self.process = subprocess.Popen(command, pass_fds=tuple(high), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in high:
            os.close(fd)
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.call(f"{domain}.enable", session=self.session)
        except BaseException:
            self.close()
            raise

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._from_browser, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for message in messages:
                self._messages.put(json.loads(message))
        self._messages.put(None)  # the browser closed the pipe

    def _pump(self, deadline: float) -> dict[str, Any]:
        """The next message from the browser (events are kept in self.events too)."""
        try:
            message = self._messages.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(f"Chromium sent nothing for {TIMEOUT_S:.0f} s") from None
        if message is None:
            raise RuntimeError(f"Chromium closed the DevTools pipe (exit status {self.process.poll()})")
        if "method" in message:
            self.events.append(message)
        return message

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Send a DevTools command and wait for its result."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            reply = self._pump(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def until_loaded(self, action: str, **params: Any) -> list[str]:
        """Run a page action (navigate to params['url'], or evaluate params['expression']) and wait for the next
        load event; the console errors, exceptions and failed loads seen meanwhile."""
        self.events.clear()
        method = "Page.navigate" if action == "navigate" else "Runtime.evaluate"
        self.call(method, params, session=self.session)
        deadline = time.monotonic() + TIMEOUT_S
        while not any(e["method"] == "Page.loadEventFired" for e in self.events):
            self._pump(deadline)
        settle = time.monotonic() + 0.3  # errors logged just after the load event
        while time.monotonic() < settle and not self._messages.empty():
            self._pump(settle + 1.0)
        return [text for event in self.events if (text := problem(event))]

    def facts(self) -> dict[str, Any]:
        """Links, images, ids, remote resources, title and header links of the page now loaded."""
        result = self.call("Runtime.evaluate", {"expression": PAGE_FACTS, "returnByValue": True}, session=self.session)
        return result["result"]["value"]

    def click(self, selector: str) -> list[str]:
        """Click the first element matching selector and wait for the page it leads to."""
        return self.until_loaded("evaluate", expression=f"document.querySelector({json.dumps(selector)}).click()")

    def close(self) -> None:
        """End the browser (only the process this object started)."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        os.close(self._to_browser)
        self._reader.join(timeout=5)  # it ends at the pipe's end, once the browser is gone
        if not self._reader.is_alive():
            os.close(self._from_browser)


def problem(event: dict[str, Any]) -> str | None:
    """A console error, uncaught exception or failed load reported by a DevTools event (None for other events)."""
    params = event.get("params", {})
    if event["method"] == "Runtime.exceptionThrown":
        details = params.get("exceptionDetails", {})
        return f"exception: {details.get('exception', {}).get('description') or details.get('text')}"
    if event["method"] == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        return "console error: " + " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", []))
    if event["method"] == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
        entry = params["entry"]
        return f"{entry.get('source')} error: {entry.get('text')} {entry.get('url', '')}".strip()
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    chromium = Chromium(CHROMIUM, tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield chromium
    finally:
        chromium.close()


def reports() -> list[Path]:
    """The committed reports of the series, in order (failed runs aside)."""
    return sorted(p for p in REPORTS.glob("[0-9][0-9]_*.html") if not p.stem.endswith(".failed"))


def file_of(url: str) -> Path:
    """The local file a file:// URL names (without its fragment)."""
    return Path(unquote(urlparse(url).path))


def check_page(facts: dict[str, Any], errors: list[str], expected: Path, anchors: list[tuple[Path, str, str]]) -> None:
    """The page now shown is `expected`, loaded cleanly, with local links to existing files and decoded images."""
    assert file_of(facts["href"]) == expected, f"landed on {facts['href']}, expected {expected.name}"
    assert not errors, f"{expected.name}: {errors}"
    assert not facts["remote"], f"{expected.name} loads from the network: {facts['remote']}"
    broken = [image["src"] for image in facts["images"] if not image["ok"]]
    assert not broken, f"{expected.name}: images that do not display: {broken}"
    for link in facts["links"]:
        url = urlparse(link["url"])
        if url.scheme in ("http", "https", "mailto"):
            continue  # a link out (the Colab badge, documentation): not fetched, not checked
        assert url.scheme == "file", f"{expected.name}: link {link['raw']!r} is neither local nor http(s)"
        target = file_of(link["url"])
        assert target.is_file(), f"{expected.name}: link {link['raw']!r} points to a missing file"
        if url.fragment:
            anchors.append((target, url.fragment, f"{expected.name}: {link['raw']}"))


def test_index_and_reports_load_cleanly_and_navigate(browser: Chromium) -> None:
    pages, ids, anchors = reports(), {}, []
    assert pages, "reports/ has no NN_name.html"
    errors = browser.until_loaded("navigate", url=(REPORTS / "index.html").as_uri())
    facts = browser.facts()
    check_page(facts, errors, REPORTS / "index.html", anchors)
    ids[REPORTS / "index.html"] = set(facts["ids"])
    linked = [link["raw"] for link in facts["links"] if re.fullmatch(r"\d\d_\w+\.html", link["raw"])]
    assert list(dict.fromkeys(linked)) == [p.name for p in pages], "the index links every report, in order"

    errors = browser.click(f'a[href="{pages[0].name}"]')
    for i, page in enumerate(pages):
        facts = browser.facts()
        check_page(facts, errors, page, anchors)
        ids[page] = set(facts["ids"])
        assert facts["title"] == facts["h1"] and facts["title"] != "Notebook", f"{page.name}: title is its h1"
        nav = {key: file_of(url) if url else None for key, url in facts["nav"].items()}
        assert nav["site-index"] == REPORTS / "index.html", f"{page.name}: no link to the index"
        assert nav["site-prev"] == (pages[i - 1] if i else None), f"{page.name}: previous link"
        assert nav["site-next"] == (pages[i + 1] if i + 1 < len(pages) else None), f"{page.name}: next link"
        if i + 1 < len(pages):
            errors = browser.click("a.site-next")  # lands on the next report, checked at the top of the loop

    if len(pages) > 1:
        errors = browser.click("a.site-prev")
        assert file_of(browser.facts()["href"]) == pages[-2] and not errors
    errors = browser.click("a.site-index")
    assert file_of(browser.facts()["href"]) == REPORTS / "index.html" and not errors

    assert {target for target, _, _ in anchors} >= set(pages), "every report links its own sections"
    for target, fragment, where in anchors:
        known = ids.get(target)
        if known is None:  # a page not visited above (none today): read its ids from the file
            known = set(re.findall(r'\bid="([^"]+)"', target.read_text(encoding="utf-8")))
        assert fragment in known or unquote(fragment) in known, f"{where}: no element with id {fragment!r}"
