"""Nothing reaches for the network at run time: a smoke model is scored with every outbound connection refused."""

import json
import os
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
SEED = 91  # a suite of its own, deleted and rebuilt under the guard on every run

# Runs first in a fresh interpreter, so every later import (lm-eval's IFEval module and its punkt_tab check) is under
# it. NLTK catches a failed download and only prints it, so the guard records every attempt instead of relying on raising.
GUARD = """
import json, socket, sys
attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args[:2]))
    raise OSError("outbound connection refused by the test's socket guard")
socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse
"""
SCORE_UNDER_GUARD = GUARD + """
from arena.evaluate import evaluate
from arena.models import load_base
from arena.profiles import get_profile
from arena.suite import build_suite, build_validation

profile = get_profile("smoke", seed=SEED)
build_suite(profile)  # writing the suite imports IFEval's instruction registry, as chapter 00 does
build_validation(profile)  # and so does the validation split, in chapter 01's benchmark
model, tokenizer = load_base(profile.model)
result = evaluate(model, tokenizer, profile)
print(json.dumps({"attempts": attempts, "groups": sorted(result["groups"])}))
"""


def test_scoring_makes_no_network_attempt(tmp_path):
    from arena.assets import cache_dir
    from arena.pipeline import ensure_assets
    from arena.profiles import get_profile

    import shutil

    from arena.suite import suite_dir

    profile = get_profile("smoke", seed=SEED)
    ensure_assets(get_profile("smoke"))  # package downloads happen here, before the guard (they are allowed)
    shutil.rmtree(suite_dir(profile), ignore_errors=True)  # so the guarded run writes this suite itself
    # A private HOME and no NLTK_DATA: NLTK data a user already has must not hide a download.
    env = {k: v for k, v in os.environ.items() if k != "NLTK_DATA"} | {"HOME": str(tmp_path)}
    env["PEFT_ARENA_CACHE"] = str(cache_dir())
    proc = subprocess.run([sys.executable, "-c", f"SEED = {SEED}\n" + SCORE_UNDER_GUARD], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["attempts"] == [], f"network attempts while scoring: {out['attempts']}"
    assert "[nltk_data]" not in proc.stdout + proc.stderr
    assert {"bbh", "ifeval", "qa"} <= set(out["groups"])


def test_shipped_punkt_splits_as_the_untrained_tokenizer():
    from nltk.tokenize.punkt import PunktSentenceTokenizer, PunktTokenizer

    from arena.offline_nltk import use_shipped_nltk_data

    use_shipped_nltk_data()
    text = "Dr. Smith went home. He said hi! Is it e.g. fine? Yes. The U.S. team won 3.5 to 2."
    assert PunktTokenizer("english").tokenize(text) == PunktSentenceTokenizer().tokenize(text)


# Every profile's suite, test and validation, in an empty cache with every outbound connection refused: the suite's
# data are the kit's generators and the installed fact packages. The embedded screen's scoring needs the model (the
# one download the kit makes, in `python -m arena assets`), so its outcome is stood in by "keep every candidate".
BUILD_UNDER_GUARD = GUARD + """
from arena import suite
from arena.profiles import PROFILES, get_profile

built = {}
for name in PROFILES:
    for dry in ([False, True] if name in ("onegpu", "paper") else [False]):
        profile = get_profile(name, dry_run=dry)
        for part in (["general", profile.domain] if profile.screened else []):
            folder = suite.write_screen(profile, part)
            kept = suite.kept_candidates(get_profile("smoke"), part)
            (folder / "result.json").write_text(json.dumps({"kept": kept, "rows": [], "whole": []}))
        test, validation = suite.build_suite(profile), suite.build_validation(profile)
        built[name + ("-dry" if dry else "")] = sorted(p.name for p in test.rglob("*.jsonl") if p.parent == test)
print(json.dumps({"attempts": attempts, "built": built}))
"""


def test_every_profiles_suite_builds_in_an_empty_cache_with_no_network(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NLTK_DATA"} | {"HOME": str(tmp_path),
                                                                       "PEFT_ARENA_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", BUILD_UNDER_GUARD], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["attempts"] == [], f"network attempts while building suites: {out['attempts']}"
    assert not (tmp_path / "cache" / "downloads").exists()  # nothing fetched, not even the model wheel
    full = ["arithmetic.jsonl", "general_text.jsonl", "ifeval.jsonl", "qa.jsonl", "qa_gen.jsonl",
            "wordproblems_gold.jsonl", "wordproblems_test.jsonl", "wordproblems_train.jsonl"]
    assert out["built"]["smoke"] == out["built"]["embedded"] == full
    assert out["built"]["onegpu"] == out["built"]["paper-dry"] == ["general_text.jsonl"]  # stock tasks + CE text
