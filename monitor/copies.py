"""Near-duplicate stories: MinHash signatures of article text, their LSH band keys, which the
store indexes, and the check that two candidates are one story.

Syndicated copies and reposts differ in chrome, headlines and a sentence here and there, not
in their body; word 4-shingles of the normalised text catch that, URLs and titles do not.
A copy with one word in twelve changed keeps only about half its shingles (a Jaccard
similarity near 0.5), so copies are found in two steps: bands narrow enough that a pair at
0.3 is a candidate 95 times in 100, then each candidate's stored signature compared with
the new one (SAME_STORY). On 234 real pages, different stories were at most 0.19 alike;
reworded copies at least 0.38. A text too short for a signature (a summary-only entry) joins
a story by its title instead, when the title is distinctive (title_key).
Pure: the index itself is a table (Store.cluster).

The MinHash is datasketch's (2.x, scheme "affine32", seed 1) computed here in a few lines of
numpy, and a test holds the two equal: importing the datasketch package loads SciPy for its
LSH classes, which we no longer use, and that took 60 MB in every process (a third of a small
poll's memory) and half a second on every command.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from hashlib import blake2b

import numpy as np

from .scoring.text import normalize

NUM_PERM = 64
SAME_STORY = 0.3  # estimated Jaccard similarity of shingle sets that makes two texts one story
SHINGLE = 4
# Candidates: two texts whose ROWS values of one of BANDS bands agree (a pair 0.3 alike is a
# candidate with probability 1 - (1 - 0.3^2)^32 = 0.95; one 0.01 alike, 0.3%). The stored
# keys depend on them: changing them needs a migration that rebuilds lsh_bands (m016).
BANDS, ROWS = 32, 2
TITLE_WORDS = 6  # a title of fewer words ("Daily briefing", "Police log") names no one story
SHORT_TEXT = 50  # words: a text this short (a summary, a teaser) is matched by its title too
# ... and needs more likeness to join by its signature: two teasers of one site were 0.39
# alike through the site's own chrome
SAME_STORY_SHORT = 0.5


def _permutations(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutations h -> a * h + b mod 2^32 (the same draws)."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, NUM_PERM, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, NUM_PERM, dtype=np.uint32)
    return a, b


_A, _B = _permutations()


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's finalizer, which datasketch applies to every value first."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    out: np.ndarray = h ^ (h >> np.uint32(16))
    return out


# odd 64-bit multipliers, one per word position in a shingle (so word order matters)
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                 0xD6E8FEB86659FD93], dtype=np.uint64)[:SHINGLE]


_SPACE = re.compile(r"\s")
CHUNK = 8192  # shingles hashed at once: about CHUNK x 64 x 4 bytes, whatever the text's size


def signature(text: str) -> bytes | None:
    """The MinHash of the text's word 4-shingles; None for texts too short to compare.

    Each distinct word is hashed once (CRC-32) and every shingle's 32-bit hash is mixed from
    its words' hashes in numpy; MinHash then takes those as they are (hashfunc=int). A SHA-1
    per shingle string, datasketch's default, cost about 3 ms per article, all in Python.
    Words and shingles are taken CHUNK at a time: a 4.6 MB page of distinct words held
    220 MB of permuted hashes at once.
    """
    low: np.ndarray | None = None
    part: list[str] = []
    for words in _word_slices(text):
        part += words
        while len(part) >= CHUNK + SHINGLE - 1:
            low = _fold(low, part[:CHUNK + SHINGLE - 1])
            part = part[CHUNK:]  # the next shingles start with these last words
    if low is None and len(part) < 30:
        return None
    if low is None or len(part) >= SHINGLE:
        low = _fold(low, part)
    return low.astype(np.uint64).tobytes()


def _fold(low: np.ndarray | None, words: list[str]) -> np.ndarray:
    """The running minimum *low* with the shingles of *words* taken in."""
    word_hash = {w: zlib.crc32(w.encode()) for w in set(words)}
    h = np.fromiter(map(word_hash.__getitem__, words), dtype=np.uint64, count=len(words))
    n = len(words) - SHINGLE + 1
    mixed = h[:n] * _MIX[0]
    for k in range(1, SHINGLE):
        mixed ^= h[k:k + n] * _MIX[k]
    # the top half holds the best-mixed bits; a repeated shingle changes no minimum
    part = _lowest((mixed >> np.uint64(32)).astype(np.uint32))
    return part if low is None else np.minimum(low, part)


def _word_slices(text: str, size: int = 65_536) -> Iterator[list[str]]:
    """The normalised words of *text*, a slice cut at white space at a time (normalising
    is local to words), not all at once."""
    start = 0
    while start < len(text):
        cut = _SPACE.search(text, start + size) if len(text) > start + size else None
        end = cut.start() if cut else len(text)
        yield normalize(text[start:end]).split()
        start = end


def minhash(values: np.ndarray) -> bytes:
    """What datasketch's MinHash(num_perm=64, hashfunc=int).update_batch(values) holds, as
    64 unsigned 64-bit integers."""
    low = _lowest(values[:CHUNK])
    for start in range(CHUNK, len(values), CHUNK):
        low = np.minimum(low, _lowest(values[start:start + CHUNK]))
    return low.astype(np.uint64).tobytes()


def _lowest(values: np.ndarray) -> np.ndarray:
    """The 64 permutations' minimum over *values* (uint32)."""
    with np.errstate(over="ignore"):  # multiplication modulo 2^32 is the permutation
        hashed = _fmix32(values)[:, None] * _A + _B
    lowest: np.ndarray = hashed.min(axis=0)
    return lowest


def similarity(a: bytes, b: bytes) -> float:
    """The Jaccard similarity of two texts' shingles, estimated from their signatures."""
    return float(np.count_nonzero(np.frombuffer(a, np.uint64) == np.frombuffer(b, np.uint64))
                 / NUM_PERM)


def is_short(text: str | None) -> bool:
    return len((text or "").split(None, SHORT_TEXT)) < SHORT_TEXT


def title_key(title: str | None) -> int | None:
    """A key for a distinctive title, as an SQLite INTEGER (its words, normalised, without
    punctuation); None for a title of fewer than TITLE_WORDS words."""
    words = re.findall(r"\w+", normalize(title or ""))
    if len(words) < TITLE_WORDS:
        return None
    return int.from_bytes(blake2b(b"title " + " ".join(words).encode(), digest_size=8)
                          .digest(), "big", signed=True)


def band_keys(sig: bytes) -> list[int]:
    """The signature's LSH band keys, as SQLite INTEGERs: articles that share one are candidate
    copies (datasketch's MinHashLSH banding, kept in the database by the store). Each band's
    ROWS hash values are hashed with the band's number, so equal values in different bands
    never meet."""
    width = ROWS * 8
    return [int.from_bytes(blake2b(bytes([band]) + sig[band * width:(band + 1) * width],
                                   digest_size=8).digest(), "big", signed=True)
            for band in range(BANDS)]
