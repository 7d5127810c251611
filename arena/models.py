"""Loading base models: the smoke Llama built in code, the embedded SmolLM2 folder, and hub models, each in full
precision or in 4-bit NF4 (bitsandbytes, on CUDA or on its CPU kernels).

Every loader returns ``(model, tokenizer)`` with ``pad_token`` set and the model in eval mode, plus a stable identity
string (``model_identity``) that checkpoints and cached results are keyed by.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from .assets import cache_dir, set_offline, smollm2_dir, SMOLLM2_IDENTITY
from .errors import ArenaError
from .profiles import ModelSpec, Profile, SMOKE_MODEL

# The smoke model: small enough that a training step takes milliseconds, large enough for every adapter's block size.
SMOKE_CONFIG = dict(
    vocab_size=260,  # 256 bytes + 4 special tokens
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
    tie_word_embeddings=True,
)
SMOKE_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
# The ChatML template SmolLM2 uses, so smoke prompts have the same shape as embedded ones.
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def configure_torch() -> None:
    """CPU threading: on the 2-core reference machine one intra-op thread is 2-3x faster than two (measured:
    SmolLM2 decode step 84 ms vs 264 ms), so default to 1; ``ARENA_THREADS`` overrides. Flushing denormals avoids
    the slow path on the dequantised GGUF weights (a further ~30 %)."""
    import os

    import torch

    if not torch.cuda.is_available():
        torch.set_num_threads(int(os.environ.get("ARENA_THREADS", "1")))
        torch.set_flush_denormal(True)


def device() -> str:
    """``cuda`` when a CUDA device is present, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def bf16_compute(where=None) -> bool:
    """Whether training and evaluation compute in bf16: training autocasts over fp32 weights, evaluation scores a bf16
    copy (``evaluate``). On CUDA with bf16 support, as in the paper (A6; its vLLM evaluation also runs bf16), and on
    CPUs with bf16 instructions (AVX512-BF16 / AMX), where it measured ~1.9x faster forwards on SmolLM2
    (``ARENA_CPU_BF16=0`` turns it off)."""
    import os

    import torch

    kind = getattr(where, "type", where) or device()
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return os.environ.get("ARENA_CPU_BF16", "1") != "0" and _cpu_has_bf16()


@functools.cache
def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def compute_precision() -> str:
    """``bf16-weights`` (scored as a bf16 copy, autocast for the rest) or ``fp32``: part of every evaluation's cache
    key (they give slightly different scores)."""
    return "bf16-weights" if bf16_compute() else "fp32"


def release_memory() -> None:
    """Return freed tensors' memory now: a dropped model is garbage only once its reference cycles are collected, and
    CUDA's caching allocator keeps what it freed reserved unless asked, so the next model would not find it."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def resolve_quantization(profile: Profile) -> str | None:
    """``nf4`` or ``None``. ``auto`` means nf4 on CUDA and none on CPU (bitsandbytes' CPU kernels run nf4 there, but
    slower than full precision; ``quantization="nf4"`` asks for them)."""
    if profile.quantization == "auto":
        return "nf4" if device() == "cuda" else None
    return None if profile.quantization == "none" else profile.quantization


def model_identity(spec: ModelSpec) -> str:
    """A stable string naming the exact base weights; checkpoints record it and refuse other bases."""
    if spec.source == "smoke":
        digest = hashlib.sha256(json.dumps(SMOKE_CONFIG, sort_keys=True).encode()).hexdigest()[:12]
        return f"smoke-llama@{digest}-seed0"
    if spec.source == "embedded":
        return SMOLLM2_IDENTITY
    if spec.source == "architecture":
        return f"random:{spec.repo_id}@layers{spec.layers}-seed0"
    return f"{spec.repo_id}@{spec.revision or 'main'}"


def smoke_tokenizer():
    """A byte-level tokenizer built in code (no download): 256 byte tokens + ChatML specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SMOKE_SPECIALS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHATML
    return fast


def _smoke_config():
    from transformers import LlamaConfig

    return LlamaConfig(**SMOKE_CONFIG, eos_token_id=258, pad_token_id=258, bos_token_id=257)


def smoke_model(seed: int = 0):
    """A tiny random LlamaForCausalLM (same architecture family as SmolLM2 and Llama-3.2), seeded."""
    import torch
    from transformers import LlamaForCausalLM

    config = _smoke_config()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model


def load_base(spec: ModelSpec, quantization: str | None = None, dtype: str = "auto"):
    """``(model, tokenizer)`` for a base model, in eval mode.

    quantization: ``None`` or ``"nf4"`` (bitsandbytes 4-bit NF4, double quantisation, bf16 compute; on CUDA, or on
    the CPU through bitsandbytes' CPU kernels, which is several times slower than full precision there).
    dtype: ``auto`` = fp32 on CPU and bf16 on CUDA.
    """
    import torch

    configure_torch()
    if quantization not in (None, "nf4"):
        raise ArenaError(f"quantization must be nf4 or none, not {quantization!r}; set QUANT=nf4 or QUANT=none")
    torch_dtype = {"auto": torch.bfloat16 if torch.cuda.is_available() else torch.float32, "fp32": torch.float32,
                   "bf16": torch.bfloat16}[dtype]
    if spec.source == "smoke":
        if quantization:  # bitsandbytes quantises while loading: the smoke model goes through a folder like any other
            model, tokenizer = _from_pretrained(str(smoke_folder()), None, quantization, torch_dtype)
        else:
            model, tokenizer = smoke_model(), smoke_tokenizer()
            model.to(dtype=torch.float32)
    elif spec.source == "embedded":
        set_offline()
        model, tokenizer = _from_pretrained(str(smollm2_dir()), None, quantization, torch_dtype)
    elif spec.source == "hub":
        model, tokenizer = _from_pretrained(spec.repo_id, spec.revision, quantization, torch_dtype)
    elif spec.source == "architecture":  # a dry run: the real architecture, random weights, a stand-in tokenizer
        folder = random_base_folder(spec.repo_id, spec.layers)
        model, _ = _from_pretrained(str(folder), None, quantization, torch_dtype, tokenizer=False)
        tokenizer = smoke_tokenizer()
    else:
        raise ArenaError(f"unknown model source {spec.source!r}; use smoke, embedded, hub or architecture")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    model.config.arena_identity = model_identity(spec)
    return model, tokenizer


def smoke_folder() -> Path:
    """The smoke model and tokenizer saved once under the cache (``from_pretrained`` needs a folder to quantise)."""

    folder = cache_dir() / "smoke-base" / model_identity(SMOKE_MODEL).replace("@", "-")
    if not (folder / "DONE").exists():
        import shutil

        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        smoke_model().save_pretrained(tmp)
        smoke_tokenizer().save_pretrained(tmp)
        (tmp / "DONE").write_text("ok")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    return folder


def local_device_map() -> dict:
    """The whole model on this process's device: the CPU without CUDA (bitsandbytes' CPU kernels), else GPU 0, or
    GPU ``LOCAL_RANK`` under ``accelerate launch`` (a 4-bit model cannot be moved after loading, so each
    data-parallel process must load it onto its own device)."""
    import os

    if device() == "cpu":
        return {"": "cpu"}
    return {"": int(os.environ.get("LOCAL_RANK", "0"))}


def keep_4bit_layout(model) -> None:
    """Stop bitsandbytes' CPU inference path from repacking 4-bit weights in place on their first no-grad forward:
    the repacked weights round the block scales to bf16 (the weights change) and no longer dequantise correctly
    (measured: 145 % error), so W_start would be wrong for every analysis after a scoring pass. CUDA never repacks."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def bnb_config():
    """The 4-bit config of the GPU path: NF4, double quantisation, bf16 compute (QLoRA)."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def _from_pretrained(path: str, revision: str | None, quantization: str | None, torch_dtype, tokenizer: bool = True):
    """Load a folder or hub id (and its tokenizer unless ``tokenizer`` is False: a dry run's random base has none).
    Network and missing-file failures become one-line errors naming the fix."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"revision": revision, "dtype": torch_dtype}
    if quantization == "nf4":
        kwargs.update(quantization_config=bnb_config(), device_map=local_device_map())
    elif torch_dtype is not None and "cuda" == device():
        kwargs["device_map"] = local_device_map()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, revision=revision) if tokenizer else None
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        if quantization:
            keep_4bit_layout(model)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ArenaError(
            f"could not load {path!r} ({first}). Fix: for hub models run where the hub is reachable "
            f"(and log in for gated ones); for the embedded model delete the cache folder and rerun"
        ) from err
    return model, tokenizer


def parameter_count(p) -> int:
    """The number of weights a parameter holds: a bitsandbytes 4-bit weight stores two per byte, so its ``numel``
    is half the matrix; its quantisation state keeps the real shape."""
    state = getattr(p, "quant_state", None)
    return state.shape.numel() if state is not None else p.numel()


def count_parameters(model) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (a 4-bit matrix counts its real weights, not its packed bytes)."""
    trainable = sum(parameter_count(p) for p in model.parameters() if p.requires_grad)
    total = sum(parameter_count(p) for p in model.parameters())
    return trainable, total


# The paper's bases, from their public config.json files (book/definitions.md A1): enough to count parameters, match
# budgets and build same-shaped random models without the hub (benchmarks/train_throughput.py --architecture).
PUBLIC_CONFIGS = {
    "Qwen/Qwen2.5-7B": {
        "model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
        "num_attention_heads": 28, "num_key_value_heads": 4, "max_position_embeddings": 131072, "max_window_layers": 28,
        "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 131072, "use_sliding_window": False,
        "tie_word_embeddings": False, "vocab_size": 152064, "bos_token_id": 151643, "eos_token_id": 151643,
        "hidden_act": "silu", "torch_dtype": "bfloat16"},
    "meta-llama/Llama-3.2-3B-Instruct": {
        "model_type": "llama", "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 28,
        "num_attention_heads": 24, "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": True, "vocab_size": 128256,
        "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu",
        "torch_dtype": "bfloat16"},
}


def architecture_config(name: str, layers: int | None = None):
    """The transformers config of ``smoke`` or a PUBLIC_CONFIGS base, optionally cut to ``layers`` decoder layers
    (a dry run of the throughput benchmark on a small machine)."""
    from transformers import AutoConfig

    if name == "smoke":
        config = _smoke_config()
    elif name in PUBLIC_CONFIGS:
        values = dict(PUBLIC_CONFIGS[name])
        config = AutoConfig.for_model(values.pop("model_type"), **values)
    else:
        raise ArenaError(f"unknown architecture {name!r}; choose smoke or one of: {', '.join(PUBLIC_CONFIGS)}")
    if layers is not None:
        if layers < 1:
            raise ArenaError(f"layers must be a positive integer, not {layers}")
        config.num_hidden_layers = layers
        if hasattr(config, "max_window_layers"):
            config.max_window_layers = layers
        if getattr(config, "layer_types", None):
            config.layer_types = config.layer_types[:layers]
    return config


def random_base_folder(name: str, layers: int | None = None, seed: int = 0) -> Path:
    """A random model of architecture ``name`` (``layers`` decoder layers) written once as bf16 safetensors under the
    cache: what a dry run loads as its base and reads W0 from, like a downloaded checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM

    config = architecture_config(name, layers)
    slug = name.replace("/", "--")
    folder = cache_dir() / "random-bases" / f"{slug}-layers{config.num_hidden_layers}-seed{seed}"
    if not (folder / "model.safetensors.index.json").exists() and not (folder / "model.safetensors").exists():
        cuda = torch.cuda.is_available()
        tmp = folder.with_name(folder.name + ".tmp")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            with torch.device("cuda" if cuda else "cpu"):  # 7B random weights: seconds on a GPU, minutes on a CPU
                model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        model.save_pretrained(tmp)
        del model
        if cuda:
            torch.cuda.empty_cache()
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    return folder


def random_base(name: str, quantization: str | None = None, layers: int | None = None, seed: int = 0):
    """A randomly initialised model with the exact architecture ``name`` (no download): for measuring speed and memory
    at the paper's scale, never for results. Unquantised it is built in place (fp32 on CPU, bf16 on CUDA); for nf4 it
    is written once as bf16 safetensors under the cache and loaded back through ``from_pretrained`` with the kit's
    BitsAndBytesConfig, because bitsandbytes quantises while loading: the same path a real checkpoint takes."""
    import torch
    from transformers import AutoModelForCausalLM

    config = architecture_config(name, layers)
    if quantization not in (None, "nf4"):
        raise ArenaError(f"quantization must be nf4 or None, not {quantization!r}")
    cuda = torch.cuda.is_available()
    if quantization is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            with torch.device("cuda" if cuda else "cpu"):
                model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if cuda else torch.float32)
        return model.eval()

    folder = random_base_folder(name, layers, seed)
    model = AutoModelForCausalLM.from_pretrained(folder, quantization_config=bnb_config(), dtype=torch.bfloat16,
                                                 device_map=local_device_map())
    keep_4bit_layout(model)
    return model.eval()


def base_config(spec: ModelSpec):
    """The base's transformers config without loading its weights (budget matching counts on it). The paper's
    bases come from their public values (no hub needed); other hub models from the hub."""
    from transformers import AutoConfig

    if spec.source == "smoke":
        return _smoke_config()
    if spec.source == "embedded":
        return AutoConfig.from_pretrained(str(smollm2_dir()))
    if spec.source == "architecture":
        return architecture_config(spec.repo_id, spec.layers)
    if spec.repo_id in PUBLIC_CONFIGS:
        return architecture_config(spec.repo_id)
    return AutoConfig.from_pretrained(spec.repo_id, revision=spec.revision)
