"""The lexical stage's features: TF-IDF over tokens and words, and static embeddings.

Each featurizer is fitted once on the exemplars and then turns one text into
a few (column, weight) pairs in tens of microseconds, with no scikit-learn
call on the query path. The TF-IDF formula is scikit-learn's (smooth idf,
sublinear tf, L2 norm), so the models are the ones its vectorizers would give.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from router.classify._minilm import TokenIds

__all__ = ["SparseRow", "TokenTfIdf", "WordTfIdf", "static_embeddings", "to_matrix"]

#: One text's non-zero features: (column indices, weights).
SparseRow = tuple[NDArray[np.int64], NDArray[np.float64]]

_WORD = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token pattern


def _idf(df: NDArray[np.float64], n: int) -> NDArray[np.float64]:
    out: NDArray[np.float64] = np.log((1.0 + n) / (1.0 + df)) + 1.0
    return out


def _row(
    cols: NDArray[np.int64], counts: NDArray[np.float64], idf: NDArray[np.float64]
) -> SparseRow:
    weights = (1.0 + np.log(counts)) * idf
    norm = float(np.linalg.norm(weights))
    return cols, weights / norm if norm else weights


def to_matrix(rows: Sequence[SparseRow], n_columns: int) -> sparse.csr_matrix:
    """Sparse rows as a CSR matrix (for fitting)."""
    indptr = np.cumsum([0] + [len(cols) for cols, _ in rows])
    cols = np.concatenate([c for c, _ in rows]) if rows else np.zeros(0, dtype=np.int64)
    vals = np.concatenate([v for _, v in rows]) if rows else np.zeros(0)
    return sparse.csr_matrix((vals, cols, indptr), shape=(len(rows), n_columns))


class TokenTfIdf:
    """TF-IDF over MiniLM WordPiece token ids.

    A text's vector is normalised over all its tokens, then only tokens seen
    at fit time are kept, as columns ``0..n_columns-1``: the result equals a
    whole-vocabulary TF-IDF (an unseen token has a zero weight in every
    model) while the models fit on 10k columns instead of 30k.
    """

    def __init__(self, ids: Sequence[TokenIds], vocab_size: int) -> None:
        df = np.zeros(vocab_size, dtype=np.float64)
        for row in ids:
            df[np.unique(row)] += 1.0
        self.idf = _idf(df, len(ids))
        seen = np.flatnonzero(df)
        self.column = np.full(vocab_size, -1, dtype=np.int64)
        self.column[seen] = np.arange(len(seen))
        self.n_columns = len(seen)

    def rows(self, ids: Sequence[TokenIds]) -> list[SparseRow]:
        """Each text's non-zero (columns, weights)."""
        out = []
        for row in ids:
            uniq, counts = np.unique(row, return_counts=True)
            cols, weights = _row(self.column[uniq], counts.astype(np.float64), self.idf[uniq])
            keep = cols >= 0
            out.append((cols[keep], weights[keep]))
        return out


def _terms(text: str) -> Iterable[str]:
    words = _WORD.findall(text.lower())
    yield from words
    yield from (f"{a} {b}" for a, b in itertools.pairwise(words))


class WordTfIdf:
    """TF-IDF over whole words and word pairs (terms in at least ``min_df`` exemplars).

    Complements :class:`TokenTfIdf`: a word outside MiniLM's vocabulary
    ("tort" becomes "tor" + "##t") is still one feature here.
    """

    def __init__(self, texts: Sequence[str], *, min_df: int = 2) -> None:
        df: Counter[str] = Counter()
        for text in texts:
            df.update(set(_terms(text)))
        kept = sorted(t for t, n in df.items() if n >= min_df)
        self.vocabulary = {t: i for i, t in enumerate(kept)}
        self.idf = _idf(np.asarray([df[t] for t in kept], dtype=np.float64), len(texts))
        self.n_columns = len(kept)

    def rows(self, texts: Sequence[str]) -> list[SparseRow]:
        """Each text's non-zero (columns, weights); unknown terms are dropped."""
        out = []
        for text in texts:
            counts = Counter(i for i in map(self.vocabulary.get, _terms(text)) if i is not None)
            cols = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            n = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            out.append(_row(cols, n, self.idf[cols]))
        return out


def static_embeddings(ids: Sequence[TokenIds], table: NDArray[np.float32]) -> NDArray[np.float64]:
    """L2-normalised mean input-token embedding of each text (zeros for no tokens).

    MiniLM's token table puts related subwords near each other, so this
    bag-of-subwords vector generalises past the exemplars' exact words
    ("ibuprofen" lands near "aspirin") at the cost of a lookup.
    """
    out = np.zeros((len(ids), table.shape[1]), dtype=np.float64)
    for i, row in enumerate(ids):
        if len(row):
            mean = table[row].mean(axis=0, dtype=np.float64)
            out[i] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return out
