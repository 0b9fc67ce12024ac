"""Privacy guard benchmark (spec §12): recall on personal data, false alarms on ordinary text.

Runs :func:`commands.privacy.screen` over the project's own corpora in ``bench/corpora/``:

- ``pii_*.tsv``: ``category<TAB>language<TAB>text``, one line of fictitious personal data
  each, labelled with the :class:`~commands.privacy.Finding` kind it carries. A line counts as
  caught when the guard refuses it (any kind), and as caught *as its kind* when that kind is
  among the findings.
- ``benign_*.tsv``: ``kind<TAB>language<TAB>text``, ordinary case-conference prose that must
  pass; any finding is a false alarm.

``*_heldout.tsv`` files were written with the others but kept out of the tuning of the guard;
they are reported apart. Prints tables and the screening time (median and p95 per line, and
for a 4,000-character text). Always exits 0: this is a benchmark, not a test.

    python bench/privacy.py [--corpora DIR] [--misses] [--repeat N]
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
import tracemalloc
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Import under measurement: the name lexicon is read at import.
tracemalloc.start()
_IMPORT_START = time.perf_counter()
_privacy = importlib.import_module("commands.privacy")
IMPORT_SECONDS = time.perf_counter() - _IMPORT_START
IMPORT_BYTES = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
Finding = _privacy.Finding
screen = _privacy.screen

CORPORA = Path(__file__).resolve().parent / "corpora"


@dataclass(frozen=True)
class Line:
    label: str
    language: str
    text: str
    split: str  # "dev" or "heldout"


def _load(pattern: str, directory: Path) -> list[Line]:
    lines: list[Line] = []
    for path in sorted(directory.glob(pattern)):
        split = "heldout" if "heldout" in path.stem else "dev"
        for raw in path.read_text(encoding="utf-8").splitlines():
            if not raw.strip() or raw.startswith("#"):
                continue
            label, language, text = raw.split("\t", 2)
            lines.append(Line(label, language, text, split))
    return lines


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:6.1f}%" if whole else "     - "


def _table(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def _recall(pii: list[Line], show_misses: bool) -> None:
    by: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    misses: list[str] = []
    for line in pii:
        found = screen(line.text)
        for key in ((line.label, line.split), (line.label, "all"), ("TOTAL", line.split),
                    ("TOTAL", "all")):  # fmt: skip
            counts = by[key]
            counts[0] += 1
            counts[1] += bool(found)
            counts[2] += Finding(line.label) in found
        if Finding(line.label) not in found:
            misses.append(
                f"  {line.split:7} {line.label:16} {line.language}  "
                f"{'refused as ' + ','.join(sorted(found)) if found else 'MISSED':28}  {line.text}"
            )
    rows = []
    for label in [*sorted({line.label for line in pii}), "TOTAL"]:
        row = [label]
        for split in ("dev", "heldout", "all"):
            n, refused, kind = by.get((label, split), [0, 0, 0])
            row += [str(n), _pct(refused, n)]
            if split == "all":
                row.append(_pct(kind, n))
        rows.append(tuple(row))
    _table(
        "Personal data: recall (share of lines refused)",
        ("category", "dev n", "dev", "held n", "held-out", "all n", "recall", "as kind"),
        rows,
    )
    if show_misses and misses:
        print("\nLines not refused as their own kind:")
        print("\n".join(misses))


def _false_alarms(benign: list[Line], show_misses: bool) -> None:
    by: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    alarms: list[str] = []
    for line in benign:
        found = screen(line.text)
        for key in (
            (f"kind {line.label}", line.split),
            (f"lang {line.language}", line.split),
            ("TOTAL", line.split),
        ):
            for k in (key, (key[0], "all")):
                by[k][0] += 1
                by[k][1] += bool(found)
        if found:
            alarms.append(
                f"  {line.split:7} {line.label:10} {line.language}  "
                f"{','.join(sorted(found)):28}  {line.text}"
            )
    labels = sorted({k[0] for k in by if k[0] != "TOTAL"}, key=lambda s: (s[:4] != "lang", s))
    rows = []
    for label in [*labels, "TOTAL"]:
        row = [label]
        for split in ("dev", "heldout", "all"):
            n, refused = by.get((label, split), [0, 0])
            row += [str(n), str(refused), _pct(refused, n)]
        rows.append(tuple(row))
    _table(
        "Ordinary text: false alarms (share of lines refused)",
        ("group", "dev n", "hits", "dev", "held n", "hits", "held-out", "all n", "hits", "rate"),
        rows,
    )
    if show_misses and alarms:
        print("\nOrdinary lines refused:")
        print("\n".join(alarms))


def _timing(lines: list[Line], repeat: int) -> None:
    per_line: list[float] = []
    for _ in range(repeat):
        for line in lines:
            start = time.perf_counter()
            screen(line.text)
            per_line.append(time.perf_counter() - start)
    per_line.sort()
    p95 = per_line[int(0.95 * (len(per_line) - 1))]
    text = ""
    index = 0
    while len(text) < 4000:
        text += lines[index % len(lines)].text + ". "
        index += 1
    text = text[:4000]
    long_times = []
    for _ in range(max(5, repeat * 5)):
        start = time.perf_counter()
        screen(text)
        long_times.append(time.perf_counter() - start)
    degenerate = [
        "@" * 4000, "\x00" * 4000, "rue " * 1000, "12 " * 1333, "Jan " * 1000,
        "meneer " * 571, "a." * 2000, "Rue de " * 571, "x at y dot " * 400,
    ]  # fmt: skip
    worst = 0.0
    for case in degenerate:
        start = time.perf_counter()
        screen(case[:4000])
        worst = max(worst, time.perf_counter() - start)
    print(
        f"\nScreening time: per line median {statistics.median(per_line) * 1000:.2f} ms, "
        f"p95 {p95 * 1000:.2f} ms ({len(per_line)} screenings); "
        f"4,000 characters median {statistics.median(long_times) * 1000:.1f} ms, "
        f"max {max(long_times) * 1000:.1f} ms; worst degenerate 4,000 characters "
        f"{worst * 1000:.1f} ms (target < 50 ms)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, default=CORPORA)
    parser.add_argument("--misses", action="store_true", help="list missed and false lines")
    parser.add_argument("--repeat", type=int, default=3, help="timing rounds over the corpora")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    screen("warm-up: geboren op 12/03/2010, meneer Janssens")
    first = time.perf_counter() - start
    pii = _load("pii_*.tsv", args.corpora)
    benign = _load("benign_*.tsv", args.corpora)
    print(f"Privacy guard on {len(pii)} personal-data lines and {len(benign)} ordinary lines")
    print(
        f"(import of commands.privacy, name lexicon included: {IMPORT_SECONDS * 1000:.0f} ms, "
        f"{IMPORT_BYTES / 2**20:.1f} MiB allocated; first screening {first * 1000:.1f} ms)"
    )
    _recall(pii, args.misses)
    _false_alarms(benign, args.misses)
    _timing(pii + benign, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
