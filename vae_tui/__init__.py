"""vae-tui: train VAEs and CVAEs and explore their latent space from a terminal."""

import os

# Textual paces screen updates at TEXTUAL_FPS (60 by default) and, after a frame that ran late, waits for the
# next slot but one: at 60 that wait is up to 33 ms between a key press and its frame. 120 halves it (the p95
# of bench/explorer_latency.py fell from about 40 to about 27 ms here). Read when Textual is first imported, so
# set here, before any of vae-tui imports it; a user's own setting wins.
os.environ.setdefault("TEXTUAL_FPS", "120")
