"""``python -m arena plan``: its memory arithmetic against a hand computation, and the profiles it must judge."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from arena import plan
from arena.models import base_config
from arena.profiles import get_profile

ROOT = Path(__file__).resolve().parents[1]


def test_lora_memory_on_llama_3b_in_nf4_matches_a_hand_computation():
    profile = get_profile("onegpu")
    c = base_config(profile.models[1])  # Llama-3.2-3B-Instruct: public config, tied embeddings
    h, i, L, V = c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.vocab_size
    d = h // c.num_attention_heads
    kv = c.num_key_value_heads * d
    linear = L * (2 * h * h + 2 * h * kv + 3 * h * i)  # q, o; k, v; gate, up, down
    embed = V * h  # tied: the LM head is the embedding
    norms = L * 2 * h + h
    lora = L * (8 * (h + h) * 2 + 8 * (h + kv) * 2 + 8 * (h + i) * 3)  # r = 8: r (in + out) per matrix
    tokens = profile.batch_size * profile.max_length
    expected = {
        "weights": linear * 4.127 / 8 + (embed + norms) * 2,
        "trainable state": lora * 16,  # fp32 weight, gradient and two AdamW moments
        "activations (checkpointing)": L * h * 2 * tokens + (8 * h + 2 * kv + 4 * i) * 2 * tokens,
        "logits": tokens * V * 8,
    }
    got = plan.memory(profile, "lora", model_index=1)
    assert got["trainable"] == lora and got["base precision"] == "nf4" and got["checkpointing"]
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-9), name
    assert got["total"] == pytest.approx(sum(expected.values()) + plan.GIB, rel=1e-9)


def test_the_one_gpu_profile_fits_24_gib_and_finishes_overnight_by_its_estimate():
    result = plan.plan(get_profile("onegpu"), gpu_memory_gib=24)
    assert [b["base"] for b in result["bases"]] == ["Qwen2.5-7B", "Llama-3.2-3B-Instruct"]
    for base in result["bases"]:
        assert base["runnable"] == list(get_profile("onegpu").methods) and not base["skipped"]
    assert result["hours (estimate)"] <= 12
    text = plan.format_plan(result)
    assert "ESTIMATES" in text and "| lora | nf4 |" in text and "Total:" in text


def test_full_finetuning_of_the_7b_is_skipped_with_the_reason():
    profile = dataclasses.replace(get_profile("onegpu"), methods=("full", "lora"))
    qwen = plan.plan(profile, gpu_memory_gib=24)["bases"][0]
    assert qwen["runnable"] == ["lora"] and "needs about" in qwen["skipped"]["full"]


def test_the_paper_profile_does_not_fit_one_24_gib_gpu_and_the_cli_says_the_fix():
    proc = subprocess.run([sys.executable, "-m", "arena", "plan", "--profile", "paper", "--gpu-memory", "24",
                           "--methods", "lora"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "| lora | nf4 |" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1].startswith("error: no method of profile 'paper' fits 24 GiB")
    assert "--max-length" in proc.stderr and "Traceback" not in proc.stderr


def test_the_scoring_work_is_counted_by_hand():
    """onegpu: a test pass holds each task's test slice (BBH 10 x 27, IFEval 300, NQ 300, MATH500 40, AIME24 30 - 3
    held out); passes are the base, 6 methods and the 2 rewound methods' chosen points on test, and on validation
    LoRA's 4 points (step 30, dense 0.3 / 0.6, final), OFT's 9 (+ generator 0.3 / 0.6 and 3 layer-wise rules) and
    the base."""
    profile = plan._on_gpu(get_profile("onegpu"), get_profile("onegpu").model)
    assert {r["task"]: r["prompts"] for r in plan.scoring_pass(profile)} == {
        "bbh_cot_fewshot": 270, "ifeval": 300, "nq_open": 300, "minerva_math500": 40, "aime24": 27}
    assert {r["task"]: r["prompts"] for r in plan.scoring_pass(profile, "validation")} == {
        "bbh_cot_fewshot": 27, "ifeval": 30, "nq_open": 30, "minerva_math500": 8, "aime24": 3}
    assert plan.scoring_passes(profile, profile.methods) == {"test": 9, "validation": 14}
    assert plan.scoring_passes(profile, profile.methods, rewinding=False) == {"test": 7, "validation": 0}


def test_the_second_base_is_benchmarked_without_analyses_or_rewinding():
    """benchmark.run_other_bases runs no rewinding and no analyses on Llama, so its plan counts neither."""
    second = plan.plan(get_profile("onegpu"))["bases"][1]
    assert second["base"] == "Llama-3.2-3B-Instruct"
    assert second["scoring passes"] == {"test": 7, "validation": 0} and second["base SVD cache disk"] == 0
