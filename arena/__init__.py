"""PEFT-Arena kit: what a finetuning method costs the model, not only what it teaches it.

Modules are named for what they hold (``profiles``, ``assets``, ``methods``, ``train``, ``evaluate``, ``spectra``,
``geometry``, ``rewind``). Importing ``arena`` is cheap: heavy libraries load inside the functions that need them.
"""

__version__ = "0.1.0"
