"""The explorer's screens, one per file."""
