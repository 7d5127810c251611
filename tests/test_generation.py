"""Greedy generation with finished rows leaving the batch (arena/generation.py) gives one ``generate`` call's tokens."""

import torch

from arena.generation import eos_ids, generate_compacting
from arena.models import smoke_model, smoke_tokenizer

PROMPTS = ["Which is larger, seven or twelve?", "Name a colour.", "Count to five, slowly and with care, please.",
           "Hi", "Translate 'house' into French and explain the word's origin.", "2 + 2 ="]


def _batch(tokenizer):
    tokenizer.padding_side = "left"
    enc = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    return enc["input_ids"], enc["attention_mask"]


def _one_call(model, ids, mask, new, pad):
    with torch.no_grad():
        return model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, do_sample=False,
                              pad_token_id=pad)


def test_compacting_equals_one_generate_call_when_rows_end_on_eos():
    model, tokenizer = smoke_model().eval(), smoke_tokenizer()
    ids, mask = _batch(tokenizer)
    pad = tokenizer.pad_token_id
    plain = _one_call(model, ids, mask, 24, pad)[:, ids.shape[1]:]
    # an end-of-sequence id the random model does emit, early in some rows and not at all in others
    counts = torch.bincount(plain[:, :12].flatten())
    model.generation_config.eos_token_id = int(counts.argmax())
    expected = _one_call(model, ids, mask, 24, pad)
    ended_rows = [bool(model.generation_config.eos_token_id in row) for row in expected[:, ids.shape[1]:].tolist()]
    assert any(ended_rows), "the chosen id must end some row for the test to mean anything"
    with torch.no_grad():
        got = generate_compacting(model, ids, mask, 24, lambda rows: [False] * len(rows), pad, segment=5)
    assert got.shape[0] == expected.shape[0]
    width = max(got.shape[1], expected.shape[1])
    padded = [torch.nn.functional.pad(t, (0, width - t.shape[1]), value=pad) for t in (got, expected)]
    assert torch.equal(*padded)


def test_rows_that_end_by_stop_rule_keep_their_tokens_up_to_the_segment_and_the_rest_run_on():
    model, tokenizer = smoke_model().eval(), smoke_tokenizer()
    model.generation_config.eos_token_id = None
    ids, mask = _batch(tokenizer)
    pad = tokenizer.pad_token_id
    expected = _one_call(model, ids, mask, 20, pad)[:, ids.shape[1]:]
    stop_token = int(expected[0, 2])  # row 0 holds it within the first segment, so at least one row leaves early
    ended = lambda rows: [stop_token in row for row in rows]  # noqa: E731
    with torch.no_grad():
        got = generate_compacting(model, ids, mask, 20, ended, pad, segment=4)[:, ids.shape[1]:]
    left = 0
    for row, want in zip(got.tolist(), expected.tolist()):
        first = next((i for i, t in enumerate(want) if t == stop_token), None)
        if first is None:
            assert row == want  # never stopped: every token of the one-call path
        else:
            cut = (first // 4 + 1) * 4  # it leaves at the end of the segment holding the stop token
            assert row[:cut] == want[:cut] and set(row[cut:]) <= {pad}
            left += cut < 20
    assert left >= 1


def test_eos_ids_reads_the_generation_config():
    model = smoke_model()
    model.generation_config.eos_token_id = [3, 5]
    assert eos_ids(model) == {3, 5}
    model.generation_config.eos_token_id = None
    assert eos_ids(model) == set()


def test_kit_scorer_generates_what_lm_eval_generates():
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from arena.context_once import ContextOnceLM

    model, tokenizer = smoke_model().eval(), smoke_tokenizer()
    reference = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=6)
    kit = ContextOnceLM(pretrained=model, tokenizer=tokenizer, batch_size=2, generation_batch_size=4)

    def requests(until):
        return [Instance(request_type="generate_until", doc={}, idx=i,
                         arguments=(p, {"until": until, "max_gen_toks": 20, "do_sample": False}))
                for i, p in enumerate(PROMPTS)]

    free = reference.generate_until(requests([]), disable_tqdm=True)
    stop = next(text[4:7] for text in free if len(text) > 8)  # a string some answers hold part-way
    expected = reference.generate_until(requests([stop]), disable_tqdm=True)
    assert kit.generate_until(requests([stop]), disable_tqdm=True) == expected
    assert any(len(e) < len(f) for e, f in zip(expected, free))  # the stop string cut at least one answer
    assert kit.batch_size == 2  # the generation batch size is put back for log-likelihood requests
