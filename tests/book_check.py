"""Open a built book in headless Chromium (Debian's ``chromium`` + ``chromedriver``) and report what a reader would
see broken: charts that do not draw, error boxes, and internal links that lead nowhere.

A chart "draws" when its image loads and, painted onto a canvas, has a few hundred non-background pixels; the number
of charts on a page must equal the number of chart outputs of the executed notebook behind it (so a chart that
vanished from the page is caught too). The book is served over a local HTTP server: canvas pixels of file:// images
cannot be read.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urljoin, urldefrag, urlparse

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
MIN_INK = 200  # non-background pixels below which a chart counts as blank
# Console messages that are not faults: pydata-sphinx-theme logs this with console.error on every first visit, when
# no colour mode is stored yet, and then uses "auto" (what it should do).
# The browser also asks the test server for /favicon.ico, which a book opened from disk never requests.
BENIGN = ("Got invalid theme mode", "favicon.ico")

# For each chart image: loaded? natural size; pixels that differ from white/transparent.
_INK_JS = """
const out = [];
for (const img of document.querySelectorAll('.cell_output img, .output img')) {
  const rec = {src: img.getAttribute('src'), complete: img.complete, w: img.naturalWidth, h: img.naturalHeight, ink: 0};
  if (img.complete && img.naturalWidth > 0) {
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] > 16 && (d[i] < 235 || d[i + 1] < 235 || d[i + 2] < 235)) rec.ink++;
    }
  }
  out.push(rec);
}
return out;
"""
_ERRORS_JS = """
const boxes = document.querySelectorAll('.output.error, .output.traceback, .output_error, .jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"] .ansi-red-fg');
const text = document.body.innerText;
return {boxes: boxes.length, traceback: text.includes('Traceback (most recent call last)')};
"""


def available() -> str | None:
    """None when the browser test can run, else the reason it cannot."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        return f"{', '.join(missing)} not installed (make test installs Debian's chromium and chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # the browser drops connections it no longer needs; that is not a fault of the book


def serve(folder: Path):
    """A localhost HTTP server for ``folder`` in a thread; returns (server, base URL)."""
    handler = functools.partial(_Quiet, directory=str(folder))
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def expected_charts(notebook: Path) -> int:
    """Chart outputs (SVG or PNG images) in an executed notebook: what its page must show."""
    nb = json.loads(notebook.read_text())
    return sum(1 for cell in nb["cells"] if cell["cell_type"] == "code" for out in cell.get("outputs", [])
               if {"image/svg+xml", "image/png"} & set(out.get("data", {})))


def check_book(html: Path, chapters: Path | None = None) -> list[str]:
    """Every problem found in the built book under ``html`` (empty list = it renders). ``chapters`` holds the
    executed notebooks, to know how many charts each page must show."""
    problems: list[str] = []
    server, root = serve(html)
    driver = browser()
    try:
        pages = sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                       if not p.relative_to(html).parts[0].startswith(("_", "genindex", "search")))
        links: set[str] = set()
        for page in pages:
            driver.get(urljoin(root, page))
            charts = driver.execute_script(_INK_JS)
            for c in charts:
                if not c["complete"] or c["w"] == 0:
                    problems.append(f"{page}: chart {c['src']} does not load")
                elif c["ink"] < MIN_INK:
                    problems.append(f"{page}: chart {c['src']} is blank ({c['ink']} drawn pixels)")
            notebook = chapters / (Path(page).stem + ".ipynb") if chapters else None
            if notebook and notebook.exists() and len(charts) != (want := expected_charts(notebook)):
                problems.append(f"{page}: {len(charts)} charts on the page, {want} in the notebook")
            errors = driver.execute_script(_ERRORS_JS)
            if errors["boxes"] or errors["traceback"]:
                problems.append(f"{page}: an error box or traceback is shown")
            for entry in driver.get_log("browser"):
                if entry["level"] == "SEVERE" and not any(b in entry["message"] for b in BENIGN):
                    problems.append(f"{page}: browser error: {entry['message'][:200]}")
            for href in driver.execute_script("return [...document.querySelectorAll('a[href]')]"
                                              ".map(a => a.href)"):
                if href.startswith(root):
                    links.add(href)
        for href in sorted(links):
            problems += _check_link(href, root)
    finally:
        driver.quit()
        server.shutdown()
    return problems


@functools.cache
def _ids(url: str) -> frozenset:
    with urllib.request.urlopen(url, timeout=10) as response:
        return frozenset(re.findall(r'\bid="([^"]+)"', response.read().decode("utf-8", "replace")))


def _check_link(href: str, root: str) -> list[str]:
    url, fragment = urldefrag(href)
    try:
        ids = _ids(url) if url.endswith((".html", "/")) else None
        if ids is None:
            urllib.request.urlopen(url, timeout=10).close()
    except urllib.error.URLError as err:
        return [f"link {urlparse(href).path} does not resolve ({err})"]
    if fragment and ids is not None and fragment not in ids:
        return [f"link {urlparse(href).path}#{fragment}: no such anchor"]
    return []


def broken_copy(html: Path, into: Path, how: str) -> Path:
    """A copy of the book with one chart broken: ``missing`` deletes its image file, ``blank`` empties its SVG,
    ``removed`` deletes the chart from its page. Used to show the check can fail."""
    copy = into / "html"
    shutil.copytree(html, copy)
    for page in sorted(copy.rglob("*.html")):
        text = page.read_text()
        match = re.search(r'<img[^>]+src="([^"]+\.svg)"[^>]*>', text)
        if not match:
            continue
        image = (page.parent / match.group(1)).resolve()
        if how == "missing":
            image.unlink()
        elif how == "blank":
            image.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="400" height="300"></svg>')
        elif how == "removed":
            page.write_text(text.replace(match.group(0), ""))
        else:
            raise ValueError(how)
        return copy
    raise AssertionError("the book has no chart to break")
