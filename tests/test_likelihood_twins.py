"""The likelihood twins (book/definitions.md S): gold-answer bits per byte per item, their composites and paired
changes, and acc_norm, checked by hand and against lm-eval on the smoke model."""

import json
import math

import pytest

from arena.evaluate import gold_bits_per_byte
from arena.scores import paired_difference, summarise


def _items(bbh_bpb=([1.0, 3.0], [2.0]), qa_bpb=(2.0, 4.0), wp_bpb=(1.0, 1.0), arith_bpb=(3.0, 5.0)):
    return {"arena_bbh_a": [1, 0], "arena_bbh_b": [1], "arena_ifeval:inst": [[1, 0], [1]], "arena_ifeval": [0.5, 1.0],
            "arena_qa": [0, 0], "arena_wordproblems": [1, 0], "arena_arithmetic": [0, 1],
            "arena_bbh_a:bpb": list(bbh_bpb[0]), "arena_bbh_b:bpb": list(bbh_bpb[1]), "arena_qa:bpb": list(qa_bpb),
            "arena_wordproblems:bpb": list(wp_bpb), "arena_arithmetic:bpb": list(arith_bpb)}


def test_gold_bits_per_byte_of_a_multiple_choice_and_a_loglikelihood_sample():
    mc = {"target": 1, "arguments": [("Q\nAnswer:", " 12"), ("Q\nAnswer:", " 7")],
          "filtered_resps": [(-1.0, False), (-2 * math.log(2), True)]}
    assert gold_bits_per_byte(mc) == pytest.approx(2 / 2)  # 2 bits over the 2 bytes of " 7"
    ll = {"target": " Paris", "arguments": [("Capital of France:", " Paris")],
          "filtered_resps": [(-6 * math.log(2), True)]}
    assert gold_bits_per_byte(ll) == pytest.approx(1.0)


def test_twin_composites_by_hand():
    out = summarise(_items())["ll"]
    bbh = (2.0 + 2.0) / 2  # mean of subtask means: (1 + 3) / 2 and 2
    assert out["groups"]["bbh"]["bpb"] == pytest.approx(bbh)
    assert out["general"] == pytest.approx((bbh + 3.0) / 2)  # BBH and QA: IFEval has no gold answer
    assert out["target"] == pytest.approx((1.0 + (3.0 + 5.0) / 2) / 2)  # word problems and arithmetic
    assert "ifeval" not in out["groups"]
    # the accuracy composite ignores the twins' keys (BBH's subtasks are arena_bbh_a and arena_bbh_b only)
    assert summarise(_items())["groups"]["bbh"]["score"] == pytest.approx(100 * (0.5 + 1.0) / 2)


def test_paired_twin_changes_and_results_without_twins():
    base, tuned = _items(), _items(qa_bpb=(2.5, 4.5), wp_bpb=(0.5, 0.5))
    diff = paired_difference(tuned, base)["ll"]
    assert diff["general"] == pytest.approx(0.5 / 2)  # QA's gold answers got 0.5 bits per byte less likely
    assert diff["general_se"] == pytest.approx(0.0)  # the same shift on every item
    assert diff["target"] == pytest.approx(-0.5 / 2)
    old = {k: v for k, v in base.items() if not k.endswith(":bpb")}  # scored before twins existed
    assert "ll" not in summarise(old) and "ll" not in paired_difference(tuned, old)


def test_the_likelihood_table_and_signal_to_noise():
    from arena import report

    def ev(items):
        return {"items": items, **summarise(items)}

    base = ev(_items())
    records = [{"label": m, "method": m, "eval": ev(_items(qa_bpb=(2 + d, 4 + d)))} for m, d in
               (("a", 0.5), ("b", 1.0), ("c", 0.0))]
    table = report.likelihood_table(records, base)
    assert list(table.index) == ["base", "a", "b", "c"]
    # b's QA answers lost 1 bit per byte on both items: General-LL (BBH, QA) rises by 0.5, with no spread at all
    assert table.loc["b", "Forgetting-LL"] == pytest.approx(0.5) and table.loc["b", "forgetting-LL is"] == "measurable"
    assert report.likelihood_table(records, {k: v for k, v in base.items() if k != "ll"}) is None


def test_signal_to_noise_by_hand():
    import pandas as pd

    from arena import report

    frame = pd.DataFrame({"Forgetting": [1.0, 2.0, 3.0], "Forgetting se": [0.5, 0.5, 0.5],
                          "Target gain": [1.0, 1.0, 1.0], "Target gain se": [0.3, 0.4, 0.0]},
                         index=pd.Index(["a", "b", "c"], name="method"))
    snr = report.signal_to_noise(frame)
    assert snr.loc["Forgetting", "SNR"] == pytest.approx(1.0 / 0.5)  # sd 1 over rms se 0.5
    assert snr.loc["Target gain", "SNR"] == pytest.approx(0.0)
    assert report.signal_to_noise(frame.iloc[:1]).empty  # one method has no spread to measure


@pytest.fixture(scope="module")
def mc_suite(tmp_path_factory):
    """A tiny suite folder: multiple choice whose options differ in length (where acc and acc_norm part), once with no
    rule recorded and once with each item's rule."""
    folder = tmp_path_factory.mktemp("suite")
    rows = [{"input": f"What is {a} plus {b}?", "choices": [str(a + b), f"{a + b + 1}0", "no idea at all", "7"],
             "gold": 0} for a, b in ((2, 3), (10, 4), (7, 7), (1, 30), (25, 25))]
    (folder / "arithmetic.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ruled = [{**r, "rule": "acc" if i % 2 else "acc_norm"} for i, r in enumerate(rows)]
    (folder / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ruled))
    return folder


def _run(lm, folder, tasks):
    import lm_eval

    from arena.evaluate import _task_manager

    return lm_eval.simple_evaluate(model=lm, tasks=tasks, task_manager=_task_manager(folder), log_samples=True,
                                   bootstrap_iters=0, random_seed=0, numpy_random_seed=0, torch_random_seed=0,
                                   fewshot_random_seed=0)


def test_run_tasks_keeps_each_items_rule_and_twins_equal_to_lm_evals_own(mc_suite):
    """Per item: the kit's multiple-choice score is lm-eval's metric under the rule the item records (acc_norm where it
    records none), its twin is the gold option's log-likelihood per byte from lm-eval's own responses, and the
    context-once scorer gives both as HFLM does."""
    from lm_eval.models.huggingface import HFLM

    from arena.context_once import ContextOnceLM
    from arena.evaluate import run_tasks
    from arena.models import smoke_model, smoke_tokenizer

    # fp32 on both sides: with bf16 compute the two orders of summation differ by bf16's rounding (about 1e-2)
    model, tokenizer = smoke_model().eval(), smoke_tokenizer()
    tasks = ["arena_arithmetic", "arena_qa"]
    reference = _run(HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4), mc_suite, tasks)["samples"]
    items = run_tasks(ContextOnceLM(pretrained=model, tokenizer=tokenizer, batch_size=4), tokenizer, tasks, mc_suite,
                      chat=False)
    plain = sorted(reference["arena_arithmetic"], key=lambda s: s["doc_id"])
    assert items["arena_arithmetic"] == [s["acc_norm"] for s in plain]
    for score, sample in zip(items["arena_arithmetic"], plain):  # acc_norm: the best log-likelihood per character
        choices = sample["doc"]["choices"]
        best = max(range(len(choices)), key=lambda i: sample["filtered_resps"][i][0] / len(choices[i]))
        assert score == float(best == sample["target"])
    ruled = sorted(reference["arena_qa"], key=lambda s: s["doc_id"])
    assert items["arena_qa"] == [s["acc" if i % 2 else "acc_norm"] for i, s in enumerate(ruled)]
    for got, sample in zip(items["arena_arithmetic:bpb"], plain):
        gold = sample["target"]
        expected = -sample["filtered_resps"][gold][0] / (math.log(2) * len(sample["arguments"][gold][1].encode()))
        assert got == pytest.approx(expected, abs=1e-4)


def test_the_certainty_page_reads_the_largest_paired_error_of_each_measure():
    import pandas as pd

    from arena import report, verdicts

    table = pd.DataFrame({"General se": [3.0, 1, 1], "Target se": [2.0, 1, 1], "Forgetting se": [None, 1.5, 2.5],
                          "Target gain se": [None, 2.0, 1.0], "Forgetting": [None, 1.0, 5.0],
                          "Target gain": [None, 3.0, 3.0]}, index=pd.Index(["base", "a", "b"], name="method"))
    certainty = report.certainty_table(table, None, {"general_se": 3.0})
    row = certainty.loc["Forgetting"]
    assert row["paired se (largest)"] == 2.5 and row["paired se (median)"] == 2.0 and not row["meets target"]
    assert row["detectable effect"] == pytest.approx(2.5 * 2.8016, abs=1e-3)
    assert certainty.loc["Target gain", "meets target"] and certainty.loc["validation General", "meets target"]
    lines = verdicts.certainty_sentences(certainty, report.signal_to_noise(table))
    assert lines[0].startswith("Forgetting (accuracy (the paper's)): paired standard errors up to 2.5 points")
    assert "not met" in lines[0] and "signal-to-noise ratio is 1.4" in lines[0]


def test_the_twins_pareto_plane_is_negated_bits_per_byte():
    from arena import report

    def ev(items):
        return {"items": items, **summarise(items)}

    base = ev(_items())
    worse = {"label": "a", "method": "a", "family": "additive", "eval": ev(_items(qa_bpb=(3.0, 5.0)))}
    frame = report.pareto_frame([worse], base, likelihood=True).set_index("method")
    assert frame.loc["base", "General"] == pytest.approx(-summarise(_items())["ll"]["general"])
    assert frame.loc["a", "General"] < frame.loc["base", "General"]  # less likely gold answers sit to the left
    assert frame.loc["base", "frontier"] and not frame.loc["a", "frontier"]
    no_twins = {k: v for k, v in base.items() if k != "ll"}
    assert report.pareto_frame([worse], no_twins, likelihood=True) is None
