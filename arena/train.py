"""Supervised finetuning along a saved path (book/definitions.md A2, A6, scaled down).

- Prompts: one user turn through the tokenizer's chat template with the generation prompt; the response is followed
  by EOS; loss on response tokens only; examples longer than ``max_length`` are dropped, not truncated (A2).
- AdamW (betas 0.9/0.95, weight decay 0.01), linear warmup over 10 % of the steps then cosine decay, grad clip 1.0.
- Checkpoints (adapter or trained weights, safetensors) at step 0 (the init, which residual methods need), every
  ``save_every`` steps and at the end; the trainer state next to the latest one, so a killed run resumes there and
  finishes with the same weights as an uninterrupted one.
- Under ``accelerate launch`` the same loop runs data-parallel: the step's micro-batches are dealt to the processes
  and the update is the single-process one (``arena/distributed.py``).
"""

from __future__ import annotations

import json
import pickle
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .distributed import context
from .errors import ArenaError
from .models import bf16_compute
from .profiles import OPTIMIZERS
from .progress import progress
from .provenance import peak_memory_mb, reset_peak_memory

IGNORE = -100  # labels ignored by the loss (prompt tokens and padding)


class StoppedEarly(Exception):
    """Raised by ``train_method(..., stop_after=k)``: a run stopped on purpose (tests simulate a kill with it)."""


@dataclass(frozen=True)
class TrainSpec:
    """Everything that determines a training run besides the base model and the data."""

    method: str
    size: int | None
    lr: float
    steps: int
    batch_size: int
    grad_accum: int
    max_length: int
    save_every: int
    seed: int
    optimizer: str = "adamw"

    def save_steps(self) -> list[int]:
        return sorted({0, *range(self.save_every, self.steps, self.save_every), self.steps})


# --------------------------------------------------------------------------------------------------- data

def encode_example(tokenizer, question: str, answer: str, max_length: int) -> dict | None:
    """Token ids and labels for one example; labels are IGNORE on the prompt. None if longer than ``max_length``."""
    messages = [{"role": "user", "content": question}]
    if tokenizer.chat_template:
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    else:
        prompt = f"Question: {question}\nAnswer: "
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(answer + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    ids = prompt_ids + response_ids
    if len(ids) > max_length:
        return None
    return {"input_ids": ids, "labels": [IGNORE] * len(prompt_ids) + response_ids}


def encode_dataset(tokenizer, rows: list[dict], max_length: int) -> list[dict]:
    if not rows:
        raise ArenaError("the training set is empty; check n_train in the profile (or the data file you passed)")
    encoded = [e for r in rows if (e := encode_example(tokenizer, r["question"], r["answer"], max_length))]
    if not encoded:
        raise ArenaError(f"every training example is longer than max_length={max_length} tokens; raise max_length")
    return encoded


def collate(examples: list[dict], pad_id: int) -> dict:
    """Right-padded tensors; padding is masked out of attention and loss."""
    width = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n] = torch.tensor(e["input_ids"])
        labels[i, :n] = torch.tensor(e["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def micro_batch(examples: list[dict], spec: TrainSpec, step: int, micro: int, pad_id: int) -> dict:
    """The ``micro``-th micro-batch of optimiser step ``step`` (0-based): a pure function of the seed and the step, so a
    resumed run sees exactly the data an uninterrupted one would. Each epoch is a fresh seeded permutation."""
    n, per_step = len(examples), spec.batch_size * spec.grad_accum
    start = step * per_step + micro * spec.batch_size
    picked = []
    for position in range(start, start + spec.batch_size):
        epoch, offset = divmod(position, n)
        order = list(range(n))
        random.Random(spec.seed * 100_003 + epoch).shuffle(order)
        picked.append(examples[order[offset]])
    return collate(picked, pad_id)


# --------------------------------------------------------------------------------------------------- checkpoints

def checkpoint_dir(folder: Path, step: int) -> Path:
    return Path(folder) / "ckpt" / f"step_{step:06d}"


def trainable_state(model) -> dict[str, torch.Tensor]:
    """The tensors a checkpoint needs: the adapter (peft) or the trained weights (full FT)."""
    if _raw_format(model):
        state = {n: p for n, p in model.named_parameters() if "lora_" in n}
    elif hasattr(model, "peft_config"):
        from peft import get_peft_model_state_dict

        state = get_peft_model_state_dict(model)
    else:
        state = {n: p for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}


def _raw_format(model) -> bool:
    """AdaLoRA checkpoints keep every rank (masked ones are zeros) under the module's own names: peft's state dict
    prunes them by a rank pattern that a freshly built model does not have, so it would not load back."""
    return _allocator(model) is not None


def save_checkpoint(model, folder: Path, step: int, meta: dict) -> Path:
    from safetensors.torch import save_file

    out = checkpoint_dir(folder, step)
    tmp = out.with_name(out.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    fmt = "raw" if _raw_format(model) else "peft" if hasattr(model, "peft_config") else "full"
    save_file(trainable_state(model), str(tmp / "weights.safetensors"),
              metadata={k: str(v) for k, v in {**meta, "step": step, "format": fmt}.items()})
    (tmp / "meta.json").write_text(json.dumps({**meta, "step": step}, indent=1))
    _replace_dir(tmp, out)
    return out


def _replace_dir(tmp: Path, out: Path) -> None:
    """Move a fully written ``tmp`` folder to ``out``: a checkpoint or state folder is either complete or absent."""
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)


def load_weights(model, path: Path, expected_base: str | None = None) -> dict:
    """Load a checkpoint's tensors into an already-wrapped ``model``; returns its metadata. A checkpoint from another
    base model, or a damaged file, raises an ArenaError naming the fix."""
    from safetensors import safe_open

    file = Path(path) / "weights.safetensors"
    try:
        with safe_open(str(file), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors raises its own error types for truncated or foreign files
        raise ArenaError(f"checkpoint {file} cannot be read ({err}); delete its run folder to retrain it") from None
    if expected_base and meta.get("base") != expected_base:
        raise ArenaError(f"checkpoint {path} was trained on base {meta.get('base')!r}, not {expected_base!r}; "
                         "load it with the profile and model it was trained on")
    if meta.get("format") == "raw":
        result = model.load_state_dict(tensors, strict=False)
        if result.unexpected_keys:
            raise ArenaError(f"checkpoint {path} does not match this model (unexpected tensors "
                             f"{result.unexpected_keys[:3]}); was it trained with another method or size?")
    elif hasattr(model, "peft_config"):
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(model, tensors)
        if getattr(result, "unexpected_keys", None):
            raise ArenaError(f"checkpoint {path} does not match this method's adapter (unexpected tensors "
                             f"{result.unexpected_keys[:3]}); was it trained with another method or size?")
    else:
        params = dict(model.named_parameters())
        missing = [k for k in tensors if k not in params]
        if missing:
            raise ArenaError(f"checkpoint {path} holds tensors this model lacks ({missing[:3]})")
        with torch.no_grad():
            for k, v in tensors.items():
                params[k].copy_(v.to(params[k].dtype))
    return meta


def _save_state(folder: Path, step: int, optimizer, scheduler, losses: list[float], tokens: int, seen: int,
                wall: float, extra: dict | None = None, rng_processes: list | None = None) -> None:
    state_dir = Path(folder) / "state"
    tmp = state_dir.with_name("state.tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    if extra:
        state["extra"] = extra
    if rng_processes:
        state["rng_processes"] = rng_processes  # each data-parallel process's stream (arena/distributed.py)
    torch.save(state, tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, "losses": losses, "tokens": tokens, "seen": seen,
                                                  "wall_s": wall}))
    _replace_dir(tmp, state_dir)


def _load_state(folder: Path) -> tuple[dict, dict] | None:
    state_dir = Path(folder) / "state"
    try:
        info = json.loads((state_dir / "state.json").read_text())
        tensors = torch.load(state_dir / "optimizer.pt", weights_only=True)
    except (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError):
        return None  # no complete state: the run starts over (its checkpoints are rewritten identically)
    return info, tensors


# --------------------------------------------------------------------------------------------------- loop

def _allocator(model):
    return getattr(getattr(model, "base_model", None), "rankallocator", None)


def _allocator_state(model) -> dict | None:
    """AdaLoRA's importance statistics, which decide the next rank masks: a resumed run needs them too."""
    alloc = _allocator(model)
    if alloc is None:
        return None
    return {name: {k: v.detach().cpu() for k, v in getattr(alloc, name).items()}
            for name in ("ipt", "exp_avg_ipt", "exp_avg_unc")}


def _set_allocator_state(model, extra: dict) -> None:
    alloc = _allocator(model)
    if alloc is None:
        return
    device = next(model.parameters()).device
    for name, values in extra.items():
        setattr(alloc, name, {k: v.to(device) for k, v in values.items()})


def make_optimizer(model, spec: TrainSpec):
    from transformers import get_cosine_schedule_with_warmup

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ArenaError(f"{spec.method} left no trainable parameters")
    hyper = {"lr": spec.lr, "betas": (0.9, 0.95), "weight_decay": 0.01}
    if spec.optimizer not in OPTIMIZERS:
        raise ArenaError(f"unknown optimizer {spec.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
    if OPTIMIZERS[spec.optimizer] is None:
        optimizer = torch.optim.AdamW(params, **hyper)
    elif not params[0].is_cuda:
        raise ArenaError(f"optimizer {spec.optimizer!r} (bitsandbytes) needs a CUDA GPU; use optimizer=adamw here")
    else:
        import bitsandbytes.optim

        optimizer = getattr(bitsandbytes.optim, OPTIMIZERS[spec.optimizer])(params, **hyper)
    warmup = max(1, round(0.1 * spec.steps))
    return optimizer, get_cosine_schedule_with_warmup(optimizer, warmup, spec.steps)


def optimizer_step(trained, model, batches: list[dict], optimizer, scheduler, grad_accum: int, parallel,
                   on_step=None, step: int = 0) -> tuple[float, int, int]:
    """One optimiser step over ``batches``, this process's micro-batches of the step (all of them in one process):
    forward under bf16 autocast over fp32 weights, backward with DDP averaging gradients across processes, clip at
    1.0, optimiser and scheduler step, then ``on_step(model, step + 1)`` (AdaLoRA's rank update, which reads the
    gradients). ``trained`` is what runs the forward (the DDP wrapper under a launch), ``model`` the module itself.
    Returns (the step's mean loss, response tokens, all tokens), summed over processes. The throughput benchmark
    times this same function."""
    device = next(trained.parameters()).device
    # bf16 autocast with fp32 master weights: on CUDA as in the paper (A6); on CPU it is also ~15 % faster where the
    # CPU has bf16 instructions (AVX512-BF16 / AMX), and weights, optimiser state and checkpoints stay fp32.
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16_compute(device))
    total, tokens, seen = 0.0, 0, 0
    for i, cpu_batch in enumerate(batches):
        batch = {k: v.to(device) for k, v in cpu_batch.items()}
        with parallel.no_sync(trained, sync=i == len(batches) - 1):
            with autocast:
                loss = trained(**batch).loss
            # each process divides by its own share of the step: DDP's average over processes then gives
            # sum(micro-batch losses) / grad_accum, the single-process update
            (loss / len(batches)).backward()
        total += (loss / grad_accum).item()
        tokens += int((batch["labels"] != IGNORE).sum())
        seen += int(batch["attention_mask"].sum())
    total, tokens, seen = parallel.total([total, tokens, seen])
    # after DDP's all-reduce every process holds the same gradients, so a local clip is the global one
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    scheduler.step()
    if on_step is not None:
        on_step(model, step + 1)
    optimizer.zero_grad(set_to_none=True)
    return total, int(tokens), int(seen)


def train(model, examples: list[dict], spec: TrainSpec, folder: Path, meta: dict, pad_id: int,
          on_step=None, stop_after: int | None = None) -> dict:
    """Run (or resume) SFT of an already-wrapped ``model``. ``stop_after`` stops early after that many steps (tests
    use it to simulate a kill). Returns per-step losses, trained tokens, wall time and peak memory."""

    folder = Path(folder)
    reset_peak_memory()  # this method's peak, not the worst of every method this process trained before it
    parallel = context()  # one process, or data-parallel under `accelerate launch` (arena/distributed.py)
    local_micros = parallel.micro_batches(spec.grad_accum)
    # DDP-wrapped and on this process's device under a launch, before the optimiser and any resumed state see it
    trained = parallel.prepare(model)
    optimizer, scheduler = make_optimizer(model, spec)
    torch.manual_seed(spec.seed)
    parallel.seed_streams(spec.seed)
    start, losses, tokens, seen, wall = 0, [], 0, 0, 0.0
    resumed = _load_state(folder)
    if resumed is not None:
        info, state = resumed
        load_weights(model, checkpoint_dir(folder, info["step"]), meta.get("base"))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        parallel.set_rng_state(state.get("rng_processes"))
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        if "extra" in state:
            _set_allocator_state(model, state["extra"])
        start, losses, tokens, wall = info["step"], info["losses"], info["tokens"], info["wall_s"]
        seen = info.get("seen", 0)
    elif not checkpoint_dir(folder, 0).exists() and meta.get("save_init", True) and parallel.main:
        save_checkpoint(model, folder, 0, meta)
    saves = set(spec.save_steps())
    model.train()
    bar = progress(range(start, spec.steps), desc=f"train {meta.get('label', spec.method)}", initial=start,
                   total=spec.steps, unit="step", disable=not parallel.main)
    t0 = time.perf_counter()
    for step in bar:
        batches = [micro_batch(examples, spec, step, micro, pad_id) for micro in local_micros]
        total, step_tokens, step_seen = optimizer_step(trained, model, batches, optimizer, scheduler, spec.grad_accum,
                                                       parallel, on_step=on_step, step=step)
        tokens, seen = tokens + step_tokens, seen + step_seen
        losses.append(total)
        bar.set_postfix(loss=f"{total:.3f}", refresh=False)
        done = step + 1
        if done in saves:
            elapsed = wall + time.perf_counter() - t0
            streams = parallel.rng_states()  # a collective: every process takes part
            if parallel.main:
                save_checkpoint(model, folder, done, meta)
                _save_state(folder, done, optimizer, scheduler, losses, tokens, seen, elapsed,
                            _allocator_state(model), streams)
            parallel.barrier()  # a process killed after this point finds the state every process agrees on
        if stop_after is not None and done >= stop_after:
            break
    bar.close()
    model.eval()
    wall += time.perf_counter() - t0
    # tokens/s counts every token processed (prompt + response); response_tokens are the ones the loss saw
    return {"losses": losses, "response_tokens": tokens, "train_tokens": seen, "train_wall_s": wall,
            "train_tokens_per_s": seen / wall if wall else None, "resumed_from": start, "processes": parallel.size,
            **peak_memory_mb(),
            "spec": asdict(spec)}
