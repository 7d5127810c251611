"""The hub preflight (``python -m arena assets --preflight-only``; plain ``assets`` runs it first): every hub base and
the paper's SFT file are checked in seconds against a mocked hub, and each refusal is one line naming its fix. A dry
run reads no hub and checks nothing."""

import huggingface_hub
import pytest
from huggingface_hub.errors import GatedRepoError, RemoteEntryNotFoundError, RepositoryNotFoundError

import arena.__main__ as cli
from arena.errors import ArenaError
from arena.paper_data import FILES, REPO
from arena.pipeline import preflight
from arena.profiles import get_profile

LLAMA = "meta-llama/Llama-3.2-3B-Instruct"


def _refusal(cls, message="refused"):
    """A hub error as huggingface_hub raises it, without the HTTP response it would carry."""
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    return err


@pytest.fixture
def hub(monkeypatch):
    """A mocked hub: ``hub.refuse[repo] = error`` makes requests for that repo fail; ``hub.urls`` records requests."""

    class Hub:
        urls: list[str] = []
        refuse: dict = {}
        cached: set = set()
        token: str | None = None

    def metadata(url, timeout=None, **_):
        assert timeout is not None and timeout <= 30  # seconds, not a download
        Hub.urls.append(url)
        for repo, err in Hub.refuse.items():
            if f"/{repo}/" in url:
                raise err
        return object()

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", metadata)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: Hub.token)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache",
                        lambda repo, filename, **_: f"/cache/{repo}/{filename}" if repo in Hub.cached else None)
    return Hub


def test_every_base_and_the_training_file_are_checked(hub):
    lines = preflight(get_profile("onegpu"))
    assert len(lines) == 3 and all("reachable" in line for line in lines)
    assert any("Qwen/Qwen2.5-7B/" in u and u.endswith("config.json") for u in hub.urls)
    assert any(f"{LLAMA}/" in u and u.endswith("config.json") for u in hub.urls)
    assert any(f"datasets/{REPO}/" in u and u.endswith(FILES["math"]) for u in hub.urls)


@pytest.mark.parametrize("token", [None, "hf_xxx"])
def test_a_gated_base_says_log_in_and_accept_the_licence(hub, token):
    hub.token = token
    hub.refuse[LLAMA] = _refusal(GatedRepoError, "401 Client Error: access to model is restricted")
    with pytest.raises(ArenaError) as err:
        preflight(get_profile("onegpu"))
    message = str(err.value)
    assert "\n" not in message and LLAMA in message
    assert f"accept its licence at https://huggingface.co/{LLAMA}" in message
    assert ("hf auth login" in message) == (token is None)  # logged in already: the licence is what is missing


def test_a_missing_repo_and_a_moved_data_file_name_their_fix(hub):
    hub.refuse["Qwen/Qwen2.5-7B"] = _refusal(RepositoryNotFoundError)
    with pytest.raises(ArenaError, match="fix the profile's repo id") as err:
        preflight(get_profile("onegpu"))
    assert "\n" not in str(err.value)
    hub.refuse.clear()
    hub.refuse[REPO] = _refusal(RemoteEntryNotFoundError)
    with pytest.raises(ArenaError, match=f"{REPO} has no {FILES['math']}: .*train_file"):
        preflight(get_profile("onegpu"))


def test_no_network_fails_unless_the_local_cache_has_the_files(hub):
    for repo in ("Qwen/Qwen2.5-7B", LLAMA, REPO):
        hub.refuse[repo] = ConnectionError("Failed to resolve 'huggingface.co'")
    with pytest.raises(ArenaError, match="cannot reach the hub .* not in the local cache"):
        preflight(get_profile("onegpu"))
    hub.cached |= {"Qwen/Qwen2.5-7B", LLAMA, REPO}
    assert all("local cache" in line for line in preflight(get_profile("onegpu")))


def test_a_local_training_file_is_checked_on_disk(hub, tmp_path):
    with pytest.raises(ArenaError, match="does not exist"):
        preflight(get_profile("onegpu", extra={"train_file": str(tmp_path / "missing.parquet")}))
    (tmp_path / "sft.parquet").write_bytes(b"")
    assert preflight(get_profile("onegpu", extra={"train_file": str(tmp_path / "sft.parquet")}))[-1].endswith(
        "(local file)")
    assert not any(f"datasets/{REPO}/" in u for u in hub.urls)


def test_the_assets_verb_runs_the_preflight_before_anything_downloads(hub, monkeypatch, capsys):
    events = []
    monkeypatch.setattr(cli, "ensure_assets", lambda profile: events.append(("assets", len(hub.urls))))
    assert cli.main(["assets", "--profile", "onegpu", "--preflight-only"]) == 0
    assert events == [] and len(hub.urls) == 3
    assert cli.main(["assets", "--profile", "onegpu"]) == 0
    assert events == [("assets", 6)]  # the three checks came first
    hub.refuse[LLAMA] = _refusal(GatedRepoError)
    capsys.readouterr()
    assert cli.main(["assets", "--profile", "onegpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "licence" in err[0]
    assert len(events) == 1  # nothing fetched after a refusal


def test_a_dry_run_checks_no_hub(hub, monkeypatch):
    monkeypatch.setattr(cli, "ensure_assets", lambda profile: None)
    hub.refuse |= {r: AssertionError("a dry run must not reach the hub") for r in ("Qwen", "meta-llama", REPO)}
    assert preflight(get_profile("onegpu", dry_run=True)) == []
    assert preflight(get_profile("embedded")) == []
    assert cli.main(["assets", "--profile", "onegpu", "--dry-run", "--preflight-only"]) == 0
    assert cli.main(["assets", "--profile", "onegpu", "--dry-run"]) == 0
    assert hub.urls == []
