"""What a profile needs in place before anything runs: its models fetched and verified, its screen run, its evaluation
suite written."""

from __future__ import annotations

from .assets import set_offline, smollm2_dir
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
