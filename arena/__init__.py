"""PEFT-Arena kit: what a finetuning method costs the model, not only what it teaches it.

Modules are named for what they hold, and imports flow one way, from pure maths up to reports. A module imports only
from its own layer or the layers below it (``tests/test_layers.py`` fails on an upward import or a circle)::

    7 reports        report  robustness_report  verdicts  card  charts
                        ^
    6 orchestration  benchmark  robustness  export  plan  __main__    (many runs, workers, the cost plan, the CLI)
                        ^
    5 analyses       weight_analysis  activation_analysis  rewind
                        ^
    4 cached runs    keys  runs  screen  pipeline         (every store key; base and method runs stored, loaded back;
                                                          the base-only screen; what a profile needs before it runs)
                        ^
    3 train, score   train  evaluate  context_once  generation  vllm_backend  forgetting
                        ^
    2 models         models  methods/  budget  updates
                        ^
    1 setup, data    profiles  assets  distributed  provenance  store  suite  groups  domains  paper_data  scores
                     stock_fixtures  tasks/                    (the suite's files; its screened groups; a domain)
                        ^
    0 pure maths,    tensors  spectra  geometry  oft_path  stats  errors  progress  offline_nltk  processes
      generators     wordproblems  arithmetic  reasoning  facts  prose  itemfiles   (seeded items, fact tables, prose)

Importing ``arena`` is cheap: heavy libraries load inside the functions that need them. The definitions every
module implements are in the book's Definitions page (``book/definitions.md``).
"""

__version__ = "0.1.0"

import warnings as _warnings

# The layer of every module (the diagram above), read by tests/test_layers.py.
LAYERS = {
    0: ("tensors", "spectra", "geometry", "oft_path", "stats", "wordproblems", "errors", "progress", "offline_nltk",
        "processes", "arithmetic", "reasoning", "facts", "prose", "itemfiles"),
    1: ("profiles", "assets", "distributed", "provenance", "store", "suite", "groups", "domains", "paper_data",
        "scores", "stock_fixtures", "tasks.utils"),
    2: ("models", "methods", "methods.registry", "methods.init", "methods.builtin", "methods.quantized", "budget",
        "updates"),
    3: ("train", "evaluate", "context_once", "generation", "vllm_backend", "forgetting"),
    4: ("keys", "runs", "screen", "pipeline"),
    5: ("weight_analysis", "activation_analysis", "rewind"),
    6: ("benchmark", "robustness", "export", "plan", "__main__"),
    7: ("report", "robustness_report", "card", "charts", "verdicts"),
}

# tqdm.auto (imported by lm-eval and peft) warns once per notebook kernel that ipywidgets is missing; the kit's bars
# are plain tqdm, throttled under papermill, so the warning is noise in every executed chapter.
_warnings.filterwarnings("ignore", message="IProgress not found")
