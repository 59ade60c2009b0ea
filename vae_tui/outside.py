"""Models written elsewhere: `--code FILE.py:FUNC` (or `package.module:FUNC`) and the flags that describe them.

`--code` runs the named file: that is the user's explicit choice, and --help says so. FUNC() returns the model with
its weights loaded by the user's own code; models/outside.py wraps it. Everything that can go wrong on the way is
one line naming it (no file, a syntax error, no FUNC, FUNC raising); --debug shows the user's own traceback.
"""

import argparse
import importlib
import importlib.util
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from models.errors import UserError
from models.limits import MAX_SIZE
from models.text import printable
from vae_tui.commands import bounded_int

if TYPE_CHECKING:
    from models import Checkpoint
    from models.outside import OutsideVAE

DECODER_OUTPUTS = ("probs", "logits", "tanh")  # models/outside.py's, named here without importing torch


def add_code_flags(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """--code and the flags that describe an outside model (explore, sample and eval take them); skip names those the
    command has already (as "--device"), whose own meaning then holds for the outside model too."""
    group = parser.add_argument_group("a model written elsewhere (docs/outside.md)")

    def add(flag: str, **options: object) -> None:
        if flag not in skip:
            group.add_argument(flag, **options)

    add(
        "--code",
        metavar="FILE.py:FUNC",
        help="RUNS the named Python file (or package.module) and calls FUNC(), which returns your model with its "
        "weights loaded: only name code you trust. The model needs decode(z); encode(x) adds the map and picker",
    )
    add(
        "--decoder-output",
        choices=DECODER_OUTPUTS,
        default="probs",
        help="what decode(z) returns: probs in [0, 1], tanh in [-1, 1], or logits (default: probs)",
    )
    add("--latent-dim", type=bounded_int(1, MAX_SIZE), metavar="N", help="z's size, if the model has no latent_dim")
    add("--num-classes", type=bounded_int(1, MAX_SIZE), metavar="N", help="a class-conditional model: its classes")
    add("--class-names", type=Path, metavar="FILE", help="the classes' names, one a line")
    add("--image-shape", metavar="C,H,W", help="for a decode(z) that returns flat (N, C*H*W) images")
    add("--device", default="cpu", help="where the model runs (default: cpu)")
    add("--debug", action="store_true", help="show your code's own traceback when it fails")


CODE_FLAG_DEFAULTS = {
    "decoder_output": "probs",
    "latent_dim": None,
    "num_classes": None,
    "class_names": None,
    "image_shape": None,
    "debug": False,
}


def check_code_source(args: argparse.Namespace) -> None:
    """--code is one source of a model, a checkpoint (CKPT or --pretrained) the other: one line when both are given,
    and when flags that describe an outside model come without --code."""
    if args.code is not None:
        if args.checkpoint or args.pretrained:
            raise UserError("give a checkpoint or --code FILE.py:FUNC, not both")
        return
    given = [name for name, default in CODE_FLAG_DEFAULTS.items() if getattr(args, name, default) != default]
    if given:
        shown = ", ".join(f"--{name.replace('_', '-')}" for name in given)
        verb = "describes" if len(given) == 1 else "describe"
        raise UserError(f"{shown} {verb} a model written elsewhere: give it with --code FILE.py:FUNC")


def image_shape_flag(value: str | None) -> tuple[int, int, int] | None:
    """--image-shape C,H,W as three positive integers."""
    if value is None:
        return None
    parts = value.replace("x", ",").split(",")
    if len(parts) != 3 or not all(p.strip().isascii() and p.strip().isdigit() and int(p) > 0 for p in parts):
        raise UserError(f"--image-shape takes C,H,W (three positive integers), not {printable(value)!r}")
    channels, height, width = (int(p) for p in parts)
    return channels, height, width


def run_user_code(spec: str, debug: bool = False) -> object:
    """FUNC() of --code FILE.py:FUNC or package.module:FUNC: the user's model. One line for each failure (with
    debug, the user's traceback first)."""
    target, sep, name = spec.rpartition(":")
    shown = printable(spec)
    if not sep or not target or not name.isidentifier():
        raise UserError(f"--code takes FILE.py:FUNC or package.module:FUNC, not {shown!r}")
    module = _load_module(target, shown, debug)
    function = getattr(module, name, None)
    if not callable(function):
        raise UserError(f"--code {shown}: {printable(target)} has no function {printable(name)}")
    try:
        return function()
    except SystemExit as e:
        raise UserError(f"--code {shown}: {printable(name)}() called sys.exit({printable(str(e.code))})") from None
    except Exception as e:  # the user's code: anything may come out of it
        raise user_failure(f"--code {shown}: {printable(name)}() raised", e, debug) from None


def _load_module(target: str, shown: str, debug: bool) -> object:
    """The module FILE.py (its folder put first on sys.path, so that it imports its neighbours) or package.module."""
    if target.endswith(".py") or "/" in target:
        path = Path(target).expanduser()
        if not path.is_file():
            raise UserError(f"--code {shown}: no file {printable(str(path))}")
        spec = importlib.util.spec_from_file_location(f"vae_tui_code_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise UserError(f"--code {shown}: {printable(str(path))} cannot be loaded as Python")
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.resolve().parent))
        sys.modules[spec.name] = module  # as an import does: dataclasses and pickle look their module up there
        try:
            spec.loader.exec_module(module)
        except BaseException as e:
            sys.modules.pop(spec.name, None)
            raise _load_failure(e, f"--code {shown}: running {printable(str(path))}", path, debug) from None
        return module
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as e:
        if (e.name or "").partition(".")[0] in OWN_PACKAGES:
            raise _load_failure(e, f"--code {shown}: importing {printable(target)}", None, debug) from None
        raise UserError(f"--code {shown}: no module named {printable(str(e.name or target))}") from None
    except BaseException as e:
        raise _load_failure(e, f"--code {shown}: importing {printable(target)}", None, debug) from None


OWN_PACKAGES = ("models", "train")  # vae-tui's top-level packages: a user's of the same name is hidden by them


def _load_failure(error: BaseException, what: str, path: Path | None, debug: bool) -> UserError:
    """One line for what running or importing the user's module raised: a syntax error with its line, sys.exit
    (a module that parses the command line when imported), a package hidden by vae-tui's own, anything else."""
    if isinstance(error, KeyboardInterrupt):
        raise error
    if isinstance(error, SyntaxError):
        where = f"{printable(str(path))}, line {error.lineno}" if path and error.lineno else what
        return user_failure(f"{what.split(': ')[0]}: {where} has a syntax error", error, debug, detail=error.msg)
    if isinstance(error, SystemExit):
        return UserError(
            f"{what} called sys.exit({printable(str(error.code))}): does it parse the command line when imported? "
            'put that under `if __name__ == "__main__":`'
        )
    if isinstance(error, ModuleNotFoundError) and (error.name or "").partition(".")[0] in OWN_PACKAGES:
        return UserError(
            f"{what} raised ModuleNotFoundError: {printable(str(error.name))}: vae-tui's own packages are named"
            f" {' and '.join(OWN_PACKAGES)} and hide yours of the same name; import yours under another name"
        )
    return user_failure(f"{what} raised", error, debug)


def user_failure(what: str, error: BaseException, debug: bool, detail: str | None = None) -> UserError:
    """A UserError in one line for an exception from the user's code; with debug, its traceback printed first."""
    if debug:
        traceback.print_exception(error, file=sys.stderr)
    text = detail if detail is not None else f"{type(error).__name__}: {error}"
    hint = "" if debug else " (--debug shows the traceback)"
    return UserError(f"{what} {printable(text)[:200]}{hint}")


def class_names_flag(path: Path | None, count: int) -> list[str]:
    """--class-names FILE: count names, one a line; without it, the class numbers (or "all images" for one class)."""
    if path is None:
        return ["all images"] if count == 1 else [str(i) for i in range(count)]
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError as e:
        raise UserError(f"--class-names {printable(str(path))}: {e.strerror or e}") from None
    if len(lines) != count:
        raise UserError(f"--class-names {printable(str(path))} names {len(lines)} classes; the model has {count}")
    return [printable(line) for line in lines]


def outside_model(args: argparse.Namespace) -> "OutsideVAE":
    """The model --code names, wrapped (models/outside.py), its flags checked."""
    import torch

    from models.outside import OutsideModelError, OutsideVAE

    model = run_user_code(args.code, args.debug)
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise UserError(f"--device {printable(args.device)} is not a device torch knows") from None
    try:
        outside = OutsideVAE(
            model,
            decoder_output=args.decoder_output,
            latent_dim=args.latent_dim,
            num_classes=args.num_classes,
            image_shape=image_shape_flag(args.image_shape),
            device=device,
        )
    except OutsideModelError:
        raise
    except Exception as e:  # the probe decode ran the user's code
        raise user_failure(f"--code {printable(args.code)}: its model's decode(z) raised", e, args.debug) from None
    if outside.range_note:
        sys.stderr.write(f"vae-tui {args.command}: note: {outside.range_note}\n")
    return outside


def outside_checkpoint(model: "OutsideVAE", args: argparse.Namespace) -> "Checkpoint":
    """A Checkpoint around an outside model, for the explorer, sample and eval: no file, no training, the class
    names from --class-names, centroids at the prior's mean (0) until data gives better ones."""
    import torch

    from models import Checkpoint

    config = model.config
    return Checkpoint(
        model=model,
        dataset="outside",
        class_names=class_names_flag(args.class_names, config.num_classes),
        epoch=0,
        class_centroids=torch.zeros(config.num_classes, config.latent_dim),
        package_version="outside",
    )
