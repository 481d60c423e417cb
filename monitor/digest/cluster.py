"""Near-duplicate stories: MinHash signatures of article text (datasketch) and their LSH band
keys, which the store indexes.

Syndicated copies and reposts differ in chrome, headlines and a sentence here and there, not
in their body; word 4-shingles of the normalised text catch that, URLs and titles do not.
Pure: the index itself is a table (Store.cluster).
"""

from __future__ import annotations

import zlib
from hashlib import blake2b

import numpy as np
from datasketch import MinHash

from ..scoring.text import normalize

NUM_PERM = 64
THRESHOLD = 0.5  # estimated Jaccard similarity of shingle sets that makes two copies one story
SHINGLE = 4
# The banding MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM) chooses (a test holds them
# equal): two copies are candidates when all ROWS values of one of BANDS bands agree. The
# stored keys depend on them: changing them needs a migration that rebuilds lsh_bands.
BANDS, ROWS = 14, 4
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


def band_keys(sig: bytes) -> list[int]:
    """The signature's LSH band keys, as SQLite INTEGERs: articles that share one are candidate
    copies (datasketch's MinHashLSH banding, kept in the database by the store). Each band's
    ROWS hash values are hashed with the band's number, so equal values in different bands
    never meet."""
    width = ROWS * 8
    return [int.from_bytes(blake2b(bytes([band]) + sig[band * width:(band + 1) * width],
                                   digest_size=8).digest(), "big", signed=True)
            for band in range(BANDS)]
