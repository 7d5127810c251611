"""Item files of the kit's suite: JSONL read and write, the normalised text that keeps splits disjoint, and draws
that leave a later split its items. Shared by the General suite (``suite``) and the domains (``domains``)."""

from __future__ import annotations

import json
import re
from pathlib import Path


def norm(text: str) -> str:
    """The text two items are compared by: lower case, whitespace collapsed."""
    return re.sub(r"\s+", " ", text).strip().lower()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, items: list[dict]) -> None:
    if not items:
        raise ValueError(f"refusing to write an empty evaluation file {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(item) + "\n" for item in items))


def inputs(path: Path, field: str = "input") -> set[str]:
    """Normalised ``field`` of every item in ``path`` (none if it does not exist): what a later draw excludes."""
    return {norm(r[field]) for r in read_jsonl(path)} if Path(path).exists() else set()


def leave_reserve(drawn: list[dict], n: int, reserve: int) -> list[dict]:
    """The first ``n`` of a draw of ``n + reserve`` items, or, where the source ran short, all but ``reserve`` of
    them: a finite source (a fact table, 1-digit sums) keeps items for the split drawn after this one."""
    return drawn[:n] if len(drawn) >= n + reserve else drawn[:max(0, len(drawn) - reserve)]
