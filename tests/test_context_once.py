"""The context-once multiple-choice scorer (arena/context_once.py) gives lm-eval HFLM's log-likelihoods."""

import pytest
import torch

from arena.models import smoke_model, smoke_tokenizer


def _lms(model):
    from lm_eval.models.huggingface import HFLM

    from arena.context_once import ContextOnceLM

    tokenizer = smoke_tokenizer()
    return (HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4),
            ContextOnceLM(pretrained=model, tokenizer=tokenizer, batch_size=4))


def _requests():
    from lm_eval.api.instance import Instance

    pairs = [("Which is larger? Options: seven, twelve, one hundred and three.\nAnswer:", option)
             for option in (" seven", " twelve", " one hundred and three", " 4", " (A)", "7")]
    pairs += [("Is the sky blue?\nAnswer:", option) for option in (" Yes", " No")]
    pairs += [("A question asked once.\nAnswer:", " a long free-form answer of several tokens")]
    return [Instance(request_type="loglikelihood", doc={}, arguments=pair, idx=i) for i, pair in enumerate(pairs)]


@pytest.mark.parametrize("batch", [4, 1])
def test_context_once_equals_lm_eval_loglikelihoods_on_the_smoke_model(batch):
    reference, fast = _lms(smoke_model().eval())
    fast.batch_size_per_gpu = batch
    expected = reference.loglikelihood(_requests(), disable_tqdm=True)
    got = fast.loglikelihood(_requests(), disable_tqdm=True)
    assert len(got) == len(expected)
    for (ll, greedy), (ll_ref, greedy_ref) in zip(got, expected):
        assert ll == pytest.approx(ll_ref, abs=1e-4)
        assert greedy == greedy_ref


def test_context_once_runs_the_context_once_per_group(monkeypatch):
    from arena import context_once

    monkeypatch.setattr(context_once, "MIN_SAVED_TOKENS", 0)  # every shared context, however short
    model = smoke_model().eval()
    _, fast = _lms(model)
    lengths = []
    hook = model.register_forward_pre_hook(lambda module, args, kwargs: lengths.append(kwargs["input_ids"].shape
                                                                                      if "input_ids" in kwargs
                                                                                      else args[0].shape),
                                           with_kwargs=True)
    try:
        fast.batch_size_per_gpu = 8
        fast.loglikelihood(_requests()[:8], disable_tqdm=True)
    finally:
        hook.remove()
    # two shared contexts (6 and 2 options): one forward of each context, one batched forward of its options' tails
    assert [shape[0] for shape in lengths] == [1, 6, 1, 2]


def test_context_once_through_a_peft_adapter():
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(smoke_model(), LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    reference, fast = _lms(model.eval())
    for (ll, _), (ll_ref, _) in zip(fast.loglikelihood(_requests(), disable_tqdm=True),
                                    reference.loglikelihood(_requests(), disable_tqdm=True)):
        assert ll == pytest.approx(ll_ref, abs=1e-4)


def test_a_short_shared_context_keeps_hflms_batched_path():
    """The yes/no group saves one 24-byte context: below MIN_SAVED_TOKENS, it goes with the lone request through
    HFLM's batch (one forward of three sequences) instead of two forwards of its own."""
    model = smoke_model().eval()
    _, fast = _lms(model)
    shapes = []
    hook = model.register_forward_pre_hook(lambda module, args, kwargs: shapes.append(
        (kwargs["input_ids"] if "input_ids" in kwargs else args[0]).shape), with_kwargs=True)
    try:
        fast.loglikelihood(_requests()[6:], disable_tqdm=True)
    finally:
        hook.remove()
    assert [shape[0] for shape in shapes] == [3]


def test_scoring_in_bf16_leaves_autocast_off():
    """A bf16 scoring pass must not leave autocast on for the rest of the process (the analyses and training that
    follow in the same worker would silently run in bf16)."""
    from arena.context_once import ContextOnceLM

    fast = ContextOnceLM(pretrained=smoke_model().eval(), tokenizer=smoke_tokenizer(), batch_size=4,
                         mixed_precision_dtype=torch.bfloat16)
    fast.loglikelihood(_requests(), disable_tqdm=True)
    assert not torch.is_autocast_enabled("cpu")
    assert (torch.ones(2) @ torch.ones(2)).dtype == torch.float32
