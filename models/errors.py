"""The one error type for what the user did wrong or must fix."""

from models.text import printable


class UserError(Exception):
    """A problem the user can fix; the CLI prints its message on one line and exits 1."""

    def __str__(self) -> str:
        # messages quote paths, flags and names from files: shown, never obeyed by the terminal
        return printable(super().__str__())


class CheckpointError(UserError):
    """A checkpoint file is missing, damaged, foreign or does not match what was asked."""


class DataError(UserError):
    """Dataset files are missing, damaged or unreadable."""
