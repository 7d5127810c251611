import math

import pytest

from arena.scores import summarise


def _items(bbh_a, bbh_b, ifeval_inst, qa, wp, arith, more_arith):
    return {"arena_bbh_a": bbh_a, "arena_bbh_b": bbh_b, "arena_ifeval:inst": ifeval_inst,
            "arena_ifeval": [sum(x) / len(x) for x in ifeval_inst], "arena_qa": qa, "arena_wordproblems": wp,
            "arena_arithmetic": arith + more_arith}  # one group, drawn in two parts


def test_general_and_target_arithmetic():
    items = _items([1, 1, 0, 0], [1, 0, 0, 0], [[1, 1], [0]], [1, 0], [1, 1, 1, 0], [0, 0], [1, 1])
    out = summarise(items)
    bbh = (0.5 + 0.25) / 2  # unweighted mean of subtask means
    ifeval = 2 / 3  # instruction level: 2 of 3 instructions followed (not the prompt-level 0.5)
    assert out["groups"]["bbh"]["score"] == pytest.approx(100 * bbh)
    assert out["groups"]["ifeval"]["score"] == pytest.approx(100 * ifeval)
    assert out["general"] == pytest.approx(100 * (bbh + ifeval + 0.5) / 3)
    assert out["target"] == pytest.approx(100 * (0.75 + 0.5) / 2)  # word problems, arithmetic


def test_standard_errors_combine_as_independent_groups():
    items = _items([1, 0], [1, 0], [[1], [0]], [1, 0], [1, 0], [1, 0], [1, 0])
    out = summarise(items)
    se = math.sqrt(0.5 / 2)  # sample variance of [1, 0] is 0.5; se = sqrt(var / n)
    assert out["groups"]["qa"]["se"] == pytest.approx(100 * se)
    bbh_se = math.sqrt(2 * se**2) / 2
    assert out["general_se"] == pytest.approx(100 * math.sqrt(bbh_se**2 + se**2 + se**2) / 3)


def test_log_likelihood_tasks_scored_in_a_second_process_give_the_same_items(monkeypatch):
    """evaluate(reload=...) with a spare core: the log-likelihood tasks run in a spawned process (score_aside)."""
    import functools

    from arena import evaluate as ev
    from arena.models import load_base
    from arena.pipeline import ensure_assets
    from arena.profiles import get_profile

    if not ev.spare_core():
        pytest.skip("one CPU core: nothing is scored aside")
    profile = get_profile("smoke", score_aside=True)
    ensure_assets(profile)
    model, tokenizer = load_base(profile.model)
    here = ev.evaluate(model, tokenizer, profile)
    real, calls = ev.score_aside, []

    def spy(reload, tasks, *args, **kwargs):
        calls.append(tasks)
        return real(reload, tasks, *args, **kwargs)

    monkeypatch.setattr(ev, "score_aside", spy)
    aside = ev.evaluate(model, tokenizer, profile, reload=functools.partial(load_base, profile.model, None))
    assert calls and "arena_qa" in calls[0]  # the log-likelihood tasks went to the second process
    assert aside["items"] == here["items"]
    monkeypatch.setenv("ARENA_WORKER", "1")  # inside a benchmark worker both cores are taken
    assert not ev.spare_core()


def test_a_side_process_that_dies_is_an_error_naming_the_fix_not_a_hang(tmp_path):
    """score_aside's process killed mid-way (here: its model loader exits it) raises at once instead of waiting for a
    result that never comes (multiprocessing.Pool replaced the dead worker and waited forever)."""
    import functools
    import os

    from arena.errors import ArenaError
    from arena.evaluate import score_aside

    with pytest.raises(ArenaError, match="score_aside=False"):
        with score_aside(functools.partial(os._exit, 3), ["arena_qa"], tmp_path, False, 8) as result:
            result()


def test_a_trained_model_scored_aside_gives_the_same_items(monkeypatch):
    """evaluate_step hands evaluate a loader of the trained checkpoint (runs.trained_loader): with a spare core its
    log-likelihood tasks run in a fresh process on the same merged model, and the items equal one process's."""
    from arena import evaluate as ev
    from arena.profiles import get_profile
    from arena.runs import evaluate_step, load_trained, sized_method, train_method, train_spec

    if not ev.spare_core():
        pytest.skip("one CPU core: nothing is scored aside")
    profile = get_profile("smoke", steps=3, save_every=3, score_aside=True)
    spec = train_spec(profile, sized_method(profile, "lora"))
    train_method(profile, spec)
    model, tokenizer = load_trained(profile, spec, scoring=True)
    here = ev.evaluate(model, tokenizer, profile)  # no loader: one process
    real, calls = ev.score_aside, []

    def spy(reload, tasks, *args, **kwargs):
        calls.append(tasks)
        return real(reload, tasks, *args, **kwargs)

    monkeypatch.setattr(ev, "score_aside", spy)
    aside = evaluate_step(profile, spec, force=True)
    assert calls and "arena_qa" in calls[0]
    assert aside["items"] == here["items"]
    assert aside["scored_aside"] and not here["scored_aside"]  # what chapters 01 and 08 show beside the seconds


def test_a_method_defined_in_a_cell_gets_no_loader_for_a_fresh_process(monkeypatch):
    from types import SimpleNamespace

    from arena import runs
    from arena.methods import Method
    from arena.profiles import get_profile

    def wrap(model, r):
        return model

    wrap.__module__ = "__main__"  # as if defined in a notebook cell: a fresh process cannot import it
    cell = Method("in-a-cell", "test", "additive", lr=1e-3, wrap=wrap, size_name="r", sizes=(2,))
    monkeypatch.setattr(runs, "get_method", lambda name: cell)
    assert runs.trained_loader(get_profile("smoke"), SimpleNamespace(method="in-a-cell"), 4) is None
