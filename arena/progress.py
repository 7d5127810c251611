"""Progress bars and log noise: tqdm throttled under papermill so executed notebooks stay readable."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings


def in_notebook() -> bool:
    return "ipykernel" in sys.modules


def progress(iterable=None, **kwargs):
    """tqdm that updates at most every 30 s inside a notebook (papermill stores every update) and normally in a shell."""
    from tqdm import tqdm  # not tqdm.auto: without ipywidgets it warns in every notebook

    if in_notebook() or os.environ.get("ARENA_QUIET"):
        kwargs.setdefault("mininterval", 30)
        kwargs.setdefault("file", sys.stderr)
    return tqdm(iterable, **kwargs)


@contextlib.contextmanager
def console_to_buffer():
    """Inside a notebook (or with ARENA_QUIET) capture stdout/stderr of noisy library calls; on failure, print the
    last lines so the cause stays visible."""
    if not (in_notebook() or os.environ.get("ARENA_QUIET")):
        yield
        return
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            yield
    except BaseException:
        sys.stderr.write("\n".join(buffer.getvalue().splitlines()[-40:]) + "\n")
        raise


def quiet_libraries() -> None:
    """Silence per-request logs and progress bars of lm-eval, transformers and datasets."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except ImportError:
        pass
    # bitsandbytes logs a missing optional CPU kernel package at import; peft warns that BOFT has no CUDA extension
    for name in ("lm-eval", "lm_eval", "absl", "datasets", "urllib3", "httpx", "huggingface_hub", "bitsandbytes"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    with warnings.catch_warnings():  # libraries import tqdm.auto, which warns once per kernel without ipywidgets
        warnings.simplefilter("ignore")
        import tqdm.auto  # noqa: F401
