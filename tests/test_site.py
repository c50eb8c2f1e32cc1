"""The published book as a reader sees it: built, then opened in headless Chromium, offline.

The module builds the site with ``jupyter-book build . -W --keep-going --all``
into ``_build/html``, serves it on 127.0.0.1 and opens every page of
``_toc.yml`` in one headless Chromium, driven over the DevTools protocol, in
which no host name but 127.0.0.1 resolves. Once a page has loaded, its fonts
are in and MathJax has finished, the tests read what the reader got: the page
rendered its title, asked no other host for anything, loaded every file and
image it asked for, ran its scripts without an uncaught exception, typeset its
math, shows every plot its notebook stores, links to Colab for the right
notebook, and shows no traceback that the chapter did not mean to show. They
also read the page as a reader does: no Markdown table left as raw pipe text,
no character that needs an emoji font, no nbval marker in sight, every
exercise solution (code and output) behind a closed toggle, and chapter 3's
verdict rendered as an HTML table. Screenshots of the landing page and of the
first chapter are saved in ``_build/screenshots/``.

Chromium comes from Debian's ``chromium`` package (the ``CHROMIUM`` variable
names another binary, such as ``google-chrome``). Without it the browser tests
are skipped, except under CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import base64
import fcntl
import functools
import http.server
import json
import os
import re
import select
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import matplotlib.image
import nbformat
import pytest
import yaml
from bs4 import BeautifulSoup

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest brings tomli there.
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_build"
HTML = BUILD / "html"
SCREENSHOTS = BUILD / "screenshots"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
REPOSITORY = PYPROJECT["project"]["urls"]["Repository"]
COLAB = "https://colab.research.google.com"
BINDER = "https://mybinder.org"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")


def _toc_files(entries: list[dict]) -> list[str]:
    """Lists the documents of a _toc.yml level and of the levels below it, in order."""
    files = []
    for entry in entries:
        if "file" in entry:
            files.append(entry["file"])
        for key in ("parts", "chapters", "sections"):
            files.extend(_toc_files(entry.get(key, [])))
    return files


def _docnames() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    return [toc["root"], *_toc_files(toc.get("parts", []) + toc.get("chapters", []))]


DOCNAMES = _docnames()
NOTEBOOKS = [name for name in DOCNAMES if (ROOT / f"{name}.ipynb").exists()]


# --- Configuration (no browser needed) -------------------------------------------------------


def test_config_repository_url_matches_pyproject():
    assert CONFIG["repository"]["url"] == REPOSITORY


def test_config_offers_colab_and_binder_launch_buttons():
    assert CONFIG["launch_buttons"]["colab_url"] == COLAB
    assert CONFIG["launch_buttons"]["binderhub_url"] == BINDER


def test_config_serves_mathjax_from_the_book():
    static = [ROOT / path for path in CONFIG["sphinx"]["config"]["html_static_path"]]
    mathjax_path = CONFIG["sphinx"]["config"]["mathjax_path"]
    assert "://" not in mathjax_path
    assert any((path / mathjax_path).is_file() for path in static)


def test_vendored_mathjax_is_the_pinned_release_with_its_license():
    tool = (ROOT / "tools" / "vendor_mathjax.py").read_text(encoding="utf-8")
    version = re.search(r'^VERSION = "([^"]+)"', tool, re.MULTILINE).group(1)
    mathjax = ROOT / "book" / "_static" / "mathjax"
    script = mathjax / CONFIG["sphinx"]["config"]["mathjax_path"].removeprefix("mathjax/")
    assert f'VERSION="{version}"' in script.read_text(encoding="utf-8")
    assert "Apache License" in (mathjax / "LICENSE").read_text(encoding="utf-8")


def test_logo_script_reproduces_the_committed_images(tmp_path):
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "make_logo.py"), str(tmp_path)], check=True
    )
    for name in ("logo.png", "favicon.png"):
        assert (tmp_path / name).read_bytes() == (ROOT / "book" / "_static" / name).read_bytes()


# --- The built site in a browser -------------------------------------------------------------


class DevTools:
    """A minimal Chrome DevTools Protocol client: one headless Chromium, driven over a pipe.

    Chromium reads commands from its fd 3 and writes replies and events to its fd 4
    (``--remote-debugging-pipe``), each message JSON ended by a NUL byte.
    """

    def __init__(self, command: list[str], log: Path):
        to_browser, from_browser = os.pipe(), os.pipe()
        # Chromium's fds 3 and 4 are made by the shell's redirections; numbers from 10 up
        # cannot collide with them.
        child_read = fcntl.fcntl(to_browser[0], fcntl.F_DUPFD_CLOEXEC, 10)
        child_write = fcntl.fcntl(from_browser[1], fcntl.F_DUPFD_CLOEXEC, 10)
        for fd in (to_browser[0], from_browser[1]):
            os.close(fd)
        shell = f'exec "$0" "$@" 3<&{child_read} 4>&{child_write} {child_read}<&- {child_write}>&-'
        with log.open("wb") as stderr:
            self.process = subprocess.Popen(
                ["bash", "-c", shell, *command, "--remote-debugging-pipe"],
                pass_fds=(child_read, child_write),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        os.close(child_read)
        os.close(child_write)
        self._out, self._in = to_browser[1], from_browser[0]
        self._log = log
        self._buffer = b""
        self._last_id = 0
        self.events: list[dict] = []

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (OSError, TimeoutError, RuntimeError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._out)
        os.close(self._in)

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._in], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                log = self._log.read_text(encoding="utf-8", errors="replace")[-2000:]
                raise RuntimeError(f"Chromium closed its DevTools pipe; its log ends:\n{log}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(
        self,
        method: str,
        params: dict | None = None,
        session: str | None = None,
        timeout: float = 60,
    ) -> dict:
        """Sends a command and returns its result; events that arrive meanwhile are kept."""
        self._last_id += 1
        message = {"id": self._last_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._out, data) :]
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._last_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str, session: str, timeout: float = 60) -> dict:
        """Returns the first event `method` of `session`, waiting for it if need be."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            self.events.append(self._receive(deadline))

    def wait_for_network_idle(self, session: str, quiet: float = 0.5, timeout: float = 15) -> None:
        """Waits until every request of `session` has an answer and none came for `quiet` s.

        Gives up silently after `timeout`; a request still unanswered then is reported
        by the test that reads the requests.
        """
        deadline = time.monotonic() + timeout
        while True:
            asked, answered = set(), set()
            for event in self.events:
                if event.get("sessionId") != session:
                    continue
                if event["method"] == "Network.requestWillBeSent":
                    asked.add(event["params"]["requestId"])
                elif event["method"] in ("Network.responseReceived", "Network.loadingFailed"):
                    answered.add(event["params"]["requestId"])
            wait_until = deadline if asked - answered else min(deadline, time.monotonic() + quiet)
            try:
                self.events.append(self._receive(wait_until))
            except TimeoutError:
                return

    def evaluate(self, expression: str, session: str):
        """Runs JavaScript in the page, awaiting a promise, and returns its value."""
        reply = self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            session,
        )
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")


@dataclass
class Page:
    """What a reader's browser did and showed for one page."""

    dom: BeautifulSoup
    # (url, HTTP status or Chromium's error text) of every request the page made.
    requests: list[tuple[str, int | str]]
    # The src of every <img> that did not load and decode.
    broken_images: list[str]
    # Uncaught JavaScript exceptions.
    script_errors: list[str]
    # The first line of every visible code or output block the text column cuts off.
    clipped_blocks: list[str]


# Settles once the page's fonts are in and MathJax has typeset it (if the page loads MathJax).
SETTLED = """(async () => {
  await document.fonts.ready;
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  await document.fonts.ready;
})()"""
BROKEN_IMAGES = (
    "[...document.images].filter(i => !(i.complete && i.naturalWidth > 0))"
    ".map(i => i.getAttribute('src'))"
)


# Code and output blocks wider than their box (the reader would have to scroll sideways),
# and tables that reach past the text column's right edge. Tracebacks shown on purpose may
# be wide; closed toggles have no width to measure.
CLIPPED_BLOCKS = (
    "[...document.querySelectorAll('article.bd-article pre')]"
    ".filter(p => !p.closest('.tag_raises-exception') && p.scrollWidth > p.clientWidth + 1)"
    ".concat([...document.querySelectorAll('article.bd-article table')].filter(t => "
    "t.offsetParent !== null && t.getBoundingClientRect().right > "
    "document.querySelector('article.bd-article').getBoundingClientRect().right + 1))"
    ".map(p => p.textContent.trim().split('\\n')[0].slice(0, 100))"
)


def _open_page(browser: DevTools, url: str, screenshot: Path | None) -> Page:
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
        "sessionId"
    ]
    for domain in ("Page", "Network", "Runtime"):
        browser.send(f"{domain}.enable", session=session)
    browser.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1280, "height": 2000, "deviceScaleFactor": 1, "mobile": False},
        session,
    )
    browser.send("Page.navigate", {"url": url}, session)
    browser.wait_for("Page.loadEventFired", session)
    browser.evaluate(SETTLED, session)
    browser.wait_for_network_idle(session)
    html = browser.evaluate("document.documentElement.outerHTML", session)
    broken_images = browser.evaluate(BROKEN_IMAGES, session)
    clipped_blocks = browser.evaluate(CLIPPED_BLOCKS, session)
    if screenshot is not None:
        data = browser.send("Page.captureScreenshot", {"format": "png"}, session)["data"]
        screenshot.write_bytes(base64.b64decode(data))
    browser.send("Target.closeTarget", {"targetId": target})

    events = [event for event in browser.events if event.get("sessionId") == session]
    browser.events = [event for event in browser.events if event.get("sessionId") != session]
    urls, outcomes, script_errors = {}, {}, []
    for event in events:
        method, params = event["method"], event["params"]
        if method == "Network.requestWillBeSent":
            urls[params["requestId"]] = params["request"]["url"]
        elif method == "Network.responseReceived":
            outcomes[params["requestId"]] = params["response"]["status"]
        elif method == "Network.loadingFailed":
            outcomes[params["requestId"]] = params["errorText"]
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            script_errors.append(details.get("exception", {}).get("description", details["text"]))
    requests = [(url, outcomes.get(request_id, "no answer")) for request_id, url in urls.items()]
    return Page(
        BeautifulSoup(html, "html.parser"), requests, broken_images, script_errors, clipped_blocks
    )


def _find_chromium() -> str | None:
    candidates = [os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"]
    for candidate in candidates:
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = _find_chromium()
    if binary is None:
        reason = "Chromium not found: install Debian's chromium package (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return binary


@pytest.fixture(scope="module")
def site() -> Path:
    """Builds the book as `make book` does, from scratch, with warnings as errors."""
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    command = [str(jupyter_book), "build", ".", "-W", "--keep-going", "--all"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        log = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        pytest.fail(f"{' '.join(command)} failed:\n{log}")
    return HTML


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
        pass


@pytest.fixture(scope="module")
def server(site):
    """Serves the built site on 127.0.0.1 at a free port; yields its base URL."""
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browse(chromium, server, tmp_path_factory):
    """Returns a function that opens a page of the book offline; pages are opened once."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    browser = DevTools(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            # No network: every host name but the book server's fails to resolve.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        ],
        log=profile / "chromium.log",
    )
    pages: dict[tuple[str, Path | None], Page] = {}

    def open_page(path: str, screenshot: Path | None = None) -> Page:
        if (path, screenshot) not in pages:
            pages[path, screenshot] = _open_page(browser, f"{server}/{path}", screenshot)
        return pages[path, screenshot]

    yield open_page
    browser.close()


def _article(page: Page):
    article = page.dom.find("article", class_="bd-article")
    assert article is not None, "the page has no article: it did not render"
    return article


def _letters(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


# A Markdown table's rule row, |---|---| or | :--- | ---: |, left in the text of a paragraph.
PIPE_TABLE_RULE = re.compile(r"\|\s*:?-{3,}:?\s*\|")
# Dingbats, symbols and pictographs: glyphs a reader without an emoji font sees as empty boxes.
EMOJI = re.compile("[\u2600-\u27bf\u2b00-\u2bff\U0001f000-\U0001faff]")


def raw_pipe_table_problems(article) -> list[str]:
    """Finds paragraphs that hold a Markdown table the build did not turn into a <table>."""
    return [
        f"raw pipe table: {element.get_text()[:80]!r}"
        for element in article.find_all(["p", "li"])
        if PIPE_TABLE_RULE.search(element.get_text())
    ]


def emoji_problems(article) -> list[str]:
    """Finds characters that only an emoji font draws."""
    return [
        f"emoji {match.group()!r} (U+{ord(match.group()):04X}) in {text.strip()[:60]!r}"
        for text in article.find_all(string=True)
        for match in EMOJI.finditer(text)
    ]


def nbval_marker_problems(article) -> list[str]:
    """Finds nbval markers (``# NBVAL_...`` comments) that the page shows."""
    return [
        f"nbval marker in view: {text.strip()[:80]!r}"
        for text in article.find_all(string=True)
        if "NBVAL_" in text
    ]


def _exercise_sections(article) -> list:
    return [
        section
        for section in article.find_all("section")
        if (heading := section.find(re.compile(r"^h[1-6]$"))) is not None
        and heading.get_text().strip().lower().startswith("exercise")
    ]


def uncollapsed_solution_problems(article) -> list[str]:
    """Finds code or output of an exercise cell that is not inside a closed <details> toggle.

    Jupyter Book renders a cell tagged ``hide-cell`` as ``<details class="hide ...">``
    around the cell's input and output; ``hide-input`` folds only the code away.
    """
    problems = []
    for section in _exercise_sections(article):
        for cell in section.select("div.cell"):
            for part in cell.select(".cell_input, .cell_output"):
                toggle = part.find_parent("details")
                if toggle is None or toggle.has_attr("open") or cell not in toggle.parents:
                    kind = "code" if "cell_input" in part["class"] else "output"
                    problems.append(f"exercise {kind} in view: {part.get_text().strip()[:60]!r}")
    return problems


READER_CHECKS = {
    "no raw pipe table": raw_pipe_table_problems,
    "no emoji": emoji_problems,
    "no nbval marker": nbval_marker_problems,
    "solutions collapsed": uncollapsed_solution_problems,
}


def _source_title(docname: str) -> str:
    if docname in NOTEBOOKS:
        notebook = nbformat.read(ROOT / f"{docname}.ipynb", as_version=4)
        markdown = next(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    else:
        markdown = (ROOT / f"{docname}.md").read_text(encoding="utf-8")
    return next(line[2:] for line in markdown.splitlines() if line.startswith("# "))


def _stored_images(docname: str) -> int:
    """Counts the images a notebook's outputs hold and the page should show."""
    notebook = nbformat.read(ROOT / f"{docname}.ipynb", as_version=4)
    count = 0
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if cell.cell_type != "code" or {"remove-output", "remove-cell"} & set(tags):
            continue
        for output in cell.outputs:
            if any(kind in output.get("data", {}) for kind in IMAGE_TYPES):
                count += 1
    return count


def test_site_root_opens_the_landing_page(site):
    # GitHub Pages serves index.html at the site's root URL.
    assert f'url={DOCNAMES[0]}.html"' in (site / "index.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("docname", DOCNAMES)
def test_page_renders_its_title(browse, docname):
    heading = _article(browse(f"{docname}.html")).find("h1")
    assert heading is not None
    assert _letters(heading.get_text()) == _letters(_source_title(docname))


@pytest.mark.parametrize("docname", DOCNAMES)
def test_page_needs_no_other_host(browse, docname):
    hosts = {urlsplit(url).hostname for url, _ in browse(f"{docname}.html").requests}
    assert hosts - {"127.0.0.1", None} == set()


@pytest.mark.parametrize("docname", DOCNAMES)
def test_page_loads_every_file_it_asks_for(browse, docname):
    page = browse(f"{docname}.html")
    # An outcome is a status code, or Chromium's error text when no response came.
    failed = [
        (url, outcome)
        for url, outcome in page.requests
        if not (isinstance(outcome, int) and outcome < 400)
    ]
    assert failed == []
    assert page.broken_images == []


# Sphinx 7.4 writes an inline script that an extension adds after the builder started twice
# (once with filename None, once with ""), so sphinx-thebe's `const THEBE_JS_URL` is declared
# twice. Thebe is off in this book and nothing reads that constant, so readers lose nothing.
KNOWN_SCRIPT_ERRORS = {"SyntaxError: Identifier 'THEBE_JS_URL' has already been declared"}


@pytest.mark.parametrize("docname", DOCNAMES)
def test_page_runs_its_scripts_without_errors(browse, docname):
    errors = [
        error
        for error in browse(f"{docname}.html").script_errors
        if error not in KNOWN_SCRIPT_ERRORS
    ]
    assert errors == []


@pytest.mark.parametrize("docname", DOCNAMES)
def test_page_cuts_off_no_code_or_output_line(browse, docname):
    assert browse(f"{docname}.html").clipped_blocks == []


@pytest.mark.parametrize("docname", DOCNAMES)
def test_page_math_is_typeset(browse, docname):
    article = _article(browse(f"{docname}.html"))
    untypeset = [
        element.get_text()[:80]
        for element in article.select(".math")
        if element.find("mjx-container") is None
    ]
    assert untypeset == []
    assert article.select("mjx-merror") == []


def test_book_has_typeset_math(browse):
    typeset = sum(
        len(_article(browse(f"{name}.html")).select("mjx-container")) for name in NOTEBOOKS
    )
    assert typeset > 0


@pytest.mark.parametrize("docname", NOTEBOOKS)
def test_page_shows_every_stored_plot(browse, docname):
    page = browse(f"{docname}.html")
    images = _article(page).select(".cell_output img")
    assert len(images) == _stored_images(docname)
    assert not {image["src"] for image in images} & set(page.broken_images)


@pytest.mark.parametrize("docname", NOTEBOOKS)
def test_colab_links_open_the_chapter_notebook(browse, docname):
    branch = CONFIG["repository"]["branch"]
    owner_and_name = urlsplit(REPOSITORY).path.strip("/")
    expected = f"{COLAB}/github/{owner_and_name}/blob/{branch}/{docname}.ipynb"
    links = [
        a["href"]
        for a in browse(f"{docname}.html").dom.select("a[href]")
        if a["href"].startswith(COLAB)
    ]
    # The launch button and the link under the chapter's title.
    assert len(links) >= 2
    assert set(links) == {expected}


@pytest.mark.parametrize("docname", NOTEBOOKS)
def test_page_offers_binder_repository_and_issues(browse, docname):
    hrefs = [a["href"] for a in browse(f"{docname}.html").dom.select("a[href]")]
    assert any(href.startswith(f"{BINDER}/v2/gh/") for href in hrefs)
    assert REPOSITORY in hrefs
    assert any(href.startswith(f"{REPOSITORY}/issues/new") for href in hrefs)


@pytest.mark.parametrize("docname", DOCNAMES)
def test_page_shows_no_unintended_traceback(browse, docname):
    article = _article(browse(f"{docname}.html"))
    unintended = []
    for cell in article.select("div.cell"):
        output = cell.select_one(".cell_output")
        shows_error = output is not None and (
            output.select(".traceback") or "Traceback" in output.get_text()
        )
        if shows_error and "tag_raises-exception" not in cell.get("class", []):
            unintended.append(output.get_text()[:200])
    prose = " ".join(
        text
        for text in article.find_all(string=True)
        if text.find_parent("div", class_="cell") is None
    )
    assert unintended == []
    assert "Traceback (most recent call last)" not in prose
    # Docutils shows a markup error in the page itself when it cannot parse something.
    assert article.select(".system-message, .problematic") == []


@pytest.mark.parametrize("docname", DOCNAMES)
@pytest.mark.parametrize("check", READER_CHECKS.values(), ids=READER_CHECKS.keys())
def test_page_reads_as_meant(browse, docname, check):
    assert check(_article(browse(f"{docname}.html"))) == []


def test_chapter_3_verdict_is_an_html_table(browse):
    article = _article(browse("book/03_the_stack_overflow_answers.html"))
    verdict = next(
        section
        for section in article.find_all("section")
        if (heading := section.find("h2")) is not None
        and heading.get_text().startswith("The verdict")
    )
    # The section shows other tables too (the TFLite ops of a few formulas); the verdict's
    # first column is "check".
    (table,) = [
        table
        for table in verdict.select(".cell_output table")
        if table.find(["th", "td"]).get_text() == "check"
    ]
    rows = [[cell.get_text() for cell in row.find_all(["th", "td"])] for row in table("tr")]
    # A column per approach, a row per check; every result cell says yes or no.
    assert rows[0][-1] == "pt.PReLU()"
    assert rows[-1][0] == "one PRELU op in TFLite?"
    assert {cell for row in rows[1:] for cell in row[1:]} == {"yes", "no"}


# Pages as jupyter-book 1.0 renders them, cut down to what the reader checks look at.
HIDE_CELL = """<section id="exercises"><h2>Exercises</h2><ol><li>Why?</li></ol>
<div class="cell tag_hide-cell docutils container"><details class="admonition hide above-input">
<summary aria-label="Toggle hidden content"><p>Show code cell content</p></summary>
<div class="cell_input docutils container"><pre>print(1)</pre></div>
<div class="cell_output docutils container"><pre>1</pre></div></details></div></section>"""
HIDE_INPUT = """<section id="exercises"><h2>Exercises</h2><ol><li>Why?</li></ol>
<div class="cell tag_hide-input docutils container"><details class="hide above-input">
<summary aria-label="Toggle hidden content">Show code cell source</summary>
<div class="cell_input docutils container"><pre>print(1)</pre></div></details>
<div class="cell_output docutils container"><pre>1</pre></div></div></section>"""
SPOILED_PAGES = {
    "raw pipe table": (
        "<p>| approach | ok |\n|---|---|\n| answer 1 | yes |</p>",
        raw_pipe_table_problems,
    ),
    "emoji": ("<table><tr><td>\u2705 yes</td><td>\u274c no</td></tr></table>", emoji_problems),
    "nbval marker": ("<pre># NBVAL_IGNORE_OUTPUT\nprint(1)</pre>", nbval_marker_problems),
    "solution under hide-input": (HIDE_INPUT, uncollapsed_solution_problems),
    "solution opened": (
        HIDE_CELL.replace("<details class", "<details open class"),
        uncollapsed_solution_problems,
    ),
}


def _snippet(html: str):
    return BeautifulSoup(f'<article class="bd-article">{html}</article>', "html.parser").article


@pytest.mark.parametrize("spoiled", SPOILED_PAGES.values(), ids=SPOILED_PAGES.keys())
def test_reader_check_reports_spoiled_page(spoiled):
    html, check = spoiled
    assert check(_snippet(html)) != []


def test_reader_checks_pass_a_clean_page():
    clean = _snippet(
        HIDE_CELL + "<table><tr><th>approach</th><td>yes</td></tr></table><pre>a | b</pre>"
    )
    assert {name: check(clean) for name, check in READER_CHECKS.items()} == {
        name: [] for name in READER_CHECKS
    }


@pytest.mark.parametrize(
    ("name", "docname"),
    [("landing", DOCNAMES[0]), ("chapter", (NOTEBOOKS or DOCNAMES)[0])],
)
def test_screenshot_shows_the_page(browse, name, docname):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    path.unlink(missing_ok=True)
    browse(f"{docname}.html", screenshot=path)
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (2000, 1280)
    # A blank or failed render is one flat colour; a page has text, a logo, plots.
    assert pixels[..., :3].std() > 0.05
