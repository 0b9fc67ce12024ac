"""Social-media handles and profile links, with or without a platform label.

``@handle`` counts unless it is a roster member: a Matrix user id (``@an:example.be``) or a
mention of a member by a plain name (``@an``, ``@pieter``: letters only, no platform
nearby). A handle-shaped word (letters with digits, ``_`` or an inner dot) counts after a
platform label, with or without a colon ("insta sami_gent", "son TikTok c'est noor.bxl02").
Links count when they lead to a profile; a link to one video or post (``youtube.com/watch``,
``youtu.be/...``, ``instagram.com/p/...``) does not name an account.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .finding import Finding

__all__ = ["social_handles"]

_HANDLE_RE = re.compile(r"(?<![\w.%+\-@/])@(?P<handle>[\w.=/+\-]+)")
_HANDLE_SHAPE_RE = re.compile(r"[^\W\d][\w.\-]{1,29}")
_NOT_HANDLES = frozenset({"room", "here", "all", "everyone", "channel"})
_PLATFORMS = (
    r"insta(?:gram)?|ig|snap(?:chat)?|tik\s?tok|facebook|fb|telegram|twitter|threads|discord"
    r"|whatsapp|kik|youtube|twitch|reddit|bluesky|bsky|linkedin"
)
# A platform named as a label: not part of an address or user id ("@x:example.be",
# "x.com"); X only as a capital letter.
_PLATFORM_RE = re.compile(
    rf"(?<![\w@/.\-])(?:(?i:{_PLATFORMS})|X)(?![\w@]|\.\w)"
)
_SOCIAL_WORDS_RE = re.compile(
    rf"(?<!\w)(?:{_PLATFORMS}|volgt|volgen|follows?|following|suit|suivre|abonné\w*"
    r"|account|profiel|profil|profile|pseudo|kanaal|chaîne|chaine|channel|handle)(?!\w)",
    re.IGNORECASE,
)
_SOCIAL_DOMAINS = (
    r"facebook\.com|fb\.com|fb\.me|m\.me|messenger\.com|instagram\.com|instagr\.am"
    r"|tiktok\.com|x\.com|twitter\.com|t\.me|telegram\.me|telegram\.dog|telegram\.org"
    r"|youtube\.com|youtu\.be|snapchat\.com|linkedin\.com|threads\.net|threads\.com|wa\.me"
    r"|pinterest\.com|reddit\.com|tumblr\.com|twitch\.tv|vk\.com|onlyfans\.com|bsky\.app"
    r"|discord\.com/users|mastodon\.social|kik\.me"
)
_SOCIAL_URL_RE = re.compile(
    rf"(?<![\w.\-])(?:https?://)?(?:[a-z0-9\-]+\.)*?(?P<domain>{_SOCIAL_DOMAINS})/+"
    r"(?P<path>[^\s?#][^\s#]*)",
    re.IGNORECASE,
)
# Links to one video or post, not to an account.
_CONTENT_PATH_RE = re.compile(
    r"(?:watch|shorts|embed|playlist|results|live|p|reel|reels|tv|explore|hashtag|search)"
    r"(?:[/?]|$)",
    re.IGNORECASE,
)
# A word that looks like a handle: letters, and a digit, an underscore or an inner dot.
_HANDLE_WORD_RE = re.compile(r"@?(?=[\w.]*[^\W\d_])(?=[\w.]*(?:[0-9_]|[^\W_]\.[^\W_]))[\w.]{3,30}")
# Ordinals, ages and times are not handles ("insta sinds het 2de middelbaar", "snap 14u30").
_NOT_HANDLE_WORD_RE = re.compile(r"[0-9]+[^\W\d_]{0,4}|[0-9]+[uh:.][0-9]+", re.IGNORECASE)
# After the platform: up to three label or filler words ("-account", "naam", "jongere:",
# "c'est", "is", "username"), then the handle; a clause ends the search.
_CLAUSE_END_RE = re.compile(r"[;!?\n(]|[.,](?:\s|$)")
_TOKEN_STRIP = ":=,;\"'()-"


def _labelled_handle(text: str) -> bool:
    for platform in _PLATFORM_RE.finditer(text):
        after = text[platform.end() : platform.end() + 60]
        clause_end = _CLAUSE_END_RE.search(after)
        if clause_end is not None:
            after = after[: clause_end.start()]
        for token in after.replace("-", " ").split()[:4]:
            handle = token.strip(_TOKEN_STRIP).rstrip(".")
            if len(handle) < 3 or not any(c.isalpha() for c in handle):
                continue
            if _NOT_HANDLE_WORD_RE.fullmatch(handle):
                continue
            if handle.startswith("@") or _HANDLE_WORD_RE.fullmatch(handle):
                return True
    return False


def _handle_mentions(text: str) -> bool:
    for match in _HANDLE_RE.finditer(text):
        end = match.end()
        if (
            end + 1 < len(text)
            and text[end] == ":"
            and (text[end + 1].isalnum() or text[end + 1] == "[")
        ):
            continue  # a Matrix user id @local:server — a roster member
        handle = match.group("handle").rstrip("./-+=")
        if not _HANDLE_SHAPE_RE.fullmatch(handle) or handle.lower() in _NOT_HANDLES:
            continue
        if handle.isalpha():
            # Letters only: how a member is mentioned in the room ("@an", "@pieter"),
            # unless the text is about social media.
            context = text[max(0, match.start() - 40) : end + 40]
            if not _SOCIAL_WORDS_RE.search(context):
                continue
        return True
    return False


def _profile_links(text: str) -> bool:
    for match in _SOCIAL_URL_RE.finditer(text):
        domain = match.group("domain").lower()
        if domain == "youtu.be" or _CONTENT_PATH_RE.match(match.group("path")):
            continue
        return True
    return False


def social_handles(text: str) -> Iterator[Finding]:
    """Handles and profile links of social networks."""
    if _handle_mentions(text) or _profile_links(text) or _labelled_handle(text):
        yield Finding.SOCIAL_HANDLE
