"""End to end: `make reproduce PROFILE=smoke` runs every notebook and builds the book; a rerun does nothing."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _make(out: Path, *extra):
    return subprocess.run(["make", "reproduce", "PROFILE=smoke", f"OUT={out}", *extra], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)


@pytest.mark.e2e
def test_reproduce_smoke_builds_an_offline_book_and_reruns_nothing(smoke_build):
    out, first, _ = smoke_build
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    html = out / "book" / "_build" / "html"
    chapter = (html / "chapters" / "00_base_model.html").read_text()
    # The chart is drawn as a local SVG image: no script is fetched from a CDN to draw it.
    images = re.findall(r'<img[^>]+src="(\.\./_images/[^"]+\.svg)"', chapter)
    assert images, "the chapter has no chart"
    svg = (html / "chapters" / images[0]).resolve().read_text()
    assert "<svg" in svg and "<rect" in svg and "http" not in svg.replace("http://www.w3.org", "")
    scripts = re.findall(r'<script[^>]+src="([^"]+)"', chapter)
    assert not [s for s in scripts if s.startswith("http")], scripts
    assert "General" in chapter and "Traceback" not in chapter
    for name, words in [("01_benchmark", ["Forgetting", "lora-r8", "oft-b32", "measurable above noise"]),
                        ("02_stability_plasticity", ["non-dominated", "oft-b32 - lora-r8", "paper"])]:
        page = (html / "chapters" / f"{name}.html").read_text()
        assert all(w in page for w in words), name
        assert re.findall(r'<img[^>]+src="(\.\./_images/[^"]+\.svg)"', page), f"{name} has no chart"
        assert "Traceback" not in page and "Error" not in page.replace("standard error", "")
    for name in ("05_overshoot_rewinding", "06_your_method", "07_summary", "08_reproducibility"):
        page = (html / "chapters" / f"{name}.html").read_text()
        assert "Traceback" not in page, name
    assert "selection rule picks" in (html / "chapters" / "05_overshoot_rewinding.html").read_text()
    assert "the best trade-off is" in (html / "chapters" / "07_summary.html").read_text()
    math_page = (html / "chapters" / "03_weight_spectra.html").read_text()  # pages with formulas load MathJax
    assert "mathjax/tex-chtml.js" in math_page and "cdn.jsdelivr" not in math_page  # from the book, not a CDN
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists()
    attempts = (out.parent / "network-attempts.log").read_text()
    assert not attempts, f"make reproduce reached for the network (tests/netguard):\n{attempts}"
    for executed in sorted((out / "book" / "chapters").glob("*.ipynb")):  # a download attempt prints into a chapter
        text = executed.read_text()
        assert "[nltk_data]" not in text and "Downloaded punkt_tab" not in text, executed.name

    second = _make(out)
    assert second.returncode == 0
    assert "papermill" not in second.stdout and "jupyter-book build" not in second.stdout


@pytest.mark.e2e
def test_unknown_profile_stops_make_with_one_line(tmp_path):
    proc = subprocess.run(["make", "reproduce", "PROFILE=nope", f"OUT={tmp_path}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    assert "error: unknown profile 'nope'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.e2e
@pytest.mark.nf4
def test_reproduce_smoke_in_nf4_runs_every_chapter_on_cpu(smoke_nf4_build):
    out, proc, _ = smoke_nf4_build
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not (out.parent / "network-attempts.log").read_text()
    html = out / "book" / "_build" / "html" / "chapters"
    pages = {p.stem: p.read_text() for p in html.glob("*.html")}
    assert len(pages) == len(list((ROOT / "notebooks").glob("[0-9]*.ipynb")))
    for name, page in pages.items():
        assert "Traceback" not in page, name
    # methods that cannot start from nf4 (full FT, PiSSA) are compared with the full-precision base, shown beside
    assert "base (full precision)" in pages["01_benchmark"] and "base (nf4)" in pages["01_benchmark"]


@pytest.mark.e2e
def test_reading_chapters_never_train_and_name_the_command(smoke_build, tmp_path):
    """Chapters 02-08 with a method whose results are missing (dora): nothing is trained or scored; each chapter that
    needs it stops with one line naming the command that computes it."""
    import os
    import sys

    out, first, _ = smoke_build
    assert first.returncode == 0
    results = out.parent.parent / "results"
    def finished():
        return sorted(str(p.parent.relative_to(results)) for p in results.rglob("metrics.json"))

    before = finished()
    env = {**os.environ, "PEFT_ARENA_RESULTS": str(results), "ARENA_QUIET": "1"}
    stopped = []
    for notebook in sorted((ROOT / "notebooks").glob("0[2-8]_*.ipynb")):
        proc = subprocess.run([sys.executable, "-m", "papermill", str(notebook), str(tmp_path / notebook.name),
                               "-p", "profile", "smoke", "-p", "methods", '["lora", "dora"]', "--cwd",
                               str(ROOT / "notebooks"), "-k", "python3", "--execution-timeout", "600", "--log-level",
                               "ERROR", "--no-progress-bar"],
                              capture_output=True, text=True, timeout=900, env=env)
        if proc.returncode != 0:
            assert "no stored results for dora" in proc.stdout + proc.stderr, notebook.name
            assert "python -m arena benchmark --profile smoke --methods dora" in proc.stdout + proc.stderr
            stopped.append(notebook.name)
    assert finished() == before, "a reading chapter trained, scored or analysed something"
    assert {"02_stability_plasticity.ipynb", "03_weight_spectra.ipynb", "06_your_method.ipynb",
            "07_summary.ipynb"} <= set(stopped), stopped


@pytest.mark.e2e
def test_the_readme_methods_parameter_trains_exactly_those_methods(smoke_build, tmp_path):
    """README: make reproduce PARAMS='-p methods "[\\"lora\\",\\"milora\\"]"' trains those methods and no others (here
    lora is stored by the smoke build and ia3 is new, so ia3 alone trains)."""
    import json
    import os
    import sys

    out, first, _ = smoke_build
    assert first.returncode == 0
    results = out.parent.parent / "results"

    def trained():
        return {json.loads((p.parent / "key.json").read_text())["method"]
                for p in (results / "train").glob("*/metrics.json")}

    before = trained()
    env = {**os.environ, "PEFT_ARENA_RESULTS": str(results), "ARENA_QUIET": "1"}
    proc = subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "01_benchmark.ipynb"),
                           str(tmp_path / "01.ipynb"), "-p", "profile", "smoke", "-p", "methods", '["lora","ia3"]',
                           "--cwd", str(ROOT / "notebooks"), "-k", "python3", "--execution-timeout", "900",
                           "--log-level", "ERROR", "--no-progress-bar"], capture_output=True, text=True, timeout=1200,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "lora" in before and trained() - before == {"ia3"}


@pytest.mark.e2e
@pytest.mark.dryrun
@pytest.mark.parametrize("profile", ["onegpu", "paper"])
def test_a_dry_run_of_each_hub_profile_builds_every_chapter_and_the_book(profile, tmp_path_factory):
    """make reproduce PROFILE=onegpu|paper DRY_RUN=1: each hub profile's whole pipeline (its bases' exact
    architectures cut to 2 layers, the stock tasks on both splits, the rewinding study, the book) on the CPU, under
    the network guard."""
    from conftest import _guarded_reproduce

    # the first profile computes everything (about an hour on 2 cores); the second reads its store
    out, proc, _ = _guarded_reproduce(tmp_path_factory, f"{profile}-dry", "DRY_RUN=1", profile=profile, timeout=3 * 3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not (out.parent / "network-attempts.log").read_text()
    pages = {p.stem: p.read_text() for p in (out / "book" / "_build" / "html" / "chapters").glob("*.html")}
    assert len(pages) == len(list((ROOT / "notebooks").glob("[0-9]*.ipynb")))
    assert all("Traceback" not in page for page in pages.values())
    assert "(random, 2 layers)" in pages["00_base_model"]
