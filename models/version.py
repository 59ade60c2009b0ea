"""The installed vae-tui version; imports nothing heavy, so the CLI prints it without loading torch."""

from functools import cache
from importlib.metadata import PackageNotFoundError, version


@cache  # reading the installed metadata takes about 1 ms; each checkpoint written records it
def package_version() -> str:
    """The installed vae-tui version, or '0+unknown' when run from a bare source tree."""
    try:
        return version("vae-tui")
    except PackageNotFoundError:
        return "0+unknown"
