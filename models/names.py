"""Names and constants that the command line's --help, the runs listing and the checkpoint reader share.

Torch-free, so that `vae-tui --help` and `vae-tui runs` use them without importing torch; each is defined here only.
"""

MODEL_KINDS = ("vae", "cvae")
ARCHS = ("mlp", "conv")  # mlp: the demo's 784-400-20; conv: models/conv.py
OUTSIDE_ARCH = "outside"  # a model written elsewhere (explore --code, models/outside.py): never in a checkpoint
DATASET_NAMES = ("fashion-mnist", "mnist")
FOLDER_PREFIX = "folder:"  # a dataset read from an image folder (train --data DIR) is named "folder:DIR's name"
MAX_FOLDER_NAME = 64  # characters of that name kept
LR_SCHEDULES = ("constant", "cosine")
METADATA_KEY = "vae_tui"  # the safetensors metadata entry holding a checkpoint's JSON
MAX_HEADER_BYTES = 1 << 20  # our headers are a few KB; anything near this is not ours
# Burda et al. (2016): a latent unit is active if Var_x[E_q(z|x) z_d] > 0.01; eval reports, the explorer dims by it
ACTIVE_VARIANCE = 0.01
# How training lays out reconst-N.png and sample-N.png (train/writes.py): cells of 28 px padded by 2, scaled by 2.
GRID_PAD, GRID_SCALE = 2, 2
