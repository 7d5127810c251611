"""One exception type for mistakes a user can fix. Its message is one line and names the fix."""


class ArenaError(RuntimeError):
    """A user-facing error: bad input, missing or corrupt assets, no network. ``str(err)`` names the fix."""
