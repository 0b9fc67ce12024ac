"""Text normalisation before detection: one spelling for look-alike characters.

NFKC folds full-width and compatibility forms, every dash becomes ``-``, every space ``" "``,
invisible format characters (zero-width spaces, soft hyphens) disappear, digits of any script
become ASCII digits, curly quotes become straight ones. Lengths may change; detectors only
ever need to know *whether* something is there, never where.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

__all__ = ["normalise"]

_CHAR_REPLACEMENTS = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",
    "\u02bc": "'",
    "\u00b4": "'",
    "`": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u201f": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2039": '"',
    "\u203a": '"',
}


@lru_cache(maxsize=8192)
def _fold_char(char: str) -> str:
    """ASCII-friendly replacement of one non-ASCII character (after NFKC)."""
    replacement = _CHAR_REPLACEMENTS.get(char)
    if replacement is not None:
        return replacement
    category = unicodedata.category(char)
    if category == "Cf":  # zero-width and other invisible format characters
        return ""
    if category == "Pd":  # every kind of dash
        return "-"
    if category == "Zs":
        return " "
    if category in ("Zl", "Zp"):
        return "\n"
    if category in ("Cc", "Cs"):  # controls, lone surrogates
        return " "
    if category == "Nd":  # decimal digits of any script
        return str(unicodedata.decimal(char, 0))
    return char


def normalise(text: str) -> str:
    """The text with look-alike characters folded to one spelling (see the module doc)."""
    # The masculine ordinal "º" is often typed for the birth sign "°"; NFKC would make it "o".
    text = unicodedata.normalize("NFKC", text.replace("\u00ba", "\u00b0"))
    if not text.isascii():
        text = text.translate({ord(c): _fold_char(c) for c in set(text) if ord(c) > 0x7F})
    return text.replace("\r\n", "\n").replace("\t", " ")
