"""The GPU path's options and its throughput benchmark. Everything here runs on CPU except the tests marked
gpu/bnb, which need CUDA and skip without it."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from arena.keys import train_key
from arena.runs import gradient_checkpointing, sized_method, train_method, train_spec
from arena.errors import ArenaError
from arena.profiles import get_profile

ROOT = Path(__file__).resolve().parent.parent


def test_optimizer_names_are_checked():
    with pytest.raises(ArenaError, match="adamw_8bit"):
        get_profile("smoke", optimizer="sgd")
    with pytest.raises(ArenaError, match="auto, on or off"):
        get_profile("smoke", gradient_checkpointing="yes")


def test_bitsandbytes_optimisers_need_cuda():
    from arena.methods import build
    from arena.models import smoke_model
    from arena.train import TrainSpec, make_optimizer

    model = build("lora", smoke_model(), 4)
    spec = TrainSpec("lora", 4, 1e-3, 2, 2, 1, 64, 1, 0, optimizer="paged_adamw_8bit")
    with pytest.raises(ArenaError, match="needs a CUDA GPU; use optimizer=adamw"):
        make_optimizer(model, spec)


def test_the_default_optimizer_keeps_stored_keys_and_others_change_them():
    profile = get_profile("smoke")
    spec = train_spec(profile, sized_method(profile, "lora"))
    assert "optimizer" not in train_key(profile, spec)  # runs stored before the option existed stay valid
    other = get_profile("smoke", optimizer="adamw_8bit")
    assert train_key(other, train_spec(other, sized_method(other, "lora")))["optimizer"] == "adamw_8bit"


def test_gradient_checkpointing_changes_memory_not_the_run():
    """Recomputing activations must give the same losses: it is a memory option, not part of the result's key."""
    assert gradient_checkpointing(get_profile("smoke")) == torch.cuda.is_available()  # auto = on with CUDA only
    runs = {}
    for setting in ("off", "on"):
        profile = get_profile("smoke", gradient_checkpointing=setting, steps=3, save_every=3, seed=7)
        spec = train_spec(profile, sized_method(profile, "lora"))
        runs[setting] = train_method(profile, spec, force=True)["losses"]
    assert gradient_checkpointing(get_profile("smoke", gradient_checkpointing="on"))
    assert runs["on"] == pytest.approx(runs["off"], rel=1e-4)


@pytest.mark.parametrize("name, total", [("Qwen/Qwen2.5-7B", 7_615_616_512),
                                         ("meta-llama/Llama-3.2-3B-Instruct", 3_212_749_824)])
def test_random_architectures_have_the_published_size(name, total):
    """The benchmark's random models are the exact architectures: their parameter counts are the published ones."""
    from transformers import AutoModelForCausalLM

    from arena.models import architecture_config

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(architecture_config(name))
    assert sum(p.numel() for p in model.parameters()) == total


def test_unknown_architecture_names_the_fix():
    from arena.models import architecture_config

    with pytest.raises(ArenaError, match="Qwen/Qwen2.5-7B"):
        architecture_config("gpt2")


@pytest.mark.nf4
def test_random_architecture_loads_in_nf4_through_from_pretrained(tmp_path, monkeypatch):
    """The benchmark's nf4 path (write bf16 safetensors once, quantise while loading) on this device: the CPU here."""
    from arena.models import count_parameters, random_base

    monkeypatch.setenv("PEFT_ARENA_CACHE", str(tmp_path))
    model = random_base("smoke", "nf4", layers=1)
    assert any(type(p).__name__ == "Params4bit" for p in model.parameters())
    assert count_parameters(model)[1] == count_parameters(random_base("smoke", None, layers=1))[1]


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "benchmarks/train_throughput.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)


def test_architecture_benchmark_prints_lora_and_oft():
    proc = _bench("--architecture", "smoke", "--seq-len", "64", "--steps", "1", "--warmup", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines() if line[:4] in ("lora", "oft-")}
    assert set(rows) == {"lora-r8", "oft-b32"}
    assert rows["lora-r8"][3] == "1.00" and float(rows["oft-b32"][2]) > 0  # tokens/s as a ratio to LoRA
    from arena.report import number_sources, stored_throughput

    stored = stored_throughput()  # what chapter 08 shows: the measurement, with the device that made it
    smoke = stored.loc[[s for s in stored.index.levels[0] if s.startswith("architecture: smoke")][0]]
    assert set(smoke.index) == {"lora-r8", "oft-b32"} and smoke.loc["lora-r8", "vs LoRA"] == 1.0
    assert len(set(smoke["device"])) == 1 and (torch.cuda.is_available() or set(smoke["device"]) == {"cpu"})
    assert number_sources(get_profile("smoke"), []).iloc[-1]["device"] != "none stored"


def test_architecture_benchmark_fails_loudly_on_a_bad_method():
    proc = _bench("--architecture", "smoke", "--seq-len", "32", "--steps", "1", "--warmup", "0",
                  "--methods", "lora:4,nosuch:2")
    assert proc.returncode != 0 and "failed: nosuch:2" in proc.stderr


@pytest.mark.gpu
@pytest.mark.bnb
@pytest.mark.parametrize("architecture", ["Qwen/Qwen2.5-7B", "meta-llama/Llama-3.2-3B-Instruct"])
def test_nf4_architecture_benchmark_on_cuda(architecture):
    """Two layers of the real shapes in nf4: LoRA r8 and OFT b32 train at sequence length 2048 and report GPU memory."""
    proc = _bench("--architecture", architecture, "--layers", "2", "--steps", "2", "--warmup", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "base nf4" in proc.stdout and "peak_gpu_mb" in proc.stdout


@pytest.mark.gpu
@pytest.mark.bnb
def test_paged_8bit_optimizer_trains_on_cuda():
    import math

    profile = get_profile("embedded", quantization="nf4", steps=2, save_every=1, batch_size=2,
                          optimizer="paged_adamw_8bit")
    record = train_method(profile, train_spec(profile, sized_method(profile, "lora")))
    assert all(math.isfinite(x) for x in record["losses"]) and record["key"]["optimizer"] == "paged_adamw_8bit"
