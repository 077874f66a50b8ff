"""Figures in prose: numbers with a unit or a clear role ("7 days", "1 MB", "99%", "Redis 5.0").

Each figure is normalised (durations to seconds, sizes to bytes) so that two sources can be
checked for agreement or conflict on the same subject. The subject is a heuristic: the last
few content words before the figure in its sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.agents.text import STOPWORDS, tokenize

_DURATION_S = {
    "ms": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "day": 86400.0, "days": 86400.0, "week": 604800.0, "weeks": 604800.0,
}  # fmt: skip
_SIZE_B = {
    "bytes": 1.0, "byte": 1.0, "kb": 1024.0, "kib": 1024.0, "mb": 1024.0**2, "mib": 1024.0**2,
    "gb": 1024.0**3, "gib": 1024.0**3, "tb": 1024.0**4, "tib": 1024.0**4,
}  # fmt: skip
_PERCENT = {"%": 1.0, "percent": 1.0}
_COUNTS = (
    "messages|message|partitions|partition|replicas|replica|connections|entries|retries|"
    "attempts|nodes|requests|consumers|pods|servers|streams|tokens|x"
)
_UNITS = "|".join(
    sorted({*_DURATION_S, *_SIZE_B, "percent", *_COUNTS.split("|")}, key=len, reverse=True)
)
_UNIT_WORDS = frozenset(tokenize(" ".join([*_DURATION_S, *_SIZE_B, "percent"])))
_NUMBER_RE = re.compile(
    rf"(?<![\w.])(\d{{1,3}}(?:,\d{{3}})+|\d+(?:\.\d+)?)(?:\s?(%)|\s?({_UNITS})(?![A-Za-z]))",
    re.IGNORECASE,
)
_VERSION_RE = re.compile(
    r"\b(?:(?:version|v)\s?(\d+(?:\.\d+)+)|([A-Z][A-Za-z]+)\s(\d+\.\d+(?:\.\d+)?))(?![\d.]\d)"
)
_PERCENTILE_RE = re.compile(
    r"\b(?:[pP](50|75|90|95|99|99\.9|999)|(\d{2}(?:\.\d+)?)th\s+percentile)\b"
)
_SUBJECT_WORDS = 3


@dataclass(frozen=True, slots=True)
class Figure:
    value: str  # as written: "7 days"
    number: float  # as written: 7.0
    unit: str  # "days", "MB", "%", "version", "percentile"
    kind: str  # duration | size | percent | count | version | percentile
    normalized: float  # seconds for durations, bytes for sizes, else ``number``
    subject: str  # last content words before the figure

    def same_quantity(self, other: Figure) -> bool:
        """Same kind and unit family, so the values can be compared."""
        if self.kind != other.kind:
            return False
        return self.kind in {"duration", "size", "percent"} or self.unit == other.unit


def extract_figures(sentence: str) -> list[Figure]:
    """Every figure in ``sentence``, in order of appearance."""
    found: list[tuple[int, Figure]] = []
    for m in _NUMBER_RE.finditer(sentence):
        unit = m.group(2) or m.group(3)
        fig = _measure(m.group(0), m.group(1), unit, _subject(sentence[: m.start()]))
        found.append((m.start(), fig))
    for m in _VERSION_RE.finditer(sentence):
        number, name = (m.group(1), "version") if m.group(1) else (m.group(3), m.group(2))
        if name.lower() in STOPWORDS:  # "In 2.8": a sentence start, not a product name
            continue
        subject = _subject(sentence[: m.start()] + " " + name)
        fig = Figure(m.group(0), _float(number), "version", "version", _float(number), subject)
        found.append((m.start(), fig))
    for m in _PERCENTILE_RE.finditer(sentence):
        n = _float(m.group(1) or m.group(2))
        fig = Figure(m.group(0), n, "percentile", "percentile", n, _subject(sentence[: m.start()]))
        found.append((m.start(), fig))
    return [fig for _, fig in sorted(found, key=lambda pair: pair[0])]


def _measure(value: str, number_text: str, unit: str, subject: str) -> Figure:
    number = _float(number_text)
    key = unit.lower()
    if key in _DURATION_S:
        return Figure(value, number, unit, "duration", number * _DURATION_S[key], subject)
    if key in _SIZE_B:
        return Figure(value, number, unit, "size", number * _SIZE_B[key], subject)
    if key in _PERCENT:
        return Figure(value, number, "%", "percent", number, subject)
    return Figure(value, number, key, "count", number, subject)


def _subject(before: str) -> str:
    """Content words of the clause just before the figure, numbers and units dropped.

    Empty when the clause has none ("... 180 seconds (3 minutes)"): such a figure restates
    another one and takes no part in agreement or contradiction checks.
    """
    clause = re.split(r"[,;:()=]|\band\b", before)[-1]
    terms = [t for t in tokenize(clause) if not t[0].isdigit() and t not in _UNIT_WORDS]
    return " ".join(terms[-_SUBJECT_WORDS:])


def _float(text: str) -> float:
    return float(text.replace(",", ""))
