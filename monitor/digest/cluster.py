"""Near-duplicate stories: MinHash signatures of article text and an LSH index (datasketch).

Syndicated copies and reposts differ in chrome, headlines and a sentence here and there, not
in their body; word 4-shingles of the normalised text catch that, URLs and titles do not.
Pure apart from the index it keeps in memory.
"""

from __future__ import annotations

import heapq
import zlib
from datetime import datetime

import numpy as np
from datasketch import MinHash, MinHashLSH

from ..scoring.text import normalize

NUM_PERM = 64
THRESHOLD = 0.5  # estimated Jaccard similarity of shingle sets that makes two copies one story
SHINGLE = 4
_TEMPLATE = MinHash(num_perm=NUM_PERM)
SCHEME = _TEMPLATE.scheme
PERMUTATIONS = _TEMPLATE.permutations  # made once: MinHash() draws them anew every time


# odd 64-bit multipliers, one per word position in a shingle (so word order matters)
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                 0xD6E8FEB86659FD93], dtype=np.uint64)[:SHINGLE]


def signature(text: str) -> bytes | None:
    """The MinHash of the text's word 4-shingles; None for texts too short to compare.

    Each distinct word is hashed once (CRC-32) and every shingle's 32-bit hash is mixed from
    its words' hashes in numpy; MinHash then takes those as they are (hashfunc=int). A SHA-1
    per shingle string, datasketch's default, cost about 3 ms per article, all in Python.
    """
    words = normalize(text).split()
    if len(words) < 30:
        return None
    word_hash = {w: zlib.crc32(w.encode()) for w in set(words)}
    h = np.fromiter(map(word_hash.__getitem__, words), dtype=np.uint64, count=len(words))
    n = len(words) - SHINGLE + 1
    mixed = h[:n] * _MIX[0]
    for k in range(1, SHINGLE):
        mixed ^= h[k:k + n] * _MIX[k]
    # the top half holds the best-mixed bits; a repeated shingle changes no minimum
    m = MinHash(num_perm=NUM_PERM, scheme=SCHEME, permutations=PERMUTATIONS, hashfunc=int)
    m.update_batch((mixed >> np.uint64(32)).tolist())
    return m.hashvalues.astype(np.uint64).tobytes()


def _minhash(sig: bytes) -> MinHash:
    return MinHash(num_perm=NUM_PERM, hashvalues=np.frombuffer(sig, dtype=np.uint64),
                   scheme=SCHEME, permutations=PERMUTATIONS)


class Clusters:
    """Which stored story a new article copies. Keys are article ids; a cluster is named by
    the id of its first article. Articles are forgotten by forget_before(), so that an index
    kept by a long-running service holds a window of days, not everything since it started
    (about 4 KB per article in datasketch's in-memory LSH)."""

    def __init__(self) -> None:
        self.lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
        self.cluster_of: dict[int, int] = {}
        self._added: list[tuple[datetime, int]] = []  # a heap of (fetched_at, id)

    def add(self, article_id: int, sig: bytes | None, fetched_at: datetime,
            cluster_id: int | None = None) -> int:
        """Index an article; returns its cluster (an earlier copy's, else its own id)."""
        if article_id not in self.cluster_of:
            heapq.heappush(self._added, (fetched_at, article_id))
        if sig is None:
            self.cluster_of[article_id] = cluster_id or article_id
            return self.cluster_of[article_id]
        m = _minhash(sig)
        if cluster_id is None:
            matches = [self.cluster_of[k] for k in self.lsh.query(m) if k in self.cluster_of]
            cluster_id = min(matches) if matches else article_id
        if article_id not in self.lsh:
            self.lsh.insert(article_id, m)
        self.cluster_of[article_id] = cluster_id
        return cluster_id

    def discard(self, article_id: int) -> None:
        """Take an article out (its text changed); its place in the window is dropped later."""
        if article_id in self.lsh:
            self.lsh.remove(article_id)
        self.cluster_of.pop(article_id, None)

    def forget_before(self, cutoff: datetime) -> int:
        """Drop the articles fetched before *cutoff*; returns how many."""
        dropped = 0
        while self._added and self._added[0][0] < cutoff:
            _, article_id = heapq.heappop(self._added)
            if article_id in self.lsh:
                self.lsh.remove(article_id)
            self.cluster_of.pop(article_id, None)
            dropped += 1
        return dropped

    def __len__(self) -> int:
        return len(self.cluster_of)
