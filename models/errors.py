"""The one error type for what the user did wrong or must fix."""


class UserError(Exception):
    """A problem the user can fix; the CLI prints its message on one line and exits 1."""


class CheckpointError(UserError):
    """A checkpoint file is missing, damaged, foreign or does not match what was asked."""


class DataError(UserError):
    """Dataset files are missing, damaged or unreadable."""
