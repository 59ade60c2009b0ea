"""`python -m vae_tui` runs the CLI."""

import sys

from vae_tui.cli import script

sys.exit(script())
