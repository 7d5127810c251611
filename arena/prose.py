"""General English prose for the cross-entropy / KL forgetting proxy (book/definitions.md P), from the documentation
text that ships with the Python interpreter (``pydoc_data.topics``): natural prose written by people, not by the kit's
templates and not math, present wherever Python is, so it cannot vanish from a registry. Its paragraphs differ between
Python minor versions, so the suite's key records the version (``identity``).
"""

from __future__ import annotations

import random
import re
import sys

MIN_CHARS = 200  # a paragraph, not a heading or a one-line remark


def identity() -> str:
    """What determines the paragraphs: the interpreter's minor version."""
    return f"pydoc_data.topics@python{sys.version_info.major}.{sys.version_info.minor}"


def paragraphs() -> list[str]:
    """Every prose paragraph of the interpreter's documentation topics, in topic order: blocks separated by blank
    lines, re-joined from their wrapped lines; indented blocks (code, grammar), headings and lists of signatures are
    skipped."""
    from pydoc_data.topics import topics

    out = []
    for name in sorted(topics):
        for block in re.split(r"\n\s*\n", topics[name]):
            lines = block.splitlines()
            if not lines or any(line.startswith((" ", "\t")) for line in lines):
                continue
            text = " ".join(line.strip() for line in lines)
            words = text.split()
            # prose, not a list of signatures: most words are plain words
            if len(text) >= MIN_CHARS and sum(w.strip(".,;:()\"'").isalpha() for w in words) >= 0.8 * len(words):
                out.append(text)
    return out


def documents(n: int, rng: random.Random) -> list[dict]:
    """``n`` paragraphs drawn without replacement, as ``{"text": ...}`` rows (all of them if fewer exist)."""
    docs = paragraphs()
    return [{"text": t} for t in rng.sample(docs, min(n, len(docs)))]
