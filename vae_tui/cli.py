"""The `vae-tui` command line: argparse sub-commands, each importing torch only when it runs."""

import argparse
import functools
import gc
import sys

from models.errors import UserError
from models.text import printable
from models.version import package_version
from vae_tui.commands import add_threads_flag, data, explore, import_example, runs, sample, train
from vae_tui.commands import eval as eval_command

COMMANDS = (
    train,
    explore,
    eval_command,
    sample,
    import_example,
    runs,
    data,
)  # each adds its sub-parser; --help lists them in this order


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {printable(message)} (see {self.prog} --help)\n")
        sys.exit(2)


@functools.cache
def build_parser() -> Parser:
    """The full parser, built once a process (5 ms; parsing leaves it as it was); building it imports nothing
    heavy."""
    parser = Parser(prog="vae-tui", description="Train VAEs and CVAEs and explore their latent space from a terminal.")
    parser.add_argument("--version", action="version", version=f"vae-tui {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(commands)
    for command_parser in commands.choices.values():
        add_threads_flag(command_parser)
    return parser


def script() -> int:
    """The `vae-tui` script and `python -m vae_tui`: main's exit status, and then every object left frozen out of the
    garbage collector (gc.freeze). The process ends right after; the interpreter's exit otherwise runs full
    collections over the hundreds of thousands of objects torch holds: 0.5 to 0.8 CPU-second for nothing."""
    code = main()
    gc.freeze()
    return code


def main(argv: list[str] | None = None) -> int:
    """vae-tui's commands (argv: the command line after the program's name, sys.argv's by default); returns the exit
    status."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what `train --nproc` passes on to torchrun
    try:
        from train.threads import ThreadFollower, capped_threads

        if args.threads is not None:  # before any parallel work starts torch's thread pool
            import torch

            args.threads, note = capped_threads(args.threads)
            if note:
                sys.stderr.write(f"vae-tui {args.command}: note: {note}\n")
            torch.set_num_threads(args.threads)
        # made before torch loads: its first reading of the other processes' load spans the start-up
        args.thread_follower = ThreadFollower(args.threads)
        return args.run(args)
    except UserError as e:
        sys.stderr.write(f"vae-tui {args.command}: error: {printable(str(e))}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("vae-tui: interrupted\n")
        return 130
