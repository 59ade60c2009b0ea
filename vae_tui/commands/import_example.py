"""`vae-tui import-example`: a VAE trained with the PyTorch example (pytorch/examples, vae/main.py) as a checkpoint."""

import argparse
import shlex
import sys
from pathlib import Path

from models.errors import UserError
from models.names import DATASET_NAMES
from models.text import printable
from vae_tui.commands import Commands, add_device_and_data_flags, refuse_to_replace, threads_for_load


def add_parser(commands: Commands) -> None:
    """The `import-example` sub-command and its flags."""
    parser = commands.add_parser(
        "import-example",
        help="turn a state dict saved by the PyTorch example's VAE into a vae-tui checkpoint",
        description="Read a state dict that pytorch/examples' vae/main.py saved (torch.save(model.state_dict(), F);"
        " layers fc1, fc21, fc22, fc3, fc4, sizes taken from their shapes) with torch.load(weights_only=True),"
        " which never runs code from the file, and write it as a vae-tui checkpoint. When the dataset is found,"
        " the checkpoint also gets the class centroids (the explorer's class keys) and the test loss.",
    )
    parser.add_argument("state_dict", metavar="STATE_DICT", help="the file torch.save wrote")
    parser.add_argument(
        "--dataset", choices=DATASET_NAMES, required=True, help="what the model was trained on (its class names)"
    )
    parser.add_argument("-o", "--out", metavar="OUT", required=True, help="the checkpoint to write (.safetensors)")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    add_device_and_data_flags(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Import; return the exit status."""
    import torch

    from models import Checkpoint, DataError, save_checkpoint
    from models.example import check_encodings, model_from_example
    from train.atlas import build_atlas
    from train.data import CLASS_NAMES, load_dataset
    from train.device import resolve_device, to_device_images
    from train.evaluate import class_centroids, evaluate_with_encodings

    out = Path(args.out)
    refuse_to_replace(out, args.force)
    if not out.parent.is_dir():
        raise UserError(f"-o {printable(str(out))}: the folder {printable(str(out.parent))} does not exist")
    model = model_from_example(Path(args.state_dict))
    config, class_names = model.config, CLASS_NAMES[args.dataset]
    centroids, metrics, atlas = torch.zeros(config.num_classes, config.latent_dim), {}, None
    try:
        data = load_dataset(args.dataset, args.data_dir, args.download)
    except DataError as e:
        if args.data_dir or args.download:  # asked for, and not there: the user wants to know
            raise
        print(
            f"{e}.\nWithout it the checkpoint has no class centroids (in the explorer, every class key goes to z = 0),"
            " no test loss and no atlas (the map and the test images); run import-example again with the data.",
            file=sys.stderr,
        )
    else:
        device = resolve_device(args.device)
        model.to(device)
        if note := threads_for_load(args):  # the centroids and the atlas encode both splits
            print(f"vae-tui import-example: {note}", file=sys.stderr)
        train_x, test_x = to_device_images(data.train.images, device), to_device_images(data.test.images, device)
        train_y, test_y = data.train.labels.to(device), data.test.labels.to(device)
        centroids = class_centroids(model, train_x, train_y, config.num_classes)
        test_loss, reconstruction, kl, mu, kl_per_dim = evaluate_with_encodings(model, test_x, test_y, seed=1)
        metrics = {"test_loss": test_loss, "test_reconstruction": reconstruction, "test_kl": kl}  # seed: train's + 1
        atlas = build_atlas(mu, kl_per_dim, data.test.images, data.test.labels, model, test_x)
        check_encodings(centroids, atlas, Path(args.state_dict))
    checkpoint = Checkpoint(
        model=model,
        dataset=args.dataset,
        class_names=class_names,
        epoch=0,
        class_centroids=centroids,
        metrics=metrics,
        training={"imported_from": "pytorch/examples vae/main.py", "file": printable(str(args.state_dict))},
        atlas=atlas,
    )
    try:
        save_checkpoint(out, checkpoint)
    except OSError as e:
        raise UserError(f"cannot write {printable(str(out))}: {e.strerror or e}") from None
    loss = f", test loss {metrics['test_loss']:.2f}" if metrics else ""
    shown = printable(str(out))  # a name from the command line: its escape codes are shown, not obeyed
    print(f"Imported a VAE 784-{config.hidden_dim}-{config.latent_dim} ({args.dataset}{loss}) into:\n  {shown}")
    print(f"Explore it with:\n  vae-tui explore {shlex.quote(shown)}")
    return 0
