"""What the model has to beat: character unigram and bigram models of the training text.

Both are scored on exactly the characters the model is scored on (every validation token
after the first), so the three perplexities compare like with like. The unigram model
is add-one smoothed; the bigram model is interpolated Kneser-Ney (absolute discount d,
the freed mass spread by how many different characters precede a character), with
add-one continuation counts so no character the vocabulary holds gets probability zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

KN_DISCOUNT = 0.75


def unigram_perplexity(train: Sequence[int], valid: Sequence[int], vocab_size: int) -> float:
    counts = np.bincount(np.asarray(train, dtype=np.int64), minlength=vocab_size) + 1.0
    log_p = np.log(counts / counts.sum())
    return math.exp(-float(log_p[np.asarray(valid[1:], dtype=np.int64)].mean()))


def bigram_probabilities(train: Sequence[int], vocab_size: int,
                         discount: float = KN_DISCOUNT) -> np.ndarray:
    """P[prev, next] of interpolated Kneser-Ney; each row sums to 1."""
    ids = np.asarray(train, dtype=np.int64)
    pairs = np.zeros((vocab_size, vocab_size))
    np.add.at(pairs, (ids[:-1], ids[1:]), 1.0)
    # Continuation: in how many different contexts each character was seen.
    continuation = (pairs > 0).sum(axis=0) + 1.0
    continuation /= continuation.sum()
    context_total = pairs.sum(axis=1, keepdims=True)
    distinct_next = (pairs > 0).sum(axis=1, keepdims=True)
    seen = context_total > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        discounted = np.where(seen, np.maximum(pairs - discount, 0.0) / context_total, 0.0)
        backoff = np.where(seen, discount * distinct_next / context_total, 1.0)
    return discounted + backoff * continuation[None, :]


def bigram_perplexity(train: Sequence[int], valid: Sequence[int], vocab_size: int) -> float:
    probs = bigram_probabilities(train, vocab_size)
    ids = np.asarray(valid, dtype=np.int64)
    return math.exp(-float(np.log(probs[ids[:-1], ids[1:]]).mean()))
