"""vae-tui: train VAEs and CVAEs and explore their latent space from a terminal."""
