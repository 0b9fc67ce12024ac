"""Name lexicon: the first-name and surname lookup lists of ``deduce``.

``deduce`` (Dutch de-identification, maintained, LGPL) ships curated lists of about 14,900
first names and 10,500 surnames, each with a list of exceptions (words that are names but
mostly mean something else: "April", "Bent"), and a list of common Dutch words. Only the
lists are used, read from the installed package's data folder without importing ``deduce``
itself: its pipeline takes about a minute and over 1 GB to build its lookup structures and
refuses ordinary text far too often (15% of our ordinary corpus, against 0% with the lists).

Loaded once, at import: a missing ``deduce`` is an installation error and shows at start-up,
not as silently weaker screening. Entries are folded with :func:`fold`.
"""

from __future__ import annotations

import importlib.util
import unicodedata
from pathlib import Path

__all__ = ["COMMON_WORDS", "FIRST_NAMES", "SURNAMES", "fold"]


def fold(word: str) -> str:
    """The word case-folded and without accents, as the lexicon stores it ("Théo" → "theo")."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _lookup_dir() -> Path:
    spec = importlib.util.find_spec("deduce")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the privacy guard needs the 'deduce' package for its name lexicon")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "lookup" / "src"


def _read(path: Path) -> set[str]:
    if not path.exists():
        return set()
    with path.open(encoding="utf-8") as lines:
        return {fold(line.strip()) for line in lines if line.strip()}


def _load(folder: Path) -> frozenset[str]:
    return frozenset(_read(folder / "items.txt") - _read(folder / "exceptions.txt"))


_DIR = _lookup_dir()
FIRST_NAMES: frozenset[str] = _load(_DIR / "names" / "lst_first_name")
SURNAMES: frozenset[str] = _load(_DIR / "names" / "lst_surname") | _load(
    _DIR / "names" / "lst_interfix_surname"
)
COMMON_WORDS: frozenset[str] = _load(_DIR / "whitelist" / "lst_common_word") | _load(
    _DIR / "whitelist" / "lst_stop_word"
)
if not FIRST_NAMES or not SURNAMES:  # pragma: no cover - a broken install
    raise ImportError("the name lists of the 'deduce' package are missing or empty")
