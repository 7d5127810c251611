"""The "reasoning" group: generated, seeded stand-ins for BIG-Bench Hard (BBH) families.

BBH is how capability studies usually probe multi-step reasoning, but its data can no longer be downloaded, so this
module writes BBH-style items itself from a ``random.Random``: no data download, and the same seed gives the same items.
Each family has a three-level difficulty knob (easiest first), so a finetuned model's loss can be seen at the level
where the base model is still well above chance. Items are multiple choice, scored by log-likelihood: the prompt is
``item["input"] + "\\nAnswer:"`` and each option is the continuation ``" " + choice``; chance is ``1 / len(choices)``.
Every answer is computed from the item's own construction, never typed in by hand.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Callable

from .errors import ArenaError
from .itemfiles import norm

NAMES = ["Alice", "Bob", "Claire", "Dave", "Eve", "Fred", "Gina", "Hank", "Iris", "Jack", "Kate", "Liam", "Mona", "Ned"]
PENGUINS = ["Louis", "Bernard", "Vincent", "Gwen", "James", "Pingu", "Tux", "Opus", "Skipper", "Mumble", "Gloria"]
COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "white", "black", "pink", "brown"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
# Standard English order: opinion, size, age, shape, colour, origin, material, purpose.
ADJECTIVES = [
    ["lovely", "ugly", "nice", "silly", "wonderful"], ["big", "small", "tiny", "huge", "large"],
    ["old", "new", "ancient", "brand-new"], ["round", "square", "triangular", "rectangular"],
    ["red", "blue", "green", "black", "white"], ["French", "Chinese", "Mexican", "German", "Brazilian"],
    ["wooden", "plastic", "steel", "glass", "paper"], ["hiking", "drinking", "eating", "walking", "fishing"],
]
THINGS = ["box", "bag", "chair", "table", "shoe", "cup", "ship", "knife", "sweater", "car", "basket", "lamp"]
KINDS = {  # (singular, plural); members chosen so that no word belongs to two categories
    "fruits": [("apple", "apples"), ("banana", "bananas"), ("orange", "oranges"), ("peach", "peaches"),
               ("plum", "plums"), ("grape", "grapes"), ("strawberry", "strawberries"), ("pear", "pears")],
    "vegetables": [("carrot", "carrots"), ("onion", "onions"), ("potato", "potatoes"), ("cabbage", "cabbages"),
                   ("cucumber", "cucumbers"), ("turnip", "turnips")],
    "animals": [("cat", "cats"), ("dog", "dogs"), ("rabbit", "rabbits"), ("goat", "goats"), ("cow", "cows"),
                ("pig", "pigs"), ("snake", "snakes"), ("mouse", "mice")],
    "musical instruments": [("piano", "pianos"), ("flute", "flutes"), ("violin", "violins"), ("drum", "drums"),
                            ("trumpet", "trumpets"), ("guitar", "guitars"), ("clarinet", "clarinets")],
}
# Common nouns, with several clusters sharing two-letter prefixes so that the hardest word_sorting level can be built.
WORDS = """apple arrow anchor actor island igloo ink insect jacket jelly judge kettle kite king knife ladder lemon lion
letter lake needle nest night nurse ocean onion owl oven queen quilt violin village vase yard yacht zebra zoo egg engine
eagle elbow umbrella uncle cat cake camera candle car castle cabin ball banana basket bag bank barn bath star stone
street student stamp stove story stick book bottle box boat bone bowl ship shoe shirt shop shell shadow paper park pan
path page palace pen pencil pepper pet pearl chair cheese chicken church child tree train truck trip trophy bread bridge
brush brick brother map market mango machine moon mountain mouse monkey mother motor water wall wagon wave window winter
wind wife wolf road rock roof room rope rose river ring rice rain horse house hotel hook honey hole hill hat hand hammer
flower flag floor flute grass grape group grill garden gate goat gold glass glove desk door doctor dog dinner dish drum
dream dress table tiger tooth town tent toy tomato forest fox farm feather fire fish field fork pilot pillow piano pizza
plate planet plant clock cloud coat coin cup cow crown salt sand seed sister sock soup spoon sugar summer sun""".split()


@dataclass(frozen=True)
class Family:
    name: str
    knob: str  # what the difficulty setting means
    settings: tuple  # knob values, easiest first
    make: Callable[[object, random.Random], dict]  # (setting, rng) -> {"input", "choices", "gold"}
    # Distinct questions a setting holds where it is small (by counting: 1-digit comparison 10 x 9 pairs x 2 questions;
    # one operation 9 x 9 operands x 3 operators, either side reading the same); a setting not named is unbounded
    # for any draw the kit makes.
    sizes: dict = field(default_factory=dict)


def _item(rng, question, gold, wrong):
    choices = [gold, *wrong]
    rng.shuffle(choices)  # the gold's position must carry no signal
    return {"input": "Question: " + question, "choices": choices, "gold": choices.index(gold)}


def _listing(parts):
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _show(d):
    return f"{d:%B} {d.day}, {d.year}"


def _a(word):
    return ("an " if word[0].lower() in "aeiou" else "a ") + word


def _bool(rng, k):
    """(text, value, atomic) of a random expression over k literals; composite parts get parentheses when nested."""
    if k == 1:
        v = rng.random() < 0.5
        return (f"not {v}", not v, True) if rng.random() < 0.3 else (str(v), v, True)
    left = rng.randint(1, k - 1)
    (a, va, aa), (b, vb, ba) = _bool(rng, left), _bool(rng, k - left)
    op = rng.choice(["and", "or"])
    text = f"{a if aa else f'( {a} )'} {op} {b if ba else f'( {b} )'}"
    value = (va and vb) if op == "and" else (va or vb)
    if rng.random() < 0.25:
        return f"not ( {text} )", not value, True
    return text, value, False


def _boolean_expressions(k, rng):
    target = rng.random() < 0.5  # rejection towards a coin flip keeps True/False balanced without a structural cue
    for _ in range(200):
        text, value, _ = _bool(rng, k)
        if value == target:
            break
    return _item(rng, f"Evaluate the expression: {text}. Is it True or False?", str(value), [str(not value)])


def _comparison(d, rng):
    lo, hi = (0 if d == 1 else 10 ** (d - 1)), 10 ** d - 1
    a = rng.randint(lo, hi)
    digits = list(str(a))
    rng.shuffle(digits)  # same digits in another order ("47 or 74") defeats guessing by digit content
    b = int("".join(digits))
    if b == a or len(str(b)) != len(str(a)):
        b = rng.choice([x for x in range(lo, hi + 1) if x != a])
    larger = rng.random() < 0.5  # both questions: doubles the distinct one-digit items and bars "always the bigger"
    gold, other = (max(a, b), min(a, b)) if larger else (min(a, b), max(a, b))
    return _item(rng, f"Which number is {'larger' if larger else 'smaller'}: {a} or {b}?", str(gold), [str(other)])


def _date_arithmetic(m, rng):
    n, back = rng.randint(1, m), rng.random() < 0.5
    days = f"{n} day{'s' if n > 1 else ''}"
    if rng.random() < 0.5:
        today = rng.randrange(7)
        gold = WEEKDAYS[(today + (-n if back else n)) % 7]
        ask = f"What day of the week was it {days} ago?" if back else f"What day of the week will it be in {days}?"
        return _item(rng, f"Today is {WEEKDAYS[today]}. {ask}", gold, rng.sample([w for w in WEEKDAYS if w != gold], 3))
    today, step = date(2001, 1, 1) + timedelta(rng.randrange(7300)), timedelta(days=-n if back else n)
    ask = f"What was the date {days} ago?" if back else f"What is the date {days} from now?"
    # Distractors are the usual slips: no change, wrong direction, one day too far.
    wrong = [_show(today), _show(today - step), _show(today + step + timedelta(days=-1 if back else 1))]
    return _item(rng, f"Today is {_show(today)}. {ask}", _show(today + step), wrong)


MOVES = {"forward": (0, 1), "backward": (0, -1), "left": (-1, 0), "right": (1, 0)}
OPPOSITE = {"forward": "backward", "backward": "forward", "left": "right", "right": "left"}


def _navigate(k, rng):
    steps = []
    for _ in range(k // 2):  # cancelling pairs, then one count changed for "No": both answers look alike on the surface
        d, n = rng.choice(list(MOVES)), rng.randint(1, 20)  # 20: two instructions give 80 distinct "Yes" items
        steps += [(d, n), (OPPOSITE[d], n)]
    rng.shuffle(steps)
    if rng.random() < 0.5:
        i = rng.randrange(k)
        steps[i] = (steps[i][0], rng.choice([x for x in range(1, 21) if x != steps[i][1]]))
    x = sum(MOVES[d][0] * n for d, n in steps)
    y = sum(MOVES[d][1] * n for d, n in steps)
    text = " ".join(f"Take {n} step{'s' if n > 1 else ''} {d}." for d, n in steps)
    q = f"If you follow these instructions, do you return to the starting point? Always face forward. {text}"
    return _item(rng, q, "Yes" if x == y == 0 else "No", ["No" if x == y == 0 else "Yes"])


def _object_counting(k, rng):
    target = rng.choice(list(KINDS))
    t = rng.randint(1, k - 1)  # at least one distractor kind, so the category must be recognised
    others = [kind for cat, kinds in KINDS.items() if cat != target for kind in kinds]
    held = [(kind, rng.randint(1, 3), True) for kind in rng.sample(KINDS[target], t)]
    held += [(kind, rng.randint(1, 3), False) for kind in rng.sample(others, k - t)]
    rng.shuffle(held)
    parts = [_a(s) if q == 1 else f"{['two', 'three'][q - 2]} {p}" for (s, p), q, _ in held]
    gold = sum(q for _, q, counted in held if counted)
    wrong = rng.sample([x for x in range(max(0, gold - 3), gold + 4) if x != gold], 3)
    return _item(rng, f"I have {_listing(parts)}. How many {target} do I have?", str(gold), [str(w) for w in wrong])


RELATIONS = [("taller", "tallest", "shortest"), ("older", "oldest", "youngest"), ("faster", "fastest", "slowest")]


def _logical_deduction(k, rng):
    people = rng.sample(NAMES, k)  # people[0] ranks highest; facts state only neighbours, so the chain must be followed
    rel, top, bottom = rng.choice(RELATIONS)
    facts = [f"{people[i]} is {rel} than {people[i + 1]}." for i in range(k - 1)]
    rng.shuffle(facts)
    ask_top = rng.random() < 0.5
    gold = people[0] if ask_top else people[-1]
    wrong = rng.sample([p for p in people if p != gold], 2)
    return _item(rng, f"{' '.join(facts)} Who is the {top if ask_top else bottom}?", gold, wrong)


def _tracking_shuffled_objects(swaps, rng):
    people = rng.sample(NAMES, 3)
    ball = dict(zip(people, rng.sample(COLOURS, 3)))
    start = _listing([f"{p} has a {ball[p]} ball" for p in people])
    events = []
    for _ in range(swaps):
        a, b = rng.sample(people, 2)
        ball[a], ball[b] = ball[b], ball[a]
        events.append(f"{a} and {b} swap balls.")
    who = rng.choice(people)
    q = f"{start}. {' '.join(events)} What colour is {who}'s ball now?"
    return _item(rng, q, ball[who], [c for p, c in ball.items() if p != who])


def _penguins_in_a_table(rows, rng):
    names = rng.sample(PENGUINS, rows)
    cols = [rng.sample(range(1, 20), rows), rng.sample(range(40, 100), rows), rng.sample(range(5, 40), rows)]
    table = "; ".join(f"{n}, {a}, {h}, {w}" for n, a, h, w in zip(names, *cols))
    c = rng.randrange(3)
    ask_max = rng.random() < 0.5
    label = [("oldest", "youngest"), ("tallest", "shortest"), ("heaviest", "lightest")][c][0 if ask_max else 1]
    value = dict(zip(names, cols[c]))
    gold = (max if ask_max else min)(names, key=value.get)
    q = f"Here is a table of penguins (name, age in years, height in cm, weight in kg): {table}. "
    q += f"Which penguin is the {label}?"
    return _item(rng, q, gold, rng.sample([n for n in names if n != gold], 2))


def _adjective_order(k, rng):
    words = [rng.choice(ADJECTIVES[c]) for c in sorted(rng.sample(range(len(ADJECTIVES)), k))]
    shuffled = words[:]
    while shuffled == words:
        rng.shuffle(shuffled)
    noun = rng.choice(THINGS)
    right, wrong = (f"{_a(' '.join(ws))} {noun}" for ws in (words, shuffled))
    first, second = (right, wrong) if rng.random() < 0.5 else (wrong, right)
    return _item(rng, f'Which phrase has the correct adjective order: "{first}" or "{second}"?', right, [wrong])


def _groups(p):
    """Prefix -> words for prefixes of length p under which at least three words differ at letter p."""
    out = {}
    for w in WORDS:
        if len(w) > p:
            out.setdefault(w[:p], []).append(w)
    return [ws for _, ws in sorted(out.items()) if len({w[p] for w in ws}) >= 3]


WORD_GROUPS = {p: _groups(p) for p in (0, 1, 2)}


def _word_sorting(p, rng):
    group = rng.choice(WORD_GROUPS[p])
    letters = rng.sample(sorted({w[p] for w in group}), 3)  # sorted: set order varies between runs
    words = [rng.choice([w for w in group if w[p] == c]) for c in letters]
    gold = min(words)
    q = f"Which word comes first in alphabetical order: {', '.join(words[:-1])} or {words[-1]}?"
    return _item(rng, q, gold, [w for w in words if w != gold])


def _multistep_arithmetic(k, rng):
    value = rng.randint(1, 9)
    text = str(value)
    for i in range(k):
        m, op = rng.randint(1, 9), rng.choice("+-*")
        inner = text if i == 0 else f"({text})"
        if rng.random() < 0.5:  # the new number on either side, so "-" is not always "subtract from the total"
            text, a, b = f"{inner} {op} {m}", value, m
        else:
            text, a, b = f"{m} {op} {inner}", m, value
        value = a + b if op == "+" else a - b if op == "-" else a * b
    wrong = rng.sample([value + d for d in (-10, -2, -1, 1, 2, 10)], 3)
    return _item(rng, f"What is {text}?", str(value), [str(w) for w in wrong])


def _web_of_lies(k, rng):
    people = rng.sample(NAMES, k)
    truth = rng.random() < 0.5
    facts = [f"{people[0]} {'tells the truth' if truth else 'lies'}."]
    target = rng.random() < 0.5  # steers only the last claim, which keeps Yes/No balanced
    for i in range(1, k):
        claim = (truth == target) if i == k - 1 else rng.random() < 0.5
        facts.append(f"{people[i]} says {people[i - 1]} {'tells the truth' if claim else 'lies'}.")
        truth = claim == truth
    q = f"{' '.join(facts)} Does {people[-1]} tell the truth?"
    return _item(rng, q, "Yes" if truth else "No", ["No" if truth else "Yes"])


FAMILIES = {f.name: f for f in [
    Family("boolean_expressions", "operands per expression", (3, 5, 7), _boolean_expressions),  # 2: 64 items
    Family("comparison", "digits per number", (1, 2, 3), _comparison, {1: 180}),
    Family("date_arithmetic", "largest day offset", (2, 7, 60), _date_arithmetic),
    Family("navigate", "instructions", (2, 4, 6), _navigate),
    Family("object_counting", "kinds of object listed", (2, 4, 6), _object_counting),
    Family("logical_deduction", "people in the ordering", (3, 4, 5), _logical_deduction),
    Family("tracking_shuffled_objects", "swaps", (1, 3, 5), _tracking_shuffled_objects),
    Family("penguins_in_a_table", "table rows", (3, 5, 7), _penguins_in_a_table),
    Family("adjective_order", "adjectives per phrase", (2, 3, 4), _adjective_order),
    Family("word_sorting", "letters shared by the candidate words", (0, 1, 2), _word_sorting),
    Family("multistep_arithmetic", "operations", (1, 2, 3), _multistep_arithmetic, {1: 243}),
    Family("web_of_lies", "people in the chain", (2, 3, 5), _web_of_lies),
]}


def capacity(family: str, setting) -> int | None:
    """The distinct questions a family holds at a setting: its count where small, None where unbounded."""
    return FAMILIES[family].sizes.get(setting)


def items(family: str, setting, n: int, rng: random.Random, exclude: frozenset | set = frozenset()) -> list[dict]:
    """n items of one family at one setting, distinct by normalised input and none whose normalised input is in
    ``exclude``; each is make()'s dict plus "family" and "setting". Deterministic given rng's state. A setting of
    known ``capacity`` returns what is left where that is fewer than n (the caller splits it: ``leave_reserve``);
    any other shortfall is an error."""
    if family not in FAMILIES:
        raise ArenaError(f"unknown reasoning family {family!r}; choose one of: {', '.join(FAMILIES)}")
    fam = FAMILIES[family]
    if setting not in fam.settings or isinstance(setting, bool):
        raise ArenaError(f"{family} has no setting {setting!r} ({fam.knob}); choose one of: {list(fam.settings)}")
    out, seen = [], set(exclude)
    for _ in range(50 * n + 100):  # bounded: a small setting can run out of distinct items
        if len(out) == n:
            break
        item = fam.make(setting, rng)
        key = norm(item["input"])
        if key not in seen:
            seen.add(key)
            out.append({**item, "family": family, "setting": setting})
    if len(out) < n and capacity(family, setting) is None:
        raise ArenaError(f"{family} at {fam.knob}={setting!r} gave only {len(out)} distinct items of {n} asked; "
                         "ask for fewer or use another setting")
    return out
