"""A chat-template task's answer ends where the template ends a turn, not only at the tokenizer's end of sequence.

The two hub bases are built here from files in their configs' schema (no hub): tokenizer_config.json with the real
chat template (``tests/fixtures/chat_templates``), eos_token and special tokens, and generation_config.json with
eos_token_id, over a byte-level vocabulary (so ids differ from the real ones, which the comments give):

- Qwen/Qwen2.5-7B (base): eos_token ``<|endoftext|>`` (151643), generation eos_token_id 151643; its template closes
  every turn with ``<|im_end|>`` (151645), which is neither;
- meta-llama/Llama-3.2-3B-Instruct: eos_token ``<|eot_id|>`` (128009), generation eos_token_id
  [128001, 128008, 128009] (``<|end_of_text|>``, ``<|eom_id|>``, ``<|eot_id|>``); its template closes a turn with
  ``<|eot_id|>``.
"""

import json
from pathlib import Path

import pytest
import torch

from arena.evaluate import hf_language_model, run_tasks
from arena.models import smoke_model

TEMPLATES = Path(__file__).parent / "fixtures" / "chat_templates"

BASES = {
    "Qwen/Qwen2.5-7B": {
        "specials": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        "tokenizer_config": {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "bos_token": None,
                             "template": "qwen2.5.jinja"},
        "generation_eos": ["<|endoftext|>"],
        "turn_end": "<|im_end|>",
    },
    "meta-llama/Llama-3.2-3B-Instruct": {
        "specials": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                     "<|eom_id|>", "<|eot_id|>"],
        "tokenizer_config": {"eos_token": "<|eot_id|>", "bos_token": "<|begin_of_text|>", "pad_token": None,
                             "template": "llama-3.2-instruct.jinja"},
        "generation_eos": ["<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"],
        "turn_end": "<|eot_id|>",
    },
}


def hub_like(folder: Path, base: str):
    """(tokenizer, generation config) of ``base``, loaded by transformers from files written in the hub's schema."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import AutoTokenizer, GenerationConfig

    spec = BASES[base]
    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(spec["specials"])
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    config = {k: v for k, v in spec["tokenizer_config"].items() if k != "template"}
    config |= {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 131072,
               "chat_template": (TEMPLATES / spec["tokenizer_config"]["template"]).read_text()}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    ids = [tok.token_to_id(t) for t in spec["generation_eos"]]
    (folder / "generation_config.json").write_text(json.dumps(
        {"eos_token_id": ids[0] if len(ids) == 1 else ids, "do_sample": False, "transformers_version": "4.45.0"}))
    return AutoTokenizer.from_pretrained(str(folder)), GenerationConfig.from_pretrained(str(folder))


@pytest.mark.parametrize("base", list(BASES))
def test_the_chat_tasks_stop_set_holds_the_templates_end_of_turn(tmp_path, base):
    from arena.evaluate import chat_stops
    from arena.generation import stop_token_ids, turn_end

    tokenizer, generation = hub_like(tmp_path / "base", base)
    end = BASES[base]["turn_end"]
    assert turn_end(tokenizer) == end
    stops = chat_stops(tokenizer, generation)
    assert end in stops and tokenizer.eos_token in stops
    assert set(tokenizer.convert_ids_to_tokens(
        [generation.eos_token_id] if isinstance(generation.eos_token_id, int) else generation.eos_token_id)) <= set(stops)
    # decoded answers drop special tokens, so the turn's end must stop a row by its id
    assert tokenizer.convert_tokens_to_ids(end) in stop_token_ids(tokenizer, stops)


def test_a_tokenizer_without_a_template_adds_no_turn_end():
    from arena.generation import turn_end
    from arena.models import smoke_tokenizer

    tokenizer = smoke_tokenizer()
    tokenizer.chat_template = None
    assert turn_end(tokenizer) is None


def _forcing(model, plan: dict[int, int]):
    """Make the model's n-th logits call (1: the prompt's) pick token ``plan[n]``, leaving the others alone."""
    calls = {"n": 0}

    def hook(module, inputs, output):
        calls["n"] += 1
        if calls["n"] in plan:
            output = output.clone()
            output[..., plan[calls["n"]]] += 1e4
        return output

    return model.lm_head.register_forward_hook(hook)


def test_a_qwen_base_answer_to_a_chat_task_ends_at_im_end(tmp_path, monkeypatch):
    """IFEval through the kit's scorer on a Qwen2.5-base-like tokenizer: the model says "OK", closes its turn with
    <|im_end|> and would then ramble on; the scored answer is "OK". Before, <|im_end|> (not the base's EOS) ended
    nothing, and the answer ran to the task's token cap."""
    import lm_eval

    tokenizer, generation = hub_like(tmp_path / "qwen", "Qwen/Qwen2.5-7B")
    model = smoke_model().eval()
    model.resize_token_embeddings(len(tokenizer))
    model.generation_config = generation
    O, K = (tokenizer.convert_tokens_to_ids(c) for c in "OK")
    _forcing(model, {1: O, 2: K, 3: tokenizer.convert_tokens_to_ids("<|im_end|>")})
    data = tmp_path / "suite"
    data.mkdir()
    (data / "ifeval.jsonl").write_text(json.dumps(
        {"key": 1, "prompt": "Answer with one word.", "instruction_id_list": ["punctuation:no_comma"],
         "kwargs": [{}]}) + "\n")
    answers = []
    real = lm_eval.simple_evaluate

    def recording(*args, **kwargs):
        out = real(*args, **kwargs)
        answers.extend(s["filtered_resps"][0] for samples in out["samples"].values() for s in samples)
        return out

    monkeypatch.setattr(lm_eval, "simple_evaluate", recording)
    lm = hf_language_model(model, tokenizer, batch_size=1, bf16=False)
    with torch.no_grad():
        items = run_tasks(lm, tokenizer, ["arena_ifeval"], data, chat=True)
    assert answers == ["OK"], answers
    assert items["arena_ifeval"] == [1.0]
    assert "generate_until" not in lm.__dict__  # the stop strings were added for this call only
