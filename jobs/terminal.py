"""Text from a file system (file names, object keys, folders) shown on a terminal without controlling it.

A file name may hold any byte but "/" and NUL: ANSI escape sequences that recolour or clear the screen, a
carriage return that overwrites the line, or a right-to-left override that shows "evil\u202egpj.mp4" as
"evilp4.mjpg". Each such character is shown as its Python escape (`\\x1b`, `\\u202e`) instead, so what is
printed is what is on disk. Newlines and tabs stay: messages that hold a file name may span lines."""

from __future__ import annotations

import unicodedata

_KEPT = frozenset("\n\t")
# Bidirectional and invisible format controls: category Cf holds them (with soft hyphens and joiners, which are
# harmless but also invisible, so showing them escaped tells two look-alike names apart).


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _unsafe(char: str) -> bool:
    if char in _KEPT:
        return False
    return unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")


def terminal_safe(text: object) -> str:
    """`text` as a string with control and format characters (C0, DEL, C1, bidi overrides, line and paragraph
    separators) written as escapes; a backslash stays as it is. Not rich markup: see cli_common.escape."""
    value = str(text)
    if all(not _unsafe(c) for c in value):
        return value
    return "".join(_escaped(c) if _unsafe(c) else c for c in value)
