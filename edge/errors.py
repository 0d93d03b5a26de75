"""LesionLite's one exception hierarchy and the one way every command turns an error into an exit.

    LesionLiteError            a problem the user can fix; the message says what and how
    ├── BundleError            the model bundle is missing, corrupt or inconsistent
    ├── ImageError             a photo cannot be read (edge.preprocess has the precise kinds)
    ├── CameraError            a camera cannot be opened or read
    └── UsageError             a command-line option, data folder or run folder is unusable
                               (training, export and the benchmarks subclass it)

Every `python -m ...` entry point runs through :func:`run_cli`: a LesionLiteError prints one line
"error: ..." and exits 2; anything else is a bug, printed in one line and exit 1 (set
LESIONLITE_DEBUG=1 for the traceback); Ctrl-C exits 130.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Sequence

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1
EXIT_INTERRUPTED = 130


class LesionLiteError(Exception):
    """A problem with the input, the files or the options, that the user can fix."""


class BundleError(LesionLiteError):
    """The bundle folder is missing, inconsistent or corrupt (the message says which and why)."""


class ImageError(LesionLiteError, ValueError):
    """The input cannot be read as an image (the message says why)."""


class UnsupportedImageError(ImageError):
    """Not an image, or a format Pillow cannot decode here (HEIC, for one)."""


class CorruptImageError(ImageError):
    """A known format whose data is truncated or damaged, or an empty input."""


class ImageTooLargeError(ImageError):
    """More pixels than allowed: refused before decoding (decompression-bomb guard)."""


class CameraError(LesionLiteError):
    """The camera cannot be opened, read, or its frame saved (the message says which)."""


class UsageError(LesionLiteError, ValueError):
    """An option, a data folder or a run folder that cannot be used (the message says why)."""


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None,
            prog: str | None = None) -> int:
    """Run a command's main; map errors to one line on stderr and the project's exit codes."""
    try:
        return int(main(argv) or 0)
    except LesionLiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as err:  # a bug: say so in one line, keep the traceback for whoever asks
        if os.environ.get("LESIONLITE_DEBUG"):
            traceback.print_exc()
        where = f"{prog}: " if prog else ""
        print(f"{where}internal error: {type(err).__name__}: {err} (a bug: rerun with LESIONLITE_DEBUG=1 "
              "for the traceback and report it)", file=sys.stderr)
        return EXIT_INTERNAL_ERROR
