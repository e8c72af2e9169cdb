"""What every command line of helpers shares: a failure ends with one `error: …` line on stderr, never a traceback.

Exit codes of every `python -m helpers.…` command:

- 0: success;
- 1: an error (bad data, checkpoint, parameter or file; the line names it and, where there is one, the fix);
- 2: a bad command line (argparse's usage message);
- 3: partial success: some inputs were skipped and say why (e.g. `helpers.predict`);
- 130: interrupted (Ctrl-C).

`--debug` anywhere on the command line shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from .errors import CheckpointError, DataError, WeightsUnavailableError
from .validate import check_int, check_number

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
DEBUG_FLAG = "--debug"


def run(body: Callable[[list[str]], int], argv: list[str] | None = None) -> int:
    """body(argv without --debug) as an exit code; a failure prints one `error:` line (with --debug: raises)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv
    with plain_warnings():
        try:
            return body([arg for arg in argv if arg != DEBUG_FLAG])
        except KeyboardInterrupt:
            if debug:
                raise
            print("error: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Exception as err:  # noqa: BLE001 - a command line never ends in a traceback
            if debug:
                raise
            print(f"error: {error_line(err)}", file=sys.stderr)
            return EXIT_ERROR


def error_line(err: BaseException) -> str:
    """One line for a failure: the message of a known error, else its type and a hint to rerun with --debug."""
    if isinstance(err, (DataError, CheckpointError, ValueError, WeightsUnavailableError)):
        text = str(err)
    elif isinstance(err, OSError) and err.filename is not None:
        text = f"{err.strerror or err}: {err.filename}"
    elif isinstance(err, OSError):
        text = str(err)
    else:
        text = f"{type(err).__name__}: {err} (unexpected; rerun with {DEBUG_FLAG} for the traceback)"
    return re.sub(r"\s*\n\s*", " ", text).strip() or type(err).__name__


@contextlib.contextmanager
def plain_warnings() -> Iterator[None]:
    """Show warnings as one `warning: …` line each on stderr (no source line), for command lines."""
    def show(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        print(f"warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def add_debug_argument(parser: argparse.ArgumentParser) -> None:
    """Document --debug in parser's help (run() reads and removes it before parsing)."""
    parser.add_argument(DEBUG_FLAG, action="store_true", help="show the full traceback of a failure")


def _argument_type(check: Callable[..., Any], convert: Callable[[str], Any], **limits: Any) -> Callable[[str], Any]:
    kind = "whole number" if convert is int else "number"

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind}; got {text!r}") from None
        try:
            return check("value", value, **limits)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err).removeprefix("value ")) from None

    parse.__name__ = convert.__name__  # argparse names the type in its messages
    return parse


positive_int = _argument_type(check_int, int, minimum=1)
non_negative_int = _argument_type(check_int, int, minimum=0)
positive_float = _argument_type(check_number, float, above_minimum=True)
