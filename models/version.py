"""The installed vae-tui version; imports nothing heavy, so the CLI prints it without loading torch."""

from importlib.metadata import PackageNotFoundError, version


def package_version() -> str:
    """The installed vae-tui version, or '0+unknown' when run from a bare source tree."""
    try:
        return version("vae-tui")
    except PackageNotFoundError:
        return "0+unknown"
