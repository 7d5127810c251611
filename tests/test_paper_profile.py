"""The paper profile, checked offline: its bases' configs resolve without the hub and reproduce the paper's
parameter counts (A8), and the stock lm-eval tasks it scores with exist in the installed lm-eval."""

import pytest

from arena.methods import count_trainable
from arena.models import base_config
from arena.profiles import LLAMA32_3B, QWEN25_7B, get_profile

# paper_spec.md A8 (closed forms; the poster's typos excluded)
PAPER_COUNTS = {("qwen", "lora", 8): 20_185_088, ("qwen", "lora", 32): 80_740_352, ("qwen", "oft", 32): 17_554_432,
                ("qwen", "dora", 8): 21_575_680, ("llama", "lora", 8): 12_156_928, ("llama", "oft", 32): 11_554_816,
                ("qwen", "vera", 256): 1_440_768, ("qwen", "miss", 8): 11_124_736}


@pytest.mark.parametrize("key", sorted(PAPER_COUNTS))
def test_paper_budgets_offline(key):
    model, method, size = key
    config = base_config(QWEN25_7B if model == "qwen" else LLAMA32_3B)
    assert count_trainable(method, config, size) == PAPER_COUNTS[key]


def test_paper_profile_resolves():
    profile = get_profile("paper")
    assert profile.models == (QWEN25_7B, LLAMA32_3B)
    assert profile.batch_size * profile.grad_accum == 256  # the paper's global batch (A6) by accumulation
    assert profile.max_length == 8192 and profile.steps == 780 and profile.save_every == 91
    assert profile.uses_stock_tasks and not get_profile("embedded").uses_stock_tasks


def test_stock_tasks_resolve_in_the_installed_lm_eval():
    from lm_eval.tasks import TaskManager

    from arena.scores import STOCK_GENERAL, STOCK_TARGET

    known = set(TaskManager().all_tasks)
    for task, _ in [*STOCK_GENERAL.values(), *STOCK_TARGET.values()]:
        assert task in known, task


def test_stock_items_summarise_with_the_paper_formulas():
    from arena.scores import stock_task_lists, summarise

    items = {"bbh_cot_fewshot_snarks": [1.0, 0.0], "bbh_cot_fewshot_navigate": [1.0, 1.0],
             "ifeval": [0.5, 1.0], "ifeval:inst": [[1.0, 0.0], [1.0]], "nq_open": [0.0, 1.0, 1.0, 0.0],
             "minerva_math500": [1.0, 0.0, 0.0, 0.0], "aime24": [0.0, 0.0]}
    out = summarise(items)
    assert out["groups"]["bbh"]["score"] == 75.0 and abs(out["groups"]["ifeval"]["score"] - 200 / 3) < 1e-9
    assert abs(out["general"] - (75 + 200 / 3 + 50) / 3) < 1e-9 and out["target"] == 12.5
    chat, plain = stock_task_lists(instruct=False)
    assert plain == ["bbh_cot_fewshot"] and "ifeval" in chat and "nq_open" in chat
    assert stock_task_lists(instruct=True)[1] == []


def test_paper_training_data_schema_on_a_local_fixture(tmp_path):
    """A parquet file in the release's schema (extra_info.question / extra_info.answer) loads and encodes; a file
    in another schema stops with the field names."""
    import pandas as pd

    from arena.errors import ArenaError
    from arena.models import smoke_tokenizer
    from arena.paper_data import load_training_rows
    from arena.train import encode_dataset

    good = tmp_path / "train.parquet"
    pd.DataFrame({"data_source": ["openr1"] * 3, "extra_info": [
        {"question": f"What is {i} + {i}?", "answer": f"{i} + {i} = {2 * i}. \\\\boxed{{{2 * i}}}", "index": i}
        for i in range(3)]}).to_parquet(good)
    rows = load_training_rows("math", str(good), limit=2)
    assert rows == [{"question": "What is 0 + 0?", "answer": "0 + 0 = 0. \\\\boxed{0}"},
                    {"question": "What is 1 + 1?", "answer": "1 + 1 = 2. \\\\boxed{2}"}]
    assert len(encode_dataset(smoke_tokenizer(), rows, 192)) == 2
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"prompt": ["q"], "response": ["a"]}).to_parquet(bad)
    with pytest.raises(ArenaError, match="extra_info.question"):
        load_training_rows("math", str(bad))
    with pytest.raises(ArenaError, match="does not exist"):
        load_training_rows("math", str(tmp_path / "missing.parquet"))


def test_the_paper_profile_trains_at_the_papers_learning_rates_and_keys_its_data():
    from arena.keys import train_key
    from arena.runs import sized_method, train_spec

    paper = get_profile("paper")
    lora = train_spec(paper, sized_method(paper, "lora"))
    full = train_spec(paper, sized_method(paper, "full"))
    assert (lora.lr, full.lr) == (2e-4, 5e-5)  # A6: one rate for every adapter, another for full finetuning
    math_key = train_key(paper, lora)
    medical = get_profile("paper", domain="medical")
    assert math_key["domain"] == "math"
    assert train_key(medical, train_spec(medical, sized_method(medical, "lora"))) != math_key
    local = get_profile("paper", extra={"train_file": "/data/mine.parquet"})
    assert train_key(local, train_spec(local, sized_method(local, "lora")))["train_file"] == "/data/mine.parquet"
    smoke = get_profile("smoke")
    assert "domain" not in train_key(smoke, train_spec(smoke, sized_method(smoke, "lora")))  # stored keys stay


def test_chapter_00_tables_read_a_stock_task_result():
    from arena import card
    from arena.scores import summarise

    items = {"bbh_cot_fewshot_boolean_expressions": [1.0, 0.0], "ifeval:inst": [[1.0, 0.0], [1.0]],
             "ifeval": [0.5, 1.0], "nq_open": [1.0, 0.0, 0.0], "minerva_math500": [1.0, 0.0], "aime24": [0.0, 0.0]}
    result = {"items": items, **summarise(items)}
    tasks = card.task_table(result, None).set_index("candidate")
    assert tasks.loc["nq_open", "group"] == "qa" and tasks.loc["minerva_math500", "group"] == "math500"
    assert tasks.loc["bbh_cot_fewshot_boolean_expressions", "accuracy"] == 50.0
    groups = card.group_table(result).set_index("group")
    assert groups.loc["qa", "role"] == "general" and groups.loc["aime24", "role"] == "target"


def test_the_paper_profiles_suite_holds_only_the_proxy_text():
    from arena.pipeline import ensure_assets
    from arena.suite import build_suite, read_jsonl

    ensure_assets(get_profile("smoke"))  # what the smoke profile needs before the guard
    folder = build_suite(get_profile("paper", n_ce_docs=3))
    assert sorted(p.name for p in folder.iterdir()) == ["DONE", "general_text.jsonl"]
    assert len(read_jsonl(folder / "general_text.jsonl")) == 3


def test_stock_tasks_are_scored_one_by_one_at_the_papers_generation_lengths(monkeypatch):
    from arena import evaluate
    from arena.scores import STOCK_GEN_TOKENS

    calls = []

    def fake_run(lm, tokenizer, tasks, data_dir, chat, gen_kwargs=None, samples=None):
        calls.append((tasks, gen_kwargs, samples))
        names = [t + "_boolean_expressions" if t.startswith("bbh") else t for t in tasks]  # BBH scores per subtask
        return {t: [1.0, 0.0] for t in names} | ({"ifeval:inst": [[1.0], [0.0]]} if "ifeval" in tasks else {})

    monkeypatch.setattr(evaluate, "run_tasks", fake_run)
    evaluate._evaluate(None, None, get_profile("paper"), "test")
    assert {tuple(t): g["max_gen_toks"] for t, g, _ in calls} == {(t,): n for t, n in STOCK_GEN_TOKENS.items()}
    assert STOCK_GEN_TOKENS["minerva_math500"] == STOCK_GEN_TOKENS["aime24"] == 8192  # A3
    paper = get_profile("paper")
    for (task,), _, samples in calls:  # test: every item the validation slice does not hold
        held = paper.stock_validation.get(task, 0)
        assert all(len(ids) == n - held for ids, n in zip(samples.values(), _sizes(task)))
    calls.clear()
    onegpu = get_profile("onegpu")
    evaluate._evaluate(None, None, onegpu, "validation")
    assert {t[0]: len(next(iter(s.values()))) for t, _, s in calls} == onegpu.stock_validation


def _sizes(task):
    from arena.scores import BBH_SUBTASK_ITEMS, STOCK_ITEMS

    return list(BBH_SUBTASK_ITEMS.values()) if task.startswith("bbh") else [STOCK_ITEMS[task][0]]


def test_stock_slices_are_seeded_disjoint_and_sized():
    from arena.scores import stock_slices

    bbh = stock_slices("bbh_cot_fewshot", seed=1, validation=2, limit=10)
    assert len(bbh) == 27 and sum(250 >= max(s["test"]) for s in bbh.values()) == 27
    for s in bbh.values():
        assert len(s["validation"]) == 2 and len(s["test"]) == 10 and not set(s["validation"]) & set(s["test"])
    assert bbh == stock_slices("bbh_cot_fewshot", seed=1, validation=2, limit=10)
    assert bbh != stock_slices("bbh_cot_fewshot", seed=2, validation=2, limit=10)
    whole = stock_slices("aime24", seed=1, validation=3)["aime24"]
    assert len(whole["test"]) == 27 and sorted(whole["test"] + whole["validation"]) == list(range(30))
    # a larger validation slice keeps the same first items: the test slice of a profile never overlaps it
    assert set(stock_slices("ifeval", 1, 10)["ifeval"]["validation"]) >= set(
        stock_slices("ifeval", 1, 5)["ifeval"]["validation"])


def test_a_stock_subsample_has_its_own_evaluation_keys():
    from arena import keys

    onegpu, paper = get_profile("onegpu"), get_profile("paper")
    assert keys.eval_key(onegpu, "m", {})["stock_limits"] == dict(sorted(onegpu.stock_limits.items()))
    assert keys.eval_key(paper, "m", {})["stock_validation"] == dict(sorted(paper.stock_validation.items()))
    assert "stock_limits" not in keys.eval_key(get_profile("embedded"), "m", {})  # the embedded keys are as before


def test_the_stock_path_runs_on_local_fixtures_in_each_tasks_schema():
    """Every stock task reads its fixture (lm-eval's own configs, dataset pointed at a local file in the hub
    dataset's schema) and is scored on both splits: the path a hub profile takes, with no hub."""
    from arena.evaluate import evaluate
    from arena.models import smoke_model, smoke_tokenizer
    from arena.stock_fixtures import DRY_RUN_BBH

    profile = get_profile("onegpu", dry_run=True)
    for split in ("test", "validation"):
        out = evaluate(smoke_model(), smoke_tokenizer(), profile, split=split)
        tasks = set(out["items"])
        assert {"ifeval", "ifeval:inst", "nq_open", "minerva_math500", "aime24"} <= tasks
        assert len([t for t in tasks if t.startswith("bbh_cot_fewshot_")]) == DRY_RUN_BBH
        assert all(len(v) == 1 for v in out["items"].values())  # one item per (sub)task and split
        assert set(out["groups"]) == {"bbh", "ifeval", "qa", "math500", "aime24"} and out["split"] == split


def test_the_fixture_configs_load_without_the_network(tmp_path):
    """Resolving the stock tasks' configs imports lm-eval's IFEval module: in a fresh interpreter under the network
    guard, with an empty NLTK path, nothing may reach for punkt_tab."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    log = tmp_path / "attempts.log"
    log.write_text("")
    env = {**os.environ, "PYTHONPATH": str(root / "tests" / "netguard"), "ARENA_NETGUARD_LOG": str(log),
           "NLTK_DATA": str(tmp_path / "no-nltk"), "HOME": str(tmp_path)}
    code = "from arena import stock_fixtures; print(len(stock_fixtures.task_specs('ifeval')))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert log.read_text() == "" and "[nltk_data]" not in proc.stdout + proc.stderr


def test_a_dry_run_swaps_each_hub_base_for_its_architecture_and_says_so_in_its_command():
    from arena.errors import ArenaError
    from arena.models import architecture_config, base_config, model_identity
    from arena.profiles import command, dry_run_of

    dry = get_profile("paper", dry_run=True)
    assert [m.source for m in dry.models] == ["architecture", "architecture"] and dry.methods == ("lora", "oft")
    assert dry.models[0].repo_id == QWEN25_7B.repo_id and dry.models[1].instruct is True
    config, public = base_config(dry.models[0]), architecture_config(QWEN25_7B.repo_id)
    assert config.num_hidden_layers == 2 and config.hidden_size == public.hidden_size
    assert config.intermediate_size == public.intermediate_size and config.vocab_size == public.vocab_size
    assert model_identity(dry.models[0]) != model_identity(QWEN25_7B)  # its results never mix with a real run's
    assert command("benchmark", dry) == "python -m arena benchmark --profile paper --dry-run"
    # the GPU path's combination, run on bitsandbytes' CPU kernels: nf4, k-bit preparation, recomputation
    assert dry.quantization == "nf4" and dry.gradient_checkpointing == "on"
    with pytest.raises(ArenaError, match="needs no dry run"):
        dry_run_of(get_profile("embedded"))


def test_a_dry_runs_sft_fixture_and_sample_prompts_follow_the_releases_schema():
    from arena import card
    from arena.paper_data import load_training_rows
    from arena.stock_fixtures import sft_file

    rows = load_training_rows("math", str(sft_file()))
    assert len(rows) == 64 and rows[0]["answer"].split("#### ")[-1].isdigit()
    (question, answer), (instruction, none) = card.sample_prompts(get_profile("onegpu", dry_run=True))
    assert question == rows[0]["question"] and answer.endswith(rows[0]["answer"][-20:]) and none is None
    assert instruction and instruction != question


def test_an_architecture_base_loads_the_checkpoint_it_was_written_as(tmp_path, monkeypatch):
    """A dry run's base: random weights of the named architecture, written once and loaded back from that folder,
    so what the analyses read as W0 is the model that was scored."""
    import torch
    from safetensors.torch import load_file

    from arena.models import base_config, load_base, model_identity, random_base_folder
    from arena.profiles import ModelSpec

    monkeypatch.setenv("PEFT_ARENA_CACHE", str(tmp_path))
    spec = ModelSpec("smoke (random, 1 layer)", "architecture", "smoke", layers=1)
    model, tokenizer = load_base(spec)
    assert model.config.num_hidden_layers == base_config(spec).num_hidden_layers == 1
    written = load_file(str(random_base_folder("smoke", 1) / "model.safetensors"))
    name = "model.layers.0.mlp.down_proj.weight"
    assert torch.equal(model.state_dict()[name], written[name].float())
    assert model_identity(spec) == "random:smoke@layers1-seed0" and tokenizer is not None


def test_the_activation_prompts_of_a_hub_profile_are_its_stock_tasks_items():
    """activation_analysis.prompt_sets on a stock profile (here a dry run's fixtures): General interleaves BBH,
    IFEval and NQ test items, Target MATH500 and AIME24, each as lm-eval's zero-shot doc_to_text."""
    from arena.activation_analysis import prompt_sets

    prompts = prompt_sets(get_profile("onegpu", dry_run=True))
    general, target = prompts["general"], prompts["target"]
    assert general[0].startswith("Q: Is ") and any("without any commas" in p for p in general)
    assert any(p.startswith("Q: what is") for p in general)
    assert target[0].startswith("Problem:") and any(p.startswith("Question: Find") for p in target)


def test_the_dry_runs_of_both_hub_profiles_are_one_computation():
    """After dry_run_of, onegpu and paper differ only in name and description: every key matches, so `make
    test-dryrun` computes once and the second profile's book reads the first's runs."""
    from arena import keys, store
    from arena.profiles import on_base
    from arena.rewind import variants
    from arena.runs import sized_method, train_spec

    def every_key(name):
        profile = get_profile(name, dry_run=True)
        out = []
        for index in range(len(profile.models)):
            one = on_base(profile, index)
            out += [keys.base_eval_key(one), keys.base_eval_key(one, "validation")]
            for method in one.methods:
                spec = train_spec(one, sized_method(one, method))
                out += [keys.train_key(one, spec), keys.step_eval_key(one, spec, spec.steps),
                        keys.spectra_key(one, spec, spec.steps)]
                out += [keys.point_key(one, spec, point, "validation") for point in variants(one, spec)]
        return [store.key_hash(k) for k in out]

    assert every_key("onegpu") == every_key("paper")
