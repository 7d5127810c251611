"""The built smoke book in a real browser (headless Chromium): every chart draws, no error box, internal links
resolve; and the check fails on a book with a broken chart."""

import os

import pytest

import book_check

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture(scope="module")
def book(smoke_build):
    reason = book_check.available()
    if reason and os.environ.get("ARENA_REQUIRE_BROWSER"):
        pytest.fail(f"the browser test must run here (ARENA_REQUIRE_BROWSER is set): {reason}")
    if reason:
        pytest.skip(reason)
    out, proc, _ = smoke_build
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return out / "book" / "_build" / "html", out / "book" / "chapters"


def test_every_chart_draws_and_every_link_resolves(book):
    html, chapters = book
    assert book_check.check_book(html, chapters) == []


@pytest.mark.parametrize("how", ["missing", "blank", "removed"])
def test_the_check_fails_on_a_broken_chart(book, tmp_path, how):
    html, chapters = book
    problems = book_check.check_book(book_check.broken_copy(html, tmp_path, how), chapters)
    assert problems and all("chart" in p or "charts" in p or "Failed to load" in p for p in problems), problems
