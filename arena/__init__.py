"""PEFT-Arena kit: what a finetuning method costs the model, not only what it teaches it.

Modules are named for what they hold (``profiles``, ``assets``, ``methods``, ``train``, ``evaluate``, ``spectra``,
``geometry``, ``rewind``). Importing ``arena`` is cheap: heavy libraries load inside the functions that need them.
"""

__version__ = "0.1.0"

import warnings as _warnings

# tqdm.auto (imported by lm-eval and peft) warns once per notebook kernel that ipywidgets is missing; the kit's bars
# are plain tqdm, throttled under papermill, so the warning is noise in every executed chapter.
_warnings.filterwarnings("ignore", message="IProgress not found")
