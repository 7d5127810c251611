"""What a profile needs in place before anything runs: its models fetched and verified, its evaluation suite written."""

from __future__ import annotations

from .assets import set_offline, smollm2_dir
from .profiles import Profile
from .suite import build_suite


def ensure_assets(profile: Profile) -> None:
    """Fetch and verify what the profile needs (one-line ArenaError on failure; rebuilds corrupt caches)."""

    for spec in profile.models:
        if spec.source == "embedded":
            smollm2_dir()
    if profile.name != "paper":
        set_offline()
        build_suite(profile)
