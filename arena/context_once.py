"""A multiple-choice scorer that encodes each shared context once: lm-eval's HFLM with its log-likelihood pass
replaced where several requests share a context.

lm-eval's HFLM runs every (context, option) pair as its own full-length sequence, so a k-way item costs k forwards of
the whole prompt (its own logits cache helps only when every option is one token). Here the context runs once, its
key-value cache is repeated across the options, and only the options' own tokens run again: about one forward per item
for the same log-likelihoods. ``tests/test_context_once.py`` checks them against HFLM's to 1e-4 in fp32; under bf16
compute the two orders of summation round apart by about 1e-2. lm-eval has no such path (its code marks it TODO),
hence this class. Its greedy generation lets finished rows leave the batch (``arena/generation.py``). It is built on
first use (``ContextOnceLM``, a module attribute): lm-eval's HF backend is a 2.5 s import that ``import arena.evaluate``
should not pay.
"""

from __future__ import annotations

import copy
import functools

import torch
import torch.nn.functional as F

from .generation import generate_compacting, stop_token_ids


# The context tokens a group must save, (options - 1) x context length, to leave HFLM's batched path: short contexts
# (QA's one-line facts, sports_understanding's yes/no) score faster eight requests to a forward than one group to two
# (benchmarks/scoring_speed.py: QA 8.5 s batched against 19.5 s grouped; salient_translation_error_detection's long
# prompts 122.8 s against 27.2 s).
MIN_SAVED_TOKENS = 128


def __getattr__(name: str):
    if name == "ContextOnceLM":
        return _context_once_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _context_once_class():
    from lm_eval.models import huggingface

    class ContextOnceLM(huggingface.HFLM):
        """HFLM whose ``_loglikelihood_tokens`` scores each group of requests with the same context tokens from one
        forward of that context, where that saves at least ``MIN_SAVED_TOKENS``. Other requests (a context of their
        own, a short one, or one too long for the model's window) take HFLM's batched path. Greedy generation lets
        finished rows leave the batch (``generation.generate_compacting``), at ``generation_batch_size`` rows a
        batch (default: ``batch_size``)."""

        def __init__(self, *args, generation_batch_size: int | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            self.generation_batch_size = generation_batch_size

        def generate_until(self, requests, disable_tqdm: bool = False):
            size = self.batch_size_per_gpu
            self.batch_size_per_gpu = self.generation_batch_size or size
            try:
                return super().generate_until(requests, disable_tqdm)
            finally:
                self.batch_size_per_gpu = size

        def _model_generate(self, context, max_length, stop, **generation_kwargs):
            # greedy with lm-eval's own arguments only (it passes temperature 0.0); anything else (beams, sampling,
            # a minimum length, a thinking marker that moves where stop strings apply) takes lm-eval's path
            plain = (set(generation_kwargs) <= {"attention_mask", "do_sample", "temperature"}
                     and "attention_mask" in generation_kwargs and not generation_kwargs.get("do_sample")
                     and not generation_kwargs.get("temperature") and self.think_end_token is None)
            if not plain or self.backend != "causal":
                return super()._model_generate(context, max_length, stop, **generation_kwargs)
            mask, width = generation_kwargs["attention_mask"], context.shape[1]

            def ended(rows: list[list[int]]) -> list[bool]:
                # a stop string in the text lm-eval will cut (decoded as it decodes): nothing after it is kept
                return [any(s and s in self.tok_decode(row) for s in stop) for row in rows]

            with torch.autocast(device_type=self.device.type, dtype=self.mixed_precision_dtype,
                                enabled=self.mixed_precision_dtype is not None):
                return generate_compacting(
                    self.model, context, mask, max_length - width, ended, self.tokenizer.pad_token_id,
                    stop_ids=stop_token_ids(self.tokenizer, stop))

        def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
            groups: dict[tuple[int, ...], list[int]] = {}
            for i, (_, context, _) in enumerate(requests):
                groups.setdefault(tuple(context), []).append(i)
            out: list[tuple[float, bool] | None] = [None] * len(requests)
            alone = []
            for context, members in groups.items():
                longest = max(len(requests[i][2]) for i in members)
                saved = (len(members) - 1) * len(context)
                if saved < MIN_SAVED_TOKENS or self.backend != "causal" or len(context) + longest > self.max_length:
                    alone += members
                    continue
                answers = self._shared_context(list(context), [requests[i][2] for i in members])
                for i, answer in zip(members, answers):
                    out[i] = answer
                    if requests[i][0] is not None:
                        self.cache_hook.add_partial("loglikelihood", requests[i][0], answer)
            if alone:
                scored = super()._loglikelihood_tokens([requests[i] for i in alone], disable_tqdm=True,
                                                       override_bs=override_bs)
                for i, answer in zip(alone, scored):
                    out[i] = answer
            return out

        def _shared_context(self, context: list[int], continuations: list[list[int]]) -> list[tuple[float, bool]]:
            """(sum of log p(continuation tokens | context), whether greedy decoding yields them) for each continuation:
            the context's last position predicts every option's first token; the rest run on its repeated cache."""
            device = self.device
            autocast = torch.autocast(device_type=device.type, dtype=self.mixed_precision_dtype,
                                      enabled=self.mixed_precision_dtype is not None)
            with torch.no_grad(), autocast:
                first = self.model(torch.tensor([context], device=device), use_cache=True, logits_to_keep=1)
                head = F.log_softmax(first.logits[0, -1], dim=-1, dtype=self.softmax_dtype)
                cache = first.past_key_values
                size = self.batch_size
                chunk = size if isinstance(size, int) and size > 0 else len(continuations)
                answers = []
                for start in range(0, len(continuations), chunk):
                    answers += self._continue(head, cache, continuations[start:start + chunk])
            return answers

        def _continue(self, head, cache, continuations) -> list[tuple[float, bool]]:
            """The options' tails on the repeated cache; runs inside ``_shared_context``'s no-grad and autocast (one
            autocast object entered twice restores the wrong state on exit and leaves bf16 on for the process)."""
            rest = max(len(c) for c in continuations) - 1
            tails = None
            if rest > 0:  # right-padded: a padded position comes after every real one, so no real token sees it
                rows = [c[:-1] + [c[-1]] * (rest - len(c) + 1) for c in continuations]
                batch = torch.tensor(rows, device=self.device)
                expanded = copy.deepcopy(cache)
                expanded.batch_repeat_interleave(len(continuations))
                tails = F.log_softmax(self.model(batch, past_key_values=expanded, use_cache=True).logits, dim=-1,
                                      dtype=self.softmax_dtype)
            answers = []
            for row, tokens in enumerate(continuations):
                logits = head[None] if tails is None else torch.cat([head[None], tails[row, :len(tokens) - 1]])
                target = torch.tensor(tokens, device=self.device)
                chosen = logits.gather(1, target[:, None]).squeeze(1)
                answers.append((float(chosen.sum()), bool((logits.argmax(-1) == target).all())))
            return answers

    return ContextOnceLM
