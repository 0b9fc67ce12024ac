"""A command's text: the prefix, quoted fallbacks of replies, words and ``key=value`` options."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from commands.framework import UsageError

PREFIXES = ("//", "!", "/")


@dataclass(frozen=True)
class Parsed:
    name: str
    words: tuple[str, ...]
    options: Mapping[str, str]


class ParseError(UsageError):
    pass


def command_text(body: str) -> str | None:
    """The command without its prefix, or None when the message is not a command.

    A reply's quoted fallback (lines starting with ``> ``) is skipped.
    """
    lines = body.splitlines()
    while lines and (lines[0].startswith("> ") or lines[0] == ">"):
        lines.pop(0)
    while lines and not lines[0].strip():
        lines.pop(0)
    text = "\n".join(lines).strip()
    for prefix in PREFIXES:
        if text.startswith(prefix):
            rest = text[len(prefix) :]
            if rest[:1].isalpha():
                return rest
            return None
    return None


def tokenize(text: str) -> list[str]:
    """Split on whitespace; double quotes group (also inside ``key="a b"``)."""
    tokens: list[str] = []
    current: list[str] = []
    in_quotes = False
    started = False
    for char in text.replace("“", '"').replace("”", '"').replace("„", '"'):
        if char == '"':
            in_quotes = not in_quotes
            started = True
        elif char.isspace() and not in_quotes:
            if started:
                tokens.append("".join(current))
                current, started = [], False
        else:
            current.append(char)
            started = True
    if in_quotes:
        raise ParseError("error.unbalanced_quotes")
    if started:
        tokens.append("".join(current))
    return tokens


def parse(text: str) -> Parsed:
    tokens = tokenize(text)
    if not tokens:
        raise ParseError("error.empty")
    name = tokens[0].lower()
    words: list[str] = []
    options: dict[str, str] = {}
    for token in tokens[1:]:
        key, sep, value = token.partition("=")
        if sep and key and key.replace("_", "").replace("-", "").isalpha():
            if key.lower() in options:
                raise ParseError("error.duplicate_key", key=key)
            options[key.lower()] = value
        else:
            words.append(token)
    return Parsed(name=name, words=tuple(words), options=options)
