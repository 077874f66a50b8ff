"""The local corpus: Markdown documents cut into passages, and a BM25 index over them.

A document is a ``.md`` file whose first line is ``# Title`` and which carries a
``Source: <url or citation>`` line. It is cut into passages of roughly
:data:`MIN_PASSAGE_WORDS`-:data:`MAX_PASSAGE_WORDS` words along paragraph (then sentence)
boundaries, so that a hit is a focused paragraph rather than a whole page.

The index is built once per corpus directory and cached for the life of the process
(:func:`get_index`). Building is synchronous and takes milliseconds for the packaged corpus;
a lock keeps two threads from building the same index twice.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from rank_bm25 import BM25Okapi

from app.agents.text import split_sentences, strip_inline_markdown, tokenize, word_count

#: The sample corpus shipped with the package (``app/agents/corpus/*.md``).
DEFAULT_CORPUS_DIR = Path(__file__).with_name("corpus")
MIN_PASSAGE_WORDS = 80
MAX_PASSAGE_WORDS = 200

_SOURCE_RE = re.compile(r"^source:\s*(.+)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Passage:
    doc_id: str
    title: str
    source: str
    section: str
    text: str


@dataclass(frozen=True, slots=True)
class Hit:
    passage: Passage
    score: float


class CorpusIndex:
    """BM25 (Okapi) over passages; the title and section heading are indexed with the text."""

    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages
        docs = [tokenize(f"{p.title} {p.section} {p.text}") for p in passages]
        self._terms = [frozenset(d) for d in docs]
        self._bm25 = BM25Okapi(docs) if passages else None

    def __len__(self) -> int:
        return len(self.passages)

    def search(self, query: str, k: int = 5, per_doc: int = 2) -> list[Hit]:
        """Top ``k`` passages sharing a query term, at most ``per_doc`` from one document.

        Matching is by shared term, not by a positive score: in a tiny corpus Okapi IDF can be
        zero (a term in half the passages), which must not hide the only passages that match.
        """
        terms = tokenize(query)
        if self._bm25 is None or not terms:
            return []
        scores = [float(s) for s in self._bm25.get_scores(terms)]
        wanted = set(terms)
        matching = [i for i, t in enumerate(self._terms) if not wanted.isdisjoint(t)]
        ranked = sorted(matching, key=lambda i: (-scores[i], i))
        hits: list[Hit] = []
        taken: dict[str, int] = {}
        for i in ranked:
            passage = self.passages[i]
            if len(hits) >= k:
                break
            if taken.get(passage.doc_id, 0) >= per_doc:
                continue
            taken[passage.doc_id] = taken.get(passage.doc_id, 0) + 1
            hits.append(Hit(passage, round(scores[i], 4)))
        return hits


def load_passages(corpus_dir: Path) -> list[Passage]:
    """Every passage of every ``*.md`` file in ``corpus_dir``, in file-name order."""
    passages: list[Passage] = []
    for path in sorted(corpus_dir.glob("*.md")):
        passages.extend(parse_document(path.stem, path.read_text(encoding="utf-8")))
    return passages


def parse_document(doc_id: str, markdown: str) -> list[Passage]:
    title, source = doc_id, ""
    section = ""
    paragraphs: list[tuple[str, str]] = []  # (section, paragraph text)
    for block in re.split(r"\n\s*\n", markdown):
        block = block.strip()
        if not block:
            continue
        lines = block.splitlines()
        if lines[0].startswith("# ") and title == doc_id:
            title, lines = lines[0][2:].strip(), lines[1:]
        if lines and (match := _SOURCE_RE.match(lines[0])):
            source, lines = match.group(1).strip(), lines[1:]
        if lines and lines[0].startswith("#"):
            section, lines = lines[0].lstrip("#").strip(), lines[1:]
        text = "\n".join(lines).strip()
        if text:
            paragraphs.append((section, text))
    return [
        Passage(doc_id, title, source, sec, strip_inline_markdown(text))
        for sec, text in _chunk(paragraphs)
    ]


def _chunk(paragraphs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Merge short paragraphs of one section and split long ones at sentence boundaries."""
    chunks: list[tuple[str, str]] = []
    for section, text in paragraphs:
        for piece in _split_long(text):
            last = chunks[-1] if chunks else None
            if last and last[0] == section and word_count(last[1]) < MIN_PASSAGE_WORDS:
                chunks[-1] = (section, f"{last[1]}\n{piece}")
            else:
                chunks.append((section, piece))
    return chunks


def _split_long(text: str) -> list[str]:
    if word_count(text) <= MAX_PASSAGE_WORDS:
        return [text]
    pieces: list[str] = []
    current: list[str] = []
    for sentence in split_sentences(text):
        if current and word_count(" ".join([*current, sentence])) > MAX_PASSAGE_WORDS:
            pieces.append(" ".join(current))
            current = []
        current.append(sentence)
    if current:
        pieces.append(" ".join(current))
    return pieces


_cache: dict[Path, CorpusIndex] = {}
_lock = threading.Lock()


def get_index(corpus_dir: Path | None = None) -> CorpusIndex:
    """The index of ``corpus_dir`` (default: the packaged corpus), built on first use."""
    key = (corpus_dir or DEFAULT_CORPUS_DIR).resolve()
    index = _cache.get(key)
    if index is not None:
        return index
    with _lock:
        if key not in _cache:
            _cache[key] = CorpusIndex(load_passages(key))
        return _cache[key]


def clear_cache() -> None:
    with _lock:
        _cache.clear()
