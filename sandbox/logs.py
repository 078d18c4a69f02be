"""Text that is safe to print. Client input (paths, headers, bodies, a receiver's answers) may
carry control characters that forge log lines or drive a terminal, so everything the sandbox
prints from it goes through ``printable``, and the records of its loggers through
``EscapeControlCharacters``: the message and any exception's message are escaped, while the
frames of a traceback (our own source) keep their line breaks."""

from __future__ import annotations

import logging
import traceback
from types import TracebackType

# the lines TracebackException.format() writes itself, around the frames and the messages
_TRACEBACK_LINES = (
    "Traceback (most recent call last):\n",
    "\nThe above exception was the direct cause of the following exception:\n\n",
    "\nDuring handling of the above exception, another exception occurred:\n\n",
)


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` with every unprintable character written as a Python escape (``\\x1b``);
    ``lines`` keeps its line breaks."""
    if lines:
        return "\n".join(printable(line) for line in text.split("\n"))
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def safe_traceback(
    kind: type[BaseException], error: BaseException, tb: TracebackType | None
) -> str:
    chunks = []
    for chunk in traceback.TracebackException(kind, error, tb).format():
        if chunk.startswith('  File "') or chunk in _TRACEBACK_LINES:
            chunks.append(chunk)
        else:  # an exception's message, or a note: may quote client input
            chunks.append(printable(chunk.removesuffix("\n")) + "\n")
    return "".join(chunks).removesuffix("\n")


class EscapeControlCharacters(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format: logging's own handler reports it
            return True
        record.msg, record.args = printable(message), None
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = safe_traceback(*record.exc_info)
        return True


def safe_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with control characters escaped in its records."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, EscapeControlCharacters) for f in logger.filters):
        logger.addFilter(EscapeControlCharacters())
    return logger
