"""``python -m arena plan``: its memory terms against bytes measured on the smoke model in nf4, the time model's
terms, the card classes and which methods each runs, and the profiles it must judge."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from arena import plan
from arena.profiles import get_profile

ROOT = Path(__file__).resolve().parents[1]
TOKENS = 1024  # one row of the micro-batch: the per-token terms dominate the plan's fixed ones
TWENTY_FOUR, EIGHTY = plan.GPU_CLASSES[0].gib, plan.GPU_CLASSES[2].gib


def _measured_training(profile, method: str) -> dict:
    """Bytes of the kit's own nf4 training path on ``profile``'s base, measured: the weights after
    ``prepare_for_training``, the trainable state after a step, and (a dispatch-mode tracker around the trainer's
    ``optimizer_step`` under the GPU path's bf16 autocast) the peak above them until the gradient reaches the final
    norm (the loss phase) and over the whole step."""
    from arena import train as trainer
    from arena.distributed import Single
    from arena.methods import build
    from arena.models import load_base
    from arena.runs import prepare_for_training, sized_method, train_spec

    model, _ = load_base(profile.model, "nf4")
    model = prepare_for_training(model, "nf4", True)
    weights = plan.tensor_bytes(model)
    torch.manual_seed(0)
    model = build(method, model, sized_method(profile, method).size, steps=4)
    spec = train_spec(profile, sized_method(profile, method))
    optimizer, scheduler = trainer.make_optimizer(model, spec)
    ids = torch.randint(0, 256, (profile.batch_size, profile.max_length), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
    model.train()

    def step():
        return trainer.optimizer_step(model, model, [batch], optimizer, scheduler, 1, Single())

    step()  # AdamW's moments exist from the first step on
    trainable = [p for p in model.parameters() if p.requires_grad]
    moments = sum(t.nbytes for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t))
    tracker = plan.peak_tracker()

    def mark_when_the_loss_is_through(module, args, out):
        out.register_hook(lambda grad: tracker.mark("loss"))

    hook = model.get_base_model().model.norm.register_forward_hook(mark_when_the_loss_is_through)
    with tracker:
        step()
    hook.remove()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the gradients' bytes: a backward fills them
        model(**batch).loss.backward()
    grads = sum(p.grad.nbytes for p in trainable)
    return {"weights": weights, "trainable state": sum(p.nbytes for p in trainable) + grads + moments,
            "loss phase": tracker.marks["loss"], "step": tracker.peak}


@pytest.mark.nf4
def test_the_plans_training_memory_matches_bytes_measured_on_the_smoke_model_in_nf4(monkeypatch):
    """Each term within 10 % of what the smoke model holds in nf4 after k-bit preparation (fp32 embeddings and norms,
    4-bit linears with their quantisation state), LoRA's state, and the step's transient peaks: the loss phase
    (logits, the head's bf16 copy, checkpointed layer inputs) and the whole step (one layer recomputed)."""
    from arena import train as trainer

    monkeypatch.setattr(trainer, "bf16_compute", lambda where=None: True)  # the GPU path's autocast on any CPU
    profile = get_profile("smoke", quantization="nf4", batch_size=1, max_length=TOKENS, gradient_checkpointing="on")
    est = plan.memory(profile, "lora")
    t = est["training"]
    estimate = {"weights": t["linear weights"] + t["embeddings, head and norms"],
                "trainable state": t["trainable state"],
                "loss phase": t["checkpointed layer inputs"] + t["autocast copy of the head"]
                + t["autocast copies of trained weights"] + t["logits"],
                "step": t["checkpointed layer inputs"] + max(t["autocast copy of the head"]
                                                             + t["autocast copies of trained weights"] + t["logits"],
                                                             t["one layer recomputed"])}
    measured = _measured_training(profile, "lora")
    errors = {k: estimate[k] / measured[k] - 1 for k in estimate}
    table = ", ".join(f"{k}: plan {estimate[k]:,.0f} B, measured {measured[k]:,} B ({errors[k]:+.1%})"
                      for k in estimate)
    assert all(abs(e) <= 0.10 for e in errors.values()), table
    assert est["training total"] == pytest.approx(estimate["weights"] + estimate["trainable state"]
                                                  + estimate["step"] + plan.CUDA_OVERHEAD)


def test_k_bit_preparation_logits_and_the_head_copy_are_priced_at_7b():
    """What a reading of the path finds on Qwen2.5-7B in nf4, 1 x 2048: fp32 embeddings and head (+2 GiB over bf16),
    autocast's bf16 copy of the head (~1 GiB), a logits peak of ~3.5 GiB; LoRA trains in 13-16 GiB and scores in
    less, PiSSA (bf16 base) scores in ~20 GiB."""
    lora = plan.memory(get_profile("onegpu"), "lora")
    t, gib = lora["training"], plan.GIB
    assert 4.0 < t["embeddings, head and norms"] / gib < 4.2  # 1.09 B parameters in fp32
    assert 1.0 < t["autocast copy of the head"] / gib < 1.05
    assert 3.4 < t["logits"] / gib < 3.6
    assert 13 < lora["training total"] / gib < 16 and lora["scoring total"] < lora["training total"]
    pissa = plan.memory(get_profile("onegpu"), "pissa")
    assert pissa["base precision"] == "bf16" and 19 < pissa["scoring total"] / gib < 22


def test_a_generation_batch_costs_its_longest_answer():
    """Eight MATH500 prompts: with 10 % of rows running to the 8,192-token cap, the batch runs ~4,970 steps (the
    chance that one of eight runs away), not the ~1,500 of an average answer."""
    profile = plan._on_gpu(get_profile("onegpu"), get_profile("onegpu").model)
    config = plan.base_config(profile.model)
    row = {"task": "minerva_math500", "prompts": 8, "max new tokens": 8192}
    seconds, steps = plan._task_seconds(plan.gpu_class(TWENTY_FOUR), config, profile, row, "nf4", 0, False, 1e9, 1.0)
    assert 4900 < steps < 5050 and seconds > steps * 0.02  # at least 20 ms a step


def test_the_one_gpu_profile_fits_a_24_gb_card_overnight_and_the_plan_names_every_term():
    result = plan.plan(get_profile("onegpu"), gpu_memory_gib=TWENTY_FOUR)
    assert result["hours (estimate)"] <= 12 and result["gpu class"] == "24 GB"
    assert [b["base"] for b in result["bases"]] == ["Qwen2.5-7B", "Llama-3.2-3B-Instruct"]
    for base in result["bases"]:
        assert base["runnable"] == [m for m in get_profile("onegpu").methods if m != "full"]
        assert "needs about" in base["skipped"]["full"] and "GiB" in base["skipped"]["full"]
    qwen = {t["term"] for t in result["bases"][0]["terms"]}
    assert {"training dora", "scoring base (bf16) on test", "rewinding oft", "weight analysis SVDs (chapter 03)",
            "residual initialisations' SVDs", "chapter 06 (your method)", "model loads", "download"} <= qwen
    text = plan.format_plan(result)
    assert "on a 24 GB card (e.g. RTX 4090" in text and "ESTIMATES" in text and "| lora | nf4 |" in text
    for name, figure in result["figures"].items():
        assert figure["status"] in ("assumed", "measured") and figure["source"], name
        assert f"- {name}: " in text and "ASSUMED" in text


def test_the_plan_runs_full_finetuning_where_it_fits_and_says_where_it_does_not():
    profile = get_profile("onegpu")
    assert "full" in plan.methods_on(profile, 1, EIGHTY)["run"]  # the 3B on an 80 GB card
    why = plan.methods_on(profile, 0, EIGHTY)["skip"]["full"]  # never the 7B on one card
    assert why.startswith("full on Qwen2.5-7B needs about") and "no card" in why
    sentences = plan.fit_sentences(profile, TWENTY_FOUR)
    assert len(sentences) == 2 and "fits an 80 GB card" in sentences[1] and "trainable state" in sentences[1]


def test_a_gpu_check_measurement_replaces_the_assumed_figure_for_its_class_only():
    from arena.store import results_root

    path = results_root() / "benchmarks" / "gpu_check.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"gpu": "NVIDIA H100 80GB HBM3", "gpu GiB": 79.2, "time": "now",
                                "figures": {"train tokens/s": 5100.0, "svd s": 2.5}}))
    try:
        eighty, twenty_four = plan.gpu_class(EIGHTY), plan.gpu_class(TWENTY_FOUR)
    finally:
        path.unlink()
    assert eighty.figures["train tokens/s"].value == 5100 and eighty.figures["train tokens/s"].status == "measured"
    assert "H100" in eighty.figures["svd s"].source
    assert twenty_four.figures["train tokens/s"].status == "assumed"


def test_the_cli_plans_the_three_card_classes_without_a_gpu():
    proc = subprocess.run([sys.executable, "-m", "arena", "plan", "--profile", "onegpu", "--methods", "full,lora"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("24 GB card (e.g. RTX 4090", "48 GB card (e.g. L40S", "80 GB card (e.g. H100"):
        assert f"# plan for profile 'onegpu' on a{'n' if name[0] == '8' else ''} {name}" in proc.stdout
    assert proc.stdout.count("Total on") == 3 and "| full | fp32 |" in proc.stdout


def test_the_paper_profile_does_not_fit_one_24_gib_gpu_and_the_cli_says_the_fix():
    proc = subprocess.run([sys.executable, "-m", "arena", "plan", "--profile", "paper", "--gpu-gib", "24",
                           "--methods", "lora"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "| lora | nf4 |" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1].startswith("error: no method of profile 'paper' fits 24 GiB")
    assert "--max-length" in proc.stderr and "Traceback" not in proc.stderr


def test_the_scoring_work_is_counted_by_hand():
    """onegpu: a test pass holds each task's test slice (BBH 2 x 27, IFEval 48, NQ 200, MATH500 16, AIME24 8); passes
    are the base in nf4 and in bf16 (PiSSA starts from it), 6 methods and the 2 rewound methods' chosen points on
    test, and on validation LoRA's 3 points (step 20, dense 0.5, final), OFT's 7 (+ generator 0.5 and 3 layer-wise
    rules) and the base."""
    profile = plan._on_gpu(get_profile("onegpu"), get_profile("onegpu").model)
    methods = [m for m in profile.methods if m != "full"]
    assert {r["task"]: r["prompts"] for r in plan.scoring_pass(profile)} == {
        "bbh_cot_fewshot": 54, "ifeval": 48, "nq_open": 200, "minerva_math500": 16, "aime24": 8}
    assert {r["task"]: r["prompts"] for r in plan.scoring_pass(profile, "validation")} == {
        "bbh_cot_fewshot": 27, "ifeval": 8, "nq_open": 16, "minerva_math500": 4, "aime24": 1}
    assert plan.scoring_passes(profile, methods) == {"test": 10, "validation": 11, "bases": ["bf16", "nf4"]}
    assert plan.scoring_passes(profile, methods, rewinding=False)["test"] == 8


def test_the_second_base_is_benchmarked_without_analyses_or_rewinding():
    """benchmark.run_other_bases runs no rewinding and no analyses on Llama, so its plan counts neither."""
    second = plan.plan(get_profile("onegpu"), TWENTY_FOUR)["bases"][1]
    assert second["base"] == "Llama-3.2-3B-Instruct"
    assert second["scoring passes"]["test"] == 8 and second["scoring passes"]["validation"] == 0
    assert second["base SVD cache disk"] == 0
    assert not any(t["term"].startswith(("rewinding", "weight analysis", "chapter 06")) for t in second["terms"])


def test_plans_without_a_card_cover_the_three_classes():
    profile = dataclasses.replace(get_profile("onegpu"), methods=("lora",))
    assert [r["gpu class"] for r in plan.plans(profile)] == ["24 GB", "48 GB", "80 GB"] or torch.cuda.is_available()
