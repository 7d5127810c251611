"""What a profile needs in place before anything runs: hub access checked (``preflight``), its models fetched and
verified, its screen run, its evaluation suite written."""

from __future__ import annotations

from pathlib import Path

from .assets import set_offline, smollm2_dir
from .errors import ArenaError
from .paper_data import FILES, REPO
from .profiles import Profile
from .screen import run_screen
from .suite import build_suite


def ensure_assets(profile: Profile) -> None:
    """Fetch and verify what the profile needs (one-line ArenaError on failure; rebuilds corrupt caches)."""

    for spec in profile.models:
        if spec.source == "embedded":
            smollm2_dir()
    if not any(spec.source == "hub" for spec in profile.models):
        set_offline()  # the hub profiles (paper, onegpu) download their bases and stock datasets on first use
    if profile.screened:
        run_screen(profile)  # the base-only screen that chooses the suite's subtasks (once per screen folder)
    build_suite(profile)  # a stock-task profile's suite is only the general text of the CE proxy


HUB_TIMEOUT_S = 10.0  # per request: a hub that has not answered by then will not serve a 15 GB download either


def preflight(profile: Profile, timeout: float = HUB_TIMEOUT_S) -> list[str]:
    """Hub access for each hub base (its config.json at the pinned revision) and for the paper's SFT file, in seconds
    and before anything downloads: a gated base or a moved data file otherwise fails only when chapter 01 first
    loads or trains it, hours in. Returns one line per check; raises a one-line ArenaError naming the fix (log in,
    accept the licence, fix the revision, point train_file at a copy). Offline, a file already in the local cache
    passes. A dry run reads no hub and checks nothing."""
    if profile.dry_run or not any(spec.source == "hub" for spec in profile.models):
        return []
    lines = [_reach(spec.repo_id, "config.json", "model", spec.revision, f"base {spec.name}", timeout)
             for spec in profile.models if spec.source == "hub"]
    if profile.uses_stock_tasks:  # the hub profiles train on the paper's SFT file (runs.training_rows)
        local = profile.extra.get("train_file")
        if local:
            if not Path(local).expanduser().exists():
                raise ArenaError(f"training file {local} does not exist: fix profile extra train_file, or drop it to "
                                 f"read {REPO} from the hub")
            lines.append(f"training data: {local} (local file)")
        elif profile.domain not in FILES:
            raise ArenaError(f"unknown domain {profile.domain!r}; the paper's are {', '.join(FILES)}")
        else:
            lines.append(_reach(REPO, FILES[profile.domain], "dataset", None, "training data", timeout))
    return lines


def _reach(repo: str, filename: str, repo_type: str, revision: str | None, what: str, timeout: float) -> str:
    """One file's metadata from the hub (a HEAD request with the saved token), each refusal mapped to its fix."""
    from huggingface_hub import get_hf_file_metadata, get_token, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    page = f"https://huggingface.co/{'datasets/' if repo_type == 'dataset' else ''}{repo}"
    at = f" at revision {revision}" if revision else ""
    try:
        get_hf_file_metadata(hf_hub_url(repo, filename, repo_type=repo_type, revision=revision), timeout=timeout)
        return f"{what}: {repo}{at} reachable"
    except GatedRepoError:
        login = "" if get_token() else "log in (`hf auth login`, or set HF_TOKEN), then "
        raise ArenaError(f"{what} {repo} is gated and this machine has no access: {login}accept its licence at {page} "
                         "with that account and wait for the grant") from None
    except RepositoryNotFoundError:
        raise ArenaError(f"{what} {repo} is not on the hub, or is private to another account: fix the profile's "
                         f"repo id, or log in (`hf auth login`) with an account that can see {page}") from None
    except RevisionNotFoundError:
        raise ArenaError(f"{what} {repo} has no revision {revision!r}: fix the profile's revision") from None
    except EntryNotFoundError:
        fix = ("download the training file and pass its path as profile extra train_file" if repo_type == "dataset"
               else "fix the profile's repo id or revision")
        raise ArenaError(f"{what} {repo}{at} has no {filename}: {fix}") from None
    except Exception as err:  # no answer: the transport errors differ with huggingface_hub's HTTP client
        cached = try_to_load_from_cache(repo, filename, revision=revision, repo_type=repo_type)
        if isinstance(cached, str):
            return f"{what}: {repo}{at} from the local cache (the hub did not answer: {type(err).__name__})"
        raise ArenaError(f"cannot reach the hub for {what} {repo} ({type(err).__name__}) and it is not in the local "
                         "cache: run where https://huggingface.co answers (HF_ENDPOINT for a mirror), or copy the "
                         "hub cache here") from None
