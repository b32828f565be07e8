"""The one error type that means "the input or the setting is wrong; here is how to fix it".

    raise UserError(f"{path}:3: 'answer' is missing: every record needs question and answer.")

``python -m helpers`` prints a ``UserError`` (and the usual file errors) as one line
``error: ...`` and exits with status 2; ``--debug`` shows the traceback. It subclasses
``ValueError`` so that callers and tests that expect a ValueError for bad input still see one.
Messages name the file, line or field that is wrong and say what to do.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input, settings or paths, found before (or instead of) slow work."""


def describe_decode_error(path, data: bytes, error: UnicodeDecodeError) -> str:
    """'PATH:LINE:COLUMN: not UTF-8 ...' for a decoding error at ``error.start`` of ``data``."""
    line = data.count(b"\n", 0, error.start) + 1
    column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
    byte = data[error.start:error.start + 1].hex()
    return (f"{path}:{line}:{column}: not UTF-8 text (byte 0x{byte}); save the file as UTF-8 "
            "(e.g. `iconv -f latin1 -t utf-8 FILE > NEW`).")
