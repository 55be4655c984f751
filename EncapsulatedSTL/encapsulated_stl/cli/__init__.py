"""The ``encapsulated-stl`` command.

Each group of sub-commands lives in its own module with a ``register(subparsers)``
function; every sub-command sets ``run`` to a function taking the parsed arguments
and returning the exit code.  Bad input raises :class:`EncapsulatedSTLError`, which
becomes one ``error: <file>: <problem>`` line on stderr and exit code 2, never a
traceback.  Warnings of the libraries underneath (pydicom, nibabel, numpy) are not
shown: the readers check what those warnings are about and say it in their own
words, once.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import warnings

from ..errors import EncapsulatedSTLError
from ..version import __version__

#: Modules of this package that add sub-commands, in the order shown in --help.
COMMAND_MODULES = ("models", "meshing", "segmentations", "checks", "pacs")

EXIT_BAD_INPUT = 2
#: An error this program did not expect: a bug, reported in one line all the same.
EXIT_INTERNAL_ERROR = 70

#: The argument each command is about, named in an error that names no file.  Not
#: the DICOMweb URL, which may hold a password: its errors name it themselves.
SUBJECTS = ("stl", "dicom", "model", "planned", "segmentation", "rtstruct", "source", "node", "paths", "output")


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


def one_line(text: str) -> str:
    """``text`` as one printable line: line breaks (a reader's multi-line message) made
    into "; ", other control characters (from a hostile file's values: a terminal
    escape sequence) shown as ``\\xNN``."""
    text = re.sub(r"\s*[\r\n]+\s*", "; ", str(text).strip())
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", lambda m: f"\\x{ord(m.group()):02x}", text)


def subject(args: argparse.Namespace) -> str | None:
    """What the command was given to work on, for an error that names nothing."""
    for name in SUBJECTS:
        value = getattr(args, name, None)
        if isinstance(value, list):
            value = value[0] if value else None
        if value:
            return str(value)
    return None


def notice_printer(args: argparse.Namespace):
    """A function printing one ``notice:`` line on stderr, unless --quiet."""

    def say(message: str) -> None:
        if not args.quiet:
            print(one_line(f"notice: {message}"), file=sys.stderr)

    return say


def report(problem: str, where: str | None) -> None:
    print(one_line(f"error: {where}: {problem}" if where else f"error: {problem}"), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return int(args.run(args) or 0)
        except EncapsulatedSTLError as error:
            report(error.reason, error.path or subject(args))
            return EXIT_BAD_INPUT
        except MemoryError:
            report("not enough memory for this input", subject(args))
            return EXIT_BAD_INPUT
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # the reader of our output went away (| head): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        except Exception as error:  # a bug: still one line, and a way to report it
            report(
                f"internal error ({type(error).__name__}: {error}); please report it with "
                "the command that caused it",
                subject(args),
            )
            return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
