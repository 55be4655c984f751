"""The ``encapsulated-stl`` command.

Each group of sub-commands lives in its own module with a ``register(subparsers)``
function; every sub-command sets ``run`` to a function taking the parsed arguments
and returning the exit code.  Bad input raises :class:`EncapsulatedSTLError`, which
becomes one ``error: ...`` line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from ..errors import EncapsulatedSTLError

#: Modules of this package that add sub-commands, in the order shown in --help.
COMMAND_MODULES = ("models", "meshing", "segmentations", "pacs")

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors: one line, exit 2
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="encapsulated-stl",
        description="DICOM Encapsulated STL: wrap, extract, inspect and build 3D-printable "
        "patient models.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars or notices"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    for command in subparsers.choices.values():
        # --quiet works after the command name too; SUPPRESS keeps the global value.
        command.add_argument(
            "-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
            help="no progress bars or notices",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except EncapsulatedSTLError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
