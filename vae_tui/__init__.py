"""vae-tui: train VAEs and CVAEs and explore their latent space from a terminal."""

import os

# Textual paces screen updates at TEXTUAL_FPS (60 by default) and, after a frame that ran late, waits for the
# next slot but one: at 60 that wait is up to 33 ms between a key press and its frame. 120 halves it (here,
# two runs each of bench/explorer_latency.py: a key press's p95 41-42 ms at 60, 31 ms at 120). Textual reads
# it when first imported, so it is set here, before vae-tui imports Textual; a user's own setting wins.
os.environ.setdefault("TEXTUAL_FPS", "120")
