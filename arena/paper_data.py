"""The paper's training data (book/definitions.md A2), for the ``paper`` profile: SFT parquet files whose rows hold the
prompt in ``extra_info.question`` and the response in ``extra_info.answer`` (the release's ``train_sft.sh``).

The files come from the hub dataset ``SphereLab/PEFTArena-data`` at the release's paths, or from a local copy
(``profile.extra["train_file"]``); either way the rows are checked against that schema before training starts.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ArenaError

REPO = "SphereLab/PEFTArena-data"
# The release's layout (data/<set>/{train,test}.parquet); medical follows the same pattern [I].
FILES = {"math": "openr1-50k/train.parquet", "medical": "med-23k/train.parquet"}


def sft_rows(records) -> list[dict]:
    """``[{"question", "answer"}]`` from parquet records (dicts) in the release's schema; an ArenaError names what
    is missing."""
    rows = []
    for i, record in enumerate(records):
        info = record.get("extra_info") if isinstance(record, dict) else None
        if not isinstance(info, dict) or not info.get("question") or not info.get("answer"):
            keys = sorted(record) if isinstance(record, dict) else record
            raise ArenaError(f"training row {i} lacks extra_info.question / extra_info.answer (the paper's SFT schema, "
                             f"book/definitions.md A2); its keys are {keys}")
        rows.append({"question": str(info["question"]), "answer": str(info["answer"])})
    if not rows:
        raise ArenaError("the training file has no rows")
    return rows


def training_file(domain: str, local: str | None = None, revision: str | None = None) -> Path:
    """A local parquet file of the domain's training set: ``local`` if given, else downloaded from the hub."""
    if local:
        path = Path(local).expanduser()
        if not path.exists():
            raise ArenaError(f"training file {path} does not exist (profile extra train_file)")
        return path
    if domain not in FILES:
        raise ArenaError(f"unknown domain {domain!r}; the paper's are {', '.join(FILES)}")
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(REPO, FILES[domain], repo_type="dataset", revision=revision))
    except Exception as err:  # offline, gated or moved: say where it was looked for and how to point elsewhere
        raise ArenaError(f"cannot fetch {REPO}/{FILES[domain]} ({type(err).__name__}); download it and pass its path "
                         "as profile extra train_file") from None


def load_training_rows(domain: str, local: str | None = None, limit: int | None = None) -> list[dict]:
    """The paper's SFT rows for ``domain`` (first ``limit`` rows if given), schema-checked."""
    import pandas as pd

    frame = pd.read_parquet(training_file(domain, local))
    records = frame.head(limit).to_dict("records") if limit else frame.to_dict("records")
    return sft_rows(records)
