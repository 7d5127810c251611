"""Scoring a model through lm-eval: the general suite (stability) and the target task (plasticity).

Scores follow book/definitions.md A4-A5: General = unweighted mean of the three groups {BBH, IFEval, QA}; BBH =
unweighted mean of its subtask accuracies; Target = mean of the held-out word problems and the out-of-distribution mean;
Forgetting = General(base) - General(checkpoint) and TargetGain = Target(ckpt) - Target(base), in percentage points.

Protocol note (printed in the book): this is the kit's offline suite on lm-eval, not the paper's OpenCompass protocol.
Log-likelihood tasks (reasoning, knowledge, arithmetic) run without the chat template; generated answers
(IFEval-style, word problems) use it when the tokenizer has one.
"""

from __future__ import annotations

import contextlib
import functools
import math
from pathlib import Path

import torch

from . import context_once, stock_fixtures
from .errors import ArenaError
from .groups import GENERAL_GROUPS
from .generation import turn_end
from .models import bf16_compute, configure_torch, device
from .offline_nltk import use_shipped_nltk_data
from .processes import idle_peer, process_pool, usable_cores
from .progress import console_to_buffer, quiet_libraries
from .scores import (BPB, CHAT_TASKS, PLAIN_TASKS, PREFERRED_METRIC, STOCK_GEN_TOKENS, TWIN_TASKS, stock_slices,
                     stock_task_lists, summarise)
from .suite import build_suite, build_validation
from .updates import is_quantized
from .vllm_backend import score_with_vllm

TASK_DIR = Path(__file__).parent / "tasks"


@functools.cache
def _task_manager(data_dir: Path, stock: bool = False):
    """The kit's tasks; lm-eval's own ~12,000 task files are indexed only when a stock task is asked for (indexing
    them costs ~11 s per call on the reference CPU)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASK_DIR), include_defaults=stock, metadata={"data_dir": str(data_dir)})


def hf_language_model(model, tokenizer, batch_size: int, scorer=None, bf16: bool | None = None,
                      generation_batch_size: int | None = None):
    """lm-eval's HFLM around the model object (the default backend), with shared multiple-choice contexts encoded once
    and finished rows leaving a generation batch (``context_once``; ``scorer`` another HFLM class, e.g. lm-eval's own
    for a side-by-side measurement; ``bf16`` False computes in fp32 where the device would use bf16;
    ``generation_batch_size`` rows a generation batch, default ``batch_size``)."""

    # batch_size must go to HFLM: simple_evaluate ignores it for model objects.
    # bf16 compute where the device has it (models.bf16_compute; the cache key records it); HFLM wraps every forward
    # in its own autocast (it must be told, not wrapped), which keeps log-softmax in fp32.
    bf16 = bf16_compute(next(model.parameters()).device) if bf16 is None else bf16
    scorer = scorer or context_once.ContextOnceLM
    extra = {"generation_batch_size": generation_batch_size} if generation_batch_size else {}
    return scorer(pretrained=model, tokenizer=tokenizer, batch_size=batch_size,
                  mixed_precision_dtype=torch.bfloat16 if bf16 else None, **extra)


def run_tasks(lm, tokenizer, tasks: list[str], data_dir: Path, chat: bool, gen_kwargs: dict | None = None,
              samples: dict | None = None) -> dict:
    """lm-eval on the given task names with the language model ``lm`` (HFLM or VLLM). Returns ``{task: [per-item
    score, ...]}`` (IFEval items: mean over its instructions; its instruction-level lists are kept under
    ``<task>:inst``). ``gen_kwargs`` update the tasks' generation settings (lm-eval's ``gen_kwargs``); ``samples`` names
    the items to score per (sub)task (lm-eval's ``samples``: ``{task: [doc ids]}``), default all."""
    import lm_eval

    use_shipped_nltk_data()  # before IFEval's import, which downloads punkt_tab when NLTK cannot find it
    quiet_libraries()
    stock = not all(isinstance(t, str) and t.startswith("arena_") for t in tasks)  # dict: a stock task's fixture
    templated = chat and bool(tokenizer.chat_template)
    stops = chat_stops(tokenizer, getattr(getattr(lm, "model", None), "generation_config", None)) if templated else []
    with console_to_buffer(), stopping_at(lm, stops):  # lm-eval's per-request bars would fill an executed notebook
        out = lm_eval.simple_evaluate(model=lm, tasks=tasks, task_manager=_task_manager(Path(data_dir), stock),
                                      log_samples=True, apply_chat_template=templated,
                                      bootstrap_iters=0, random_seed=0, numpy_random_seed=0, torch_random_seed=0,
                                      fewshot_random_seed=0, gen_kwargs=gen_kwargs, samples=samples)
    items = {}
    for task, samples in out["samples"].items():
        samples = sorted(samples, key=lambda s: s["doc_id"])
        if _scored_by_likelihood(samples[0]):
            items[TWIN_TASKS.get(task, task) + BPB] = [gold_bits_per_byte(s) for s in samples]
            if task in TWIN_TASKS:
                continue
        metric = PREFERRED_METRIC.get(task) or next(m for m in ("acc_norm", "acc", "exact_match",
                                                                "inst_level_strict_acc") if m in samples[0])
        doc = samples[0].get("doc") or {}
        if doc.get("screen"):  # a screen item: both rules, for the screen to choose (screen.decide)
            for rule in ("acc", "acc_norm"):
                if rule in samples[0]:  # a free-form item (greedy match) has one
                    items[f"{task}:{rule}"] = [float(s[rule]) for s in samples]
        if "rule" in doc:  # the rule the screen chose for the item's candidate, recorded in the item
            items[task] = [float(s[s["doc"]["rule"]]) for s in samples]
        elif metric == "inst_level_strict_acc":
            items[task + ":inst"] = [list(map(float, s[metric])) for s in samples]
            items[task] = [sum(map(float, s[metric])) / len(s[metric]) for s in samples]
        else:
            items[task] = [float(s[metric]) for s in samples]
    return items


def chat_stops(tokenizer, generation_config=None) -> list[str]:
    """What ends an answer of a chat-template task besides the task's own stop strings: the template's end of turn
    (``generation.turn_end``), the tokenizer's end-of-sequence token and the generation config's end-of-sequence
    tokens. Qwen2.5-7B base closes a turn with ``<|im_end|>`` but ends a sequence with ``<|endoftext|>``, and IFEval
    stops at nothing else, so without the turn's end a base model's answer runs to the task's 1,025-token cap."""
    eos = getattr(generation_config, "eos_token_id", None)
    ids = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    named = [turn_end(tokenizer), tokenizer.eos_token, *tokenizer.convert_ids_to_tokens(ids)]
    return list(dict.fromkeys(t for t in named if t))


@contextlib.contextmanager
def stopping_at(lm, stops: list[str]):
    """``lm``'s ``generate_until`` with ``stops`` added to every request's stop strings while the block runs. lm-eval's
    ``gen_kwargs`` would replace a task's own ``until`` (NQ stops at a newline, the math tasks at "Problem:"), so the
    requests are extended instead, for the HF and vLLM backends alike."""
    if not stops:
        yield lm
        return
    own = lm.__dict__.get("generate_until")  # an instance's own (a wrapper set before) comes back afterwards
    inner = lm.generate_until

    def generate_until(requests, *args, **kwargs):
        for request in requests:
            context, settings = request.args
            until = settings.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            request.arguments = (context, {**settings, "until": until + [s for s in stops if s not in until]})
        return inner(requests, *args, **kwargs)

    lm.generate_until = generate_until
    try:
        yield lm
    finally:
        if own is None:
            del lm.generate_until
        else:
            lm.generate_until = own


def spare_core() -> bool:
    """Whether a second process can score beside this one: a CPU with two or more usable cores, outside the
    benchmark's workers (they hold both; ``ARENA_WORKER``) unless a peer worker has nothing left to do (the last
    method of a benchmark; ``processes.idle_peer``)."""
    import os

    return device() == "cpu" and usable_cores() >= 2 and (not os.environ.get("ARENA_WORKER") or idle_peer())


@contextlib.contextmanager
def score_aside(reload, tasks: list[str], data_dir: Path, chat: bool, batch_size: int, bf16: bool | None = None,
                generation_batch_size: int | None = None):
    """``run_tasks`` on ``tasks`` in a second process while the block runs, on the model ``reload()`` loads (a
    picklable loader, e.g. ``functools.partial(load_base, spec, quantization)``), scored as this process would score
    it (``bf16`` None: the kit's scoring copy; False: fp32 as loaded). Yields a function that waits for its items;
    the process is stopped if the block fails. On this CPU two single-threaded processes do twice the work of one.
    Separate ``run_tasks`` calls batch separately, so the items equal those of the same calls made in one process."""
    from concurrent.futures.process import BrokenProcessPool

    # an executor, not multiprocessing.Pool: a Pool replaces a worker that dies (killed for memory, or a script that
    # spawns without an ``if __name__ == "__main__":`` guard) and its result never comes; here it raises
    with process_pool(1) as pool:  # a failed or interrupted block leaves no process behind, nor does a killed parent
        pending = pool.submit(_score_tasks, reload, tasks, data_dir, chat, batch_size, bf16, generation_batch_size)

        def result() -> dict:
            try:
                return pending.result()
            except BrokenProcessPool as error:
                raise ArenaError("the second scoring process ended abruptly (out of memory, or a script that starts "
                                 "processes without an `if __name__ == \"__main__\":` guard); score in one process "
                                 "with the profile's score_aside=False") from error

        yield result


def _score_tasks(reload, tasks, data_dir, chat, batch_size, bf16, generation_batch_size) -> dict:
    import os

    os.environ.setdefault("ARENA_QUIET", "1")
    configure_torch()
    model, tokenizer = reload()
    model = _scoring_copy(model.eval()) if bf16 is None else model.eval()
    lm = hf_language_model(model, tokenizer, batch_size, bf16=bf16, generation_batch_size=generation_batch_size)
    return run_tasks(lm, tokenizer, tasks, data_dir, chat=chat)


def suite_tasks(data_dir: Path, tasks: list[str]) -> list[str]:
    """``tasks`` with the BBH group replaced by the families the suite folder holds (a screened suite keeps some), and
    without an optional task whose file the suite does not hold."""
    bbh = [f"arena_bbh_{p.stem}" for p in sorted((Path(data_dir) / "bbh").glob("*.jsonl"))]
    # a screen may keep no candidate of an optional group, whose file is then not written
    optional = {g.task(c): g.file(c) for g in GENERAL_GROUPS if g.optional for c in g.candidates}
    return [t for task in tasks for t in (bbh if task == "arena_bbh" else [task])
            if t not in optional or (Path(data_dir) / optional[t]).exists()]


def _scored_by_likelihood(sample: dict) -> bool:
    return all(isinstance(r, (tuple, list)) and isinstance(r[0], float) for r in sample["filtered_resps"])


def gold_bits_per_byte(sample: dict) -> float:
    """-log2 p(gold continuation | context) / its UTF-8 bytes, for one logged lm-eval sample scored by log-likelihood
    (a multiple-choice item's gold option, with lm-eval's delimiter; a log-likelihood item's target): the likelihood
    twin of its accuracy (bits per byte, as Gao et al. 2020's Pile metric, comparable across tokenizers)."""
    gold = sample["target"] if isinstance(sample["target"], int) else 0
    continuation = sample["arguments"][gold][1]
    return -sample["filtered_resps"][gold][0] / (math.log(2) * len(continuation.encode("utf-8")))


def stock_prompts(profile, per_task: int = 16, split: str = "test") -> dict[str, list[str]]:
    """``{stock task: prompt texts}``: lm-eval's own ``doc_to_text`` (zero-shot, no chat template) of the first
    ``per_task`` items of each stock task's ``split`` slice (``scores.stock_slices``; the BBH subtasks pooled in
    turn), read from the datasets scoring reads (a dry run's fixtures). The activation analysis's prompts on the hub
    profiles (``activation_analysis.prompt_sets``)."""
    from lm_eval.tasks import get_task_dict

    use_shipped_nltk_data()
    quiet_libraries()
    out = {}
    for task in STOCK_GEN_TOKENS:
        slices = stock_slices(task, profile.seed, profile.stock_validation.get(task, 0), profile.stock_limits.get(task))
        specs = stock_fixtures.task_specs(task) if profile.dry_run else list(slices)
        with console_to_buffer():
            tasks = get_task_dict(specs, _task_manager(Path("."), stock=True))
        texts = []
        for name, task_obj in sorted(tasks.items(), key=lambda kv: str(kv[0])):
            docs = task_obj.eval_docs
            texts.append([str(task_obj.doc_to_text(docs[i])) for i in slices[str(name)][split][:per_task]])
        out[task] = [t for group in round_robin(texts) for t in group][:per_task]
    return out


def round_robin(lists: list[list]) -> list[list]:
    """Round-robin groups over ``lists`` (item i of each list that has one), so a cap samples every list."""
    longest = max((len(x) for x in lists), default=0)
    return [[x[i] for x in lists if i < len(x)] for i in range(longest)]


def evaluate(model, tokenizer, profile, batch_size: int | None = None, split: str = "test", reload=None) -> dict:
    """Score ``model`` on the profile's suite (``split="test"``) or on its validation split (disjoint items, used only
    to choose rewinding points). Returns per-item scores plus the General/Target summary (in %). ``reload``: a
    picklable loader of the same model (``score_aside``); with a spare core the kit suite's log-likelihood tasks are
    then scored in a second process while this one generates."""
    if split not in ("test", "validation"):
        raise ValueError(f"split must be 'test' or 'validation', not {split!r}")
    batch_size = batch_size or profile.eval_batch_size
    was_training = model.training
    model.eval()
    try:
        if profile.eval_backend == "vllm":
            return score_with_vllm(model, tokenizer, profile, lambda lm: _evaluate(lm, tokenizer, profile, split))
        lm = scoring_language_model(model, tokenizer, batch_size, generation_batch_size=profile.generation_batch_size)
        return _evaluate(lm, tokenizer, profile, split, reload if profile.score_aside and spare_core() else None)
    finally:
        model.train(was_training)


def scoring_language_model(model, tokenizer, batch_size: int, scorer=None, generation_batch_size: int | None = None):
    """The default backend around ``model`` as the kit scores it (``_scoring_copy``)."""
    return hf_language_model(_scoring_copy(model), tokenizer, batch_size, scorer,
                             generation_batch_size=generation_batch_size)


def _scoring_copy(model):
    """With bf16 compute, an fp32 model is scored as a bf16 copy (the caller's model is untouched): autocast alone
    would re-cast every weight at every decoding step. bf16 or quantised models are scored as they are."""
    if any(is_quantized(p) for p in model.parameters()):
        return model  # a 4-bit model cannot be cast (bitsandbytes refuses); its kernels compute in bf16 already
    if bf16_compute(next(model.parameters()).device) and next(model.parameters()).dtype == torch.float32:
        import copy

        return copy.deepcopy(model).to(torch.bfloat16)
    return model


def _evaluate(lm, tokenizer, profile, split: str, reload=None) -> dict:
    if profile.uses_stock_tasks:
        chat, plain = stock_task_lists(profile.model.instruct)
        items = {}
        for task in [*chat, *plain]:  # one call per task: each at the paper's generation length
            slices = stock_slices(task, profile.seed, profile.stock_validation.get(task, 0),
                                  profile.stock_limits.get(task))
            specs = stock_fixtures.task_specs(task) if profile.dry_run else [task]
            if profile.dry_run:
                slices = {spec["task"]: slices[spec["task"]] for spec in specs}
            samples = {name: s[split] for name, s in slices.items()}
            if not all(samples.values()):
                raise ArenaError(f"the {split} split of {task} is empty: set stock_validation for it in the profile")
            tokens = profile.extra.get("max_gen_toks") or STOCK_GEN_TOKENS[task]
            items |= run_tasks(lm, tokenizer, specs, Path("."), chat=task in chat,
                               gen_kwargs={"max_gen_toks": tokens}, samples=samples)
        return {"items": items, "split": split, **summarise(items)}
    data_dir = build_suite(profile) if split == "test" else build_validation(profile)
    chat, plain = CHAT_TASKS, suite_tasks(data_dir, PLAIN_TASKS)
    aside = (score_aside(reload, plain, data_dir, False, lm.batch_size, None, profile.generation_batch_size)
             if plain and reload else contextlib.nullcontext(lambda: run_tasks(lm, tokenizer, plain, data_dir, False)))
    with aside as plain_items:
        items = run_tasks(lm, tokenizer, chat, data_dir, chat=True)
        items |= plain_items() if plain else {}
    # wall times are read across methods (chapters 01, 08): say which scorings had a second core
    return {"items": items, "split": split, "scored_aside": bool(plain and reload), **summarise(items)}
