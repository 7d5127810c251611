"""NLTK data for IFEval's checkers, shipped with the kit, so scoring never reaches for the network.

lm-eval's IFEval module calls ``nltk.download("punkt_tab")`` on import unless ``nltk.data.find`` finds it. The kit
ships an *untrained* Punkt model (``nltk_data/tokenizers/punkt_tab/english``: four empty parameter files), found
first on NLTK's search path. Sentence splitting with it equals ``PunktSentenceTokenizer()`` with no training text,
which is what the kit has always scored IFEval with (the book's protocol table says so); ``nltk.word_tokenize`` (the
capital-words checker) uses it too.
"""

from __future__ import annotations

import importlib
from pathlib import Path

NLTK_DATA = Path(__file__).parent / "nltk_data"


def use_shipped_nltk_data() -> None:
    """Put the shipped NLTK data first on NLTK's search path (idempotent). Call before lm-eval's IFEval is imported."""
    import nltk

    if str(NLTK_DATA) not in nltk.data.path:
        nltk.data.path.insert(0, str(NLTK_DATA))


def ifeval_module(name: str):
    """``lm_eval.tasks.ifeval.<name>``, imported with the shipped NLTK data in place (every kit import goes here)."""
    use_shipped_nltk_data()
    return importlib.import_module(f"lm_eval.tasks.ifeval.{name}")
