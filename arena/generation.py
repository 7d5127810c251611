"""Greedy batched generation that lets finished rows go: the generation half of the kit's scorer.

lm-eval's HFLM hands a whole batch to one ``model.generate`` call, which steps every row until the last one ends, so a
batch costs its size times its longest answer. Here the batch runs in segments of ``segment`` tokens; between
segments the rows whose answer has ended (an end-of-sequence token, or one of the task's stop strings) leave it, and
their rows of the key-value cache go with them. Each remaining row continues from its own cache, so its tokens are
the greedy tokens of the one-call path (equal on the smoke model in fp32, ``tests/test_generation.py``; in bf16 a
smaller batch can round a near-tie the other way, as a different batch size can). transformers' continuous batching
is a serving loop for accelerators, not a drop-in ``generate``; hence this function.
"""

from __future__ import annotations

from typing import Callable

import torch

SEGMENT = 16  # tokens between compactions: short enough that early stoppers leave soon, long enough to amortise a call


def eos_ids(model) -> set[int]:
    """The token ids that end a row in ``model.generate`` (its generation config's end-of-sequence ids)."""
    eos = model.generation_config.eos_token_id
    return set() if eos is None else {eos} if isinstance(eos, int) else set(eos)


def turn_end(tokenizer) -> str | None:
    """The special token ``tokenizer``'s chat template closes a turn with (ChatML's ``<|im_end|>``, Llama 3's
    ``<|eot_id|>``), or None without a template or where no special token follows a turn. Read from a rendered turn,
    because a base model's end-of-sequence token is often another (Qwen2.5 base: ``<|endoftext|>``), and an answer
    that is not stopped at the end of its turn runs on to the task's token cap."""
    from jinja2 import TemplateError

    if not getattr(tokenizer, "chat_template", None):
        return None
    mark = "ARENA-END-OF-TURN-PROBE"
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": mark}],
                                             tokenize=False)
    except TemplateError:  # a template with rules of its own (a system turn first, say) names no end here
        return None
    if mark not in text:
        return None
    ids = tokenizer(text.split(mark, 1)[1], add_special_tokens=False)["input_ids"]
    return tokenizer.convert_ids_to_tokens(ids[0]) if ids and ids[0] in special_ids(tokenizer) else None


def special_ids(tokenizer) -> set[int]:
    """Ids of the tokenizer's special tokens, the named ones and the added ones marked special."""
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    return set(tokenizer.all_special_ids) | {i for i, token in added.items() if getattr(token, "special", False)}


def stop_token_ids(tokenizer, stop: list[str]) -> set[int]:
    """The ids of the stop strings that are one special token. lm-eval decodes answers without special tokens, so
    such a stop (``<|im_end|>``) never shows in the text a stop rule reads: it must end its row by id."""
    special = special_ids(tokenizer)
    out = set()
    for s in stop:
        ids = tokenizer(s, add_special_tokens=False)["input_ids"] if s else []
        if len(ids) == 1 and ids[0] in special:
            out.add(ids[0])
    return out


def generate_compacting(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int,
                        ended: Callable[[list[list[int]]], list[bool]], pad_token_id: int,
                        segment: int = SEGMENT, stop_ids: set[int] = frozenset()) -> torch.Tensor:
    """Greedy ``model.generate`` on a left-padded batch, finished rows dropped every ``segment`` tokens.

    ``ended(rows)`` says, for each row's generated tokens so far, whether its answer is over (a row holding an
    end-of-sequence id of ``eos_ids(model)`` or an id of ``stop_ids`` always is): lm-eval's stop strings are applied
    here, between segments, not as stopping criteria inside ``generate``, whose all-rows rule would then depend on
    which rows remain. ``stop_ids`` end a row inside ``generate`` as its end-of-sequence ids do (the stop strings that
    are one special token, ``stop_token_ids``), so nothing after them is kept. Returns ``[batch, context + generated]``
    token ids, as ``generate`` does: each row's tokens, then ``pad_token_id`` up to the longest row.
    """
    batch = input_ids.shape[0]
    stop_ids = eos_ids(model) | set(stop_ids)
    ends = {"eos_token_id": sorted(stop_ids)} if stop_ids else {}
    rows = list(range(batch))
    made: list[list[int]] = [[] for _ in range(batch)]
    ids, mask, cache, done = input_ids, attention_mask, None, 0
    while rows and done < max_new_tokens:
        step = min(segment, max_new_tokens - done)
        out = model.generate(input_ids=ids, attention_mask=mask, past_key_values=cache, max_new_tokens=step,
                             do_sample=False, pad_token_id=pad_token_id, use_cache=True, return_dict_in_generate=True,
                             **ends)
        new = out.sequences[:, ids.shape[1]:]
        for row, tokens in zip(rows, new.tolist()):
            made[row] += tokens
        done += new.shape[1]
        if new.shape[1] < step:  # generate stopped early: every row has met an end-of-sequence id
            break
        over = ended([made[r] for r in rows])
        over = [o or bool(stop_ids.intersection(made[r])) for o, r in zip(over, rows)]
        keep = [i for i, o in enumerate(over) if not o]
        if not keep:
            break
        mask = torch.cat([mask, mask.new_ones(len(rows), new.shape[1])], dim=1)
        ids, cache = out.sequences, out.past_key_values
        if len(keep) < len(rows):
            index = torch.tensor(keep, device=ids.device)
            ids, mask = ids[index], mask[index]
            cache.batch_select_indices(index)
            rows = [rows[i] for i in keep]
    longest = max(len(m) for m in made)
    tail = torch.tensor([m + [pad_token_id] * (longest - len(m)) for m in made], dtype=input_ids.dtype,
                        device=input_ids.device).reshape(batch, longest)
    return torch.cat([input_ids, tail], dim=1)
