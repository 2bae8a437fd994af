"""How likely each candidate of a label tree's search is relevant: an online logistic model over the beam.

A label tree scores a document's candidate labels by the product of node probabilities on their paths.
That product ranks well but is a poor probability to cut at one threshold: how often a candidate is
relevant also depends on its rank among the candidates, on how far it is from the best candidate, on
the label itself (some labels' paths are over- or under-confident), and, on a stream ordered in time,
on how recently the label was relevant. :class:`CandidateRelevance` learns that map prequentially from
every learned document's candidates (relevant or not) and gives each candidate a probability of being
relevant; the tree cuts and ranks by it.
"""

from __future__ import annotations

import math

import numpy as np

from labelflow.operators.compiled import kernel
from labelflow.operators.state import Stateful

STATE_FORMAT = "labelflow.candidate-relevance/1"
_P_MIN = 1e-4  # the tree's probabilities are clipped to [1e-4, 1 - 1e-4] before their log-odds are taken
_G2_START = 0.1  # AdaGrad's sum of squared gradients starts here: the first steps are learning_rate / 0.32
_NEVER = -1  # the clock of a label never relevant (or never an irrelevant candidate) since the start


@kernel
def _log_odds(p: float) -> float:
    q = min(max(p, _P_MIN), 1.0 - _P_MIN)
    return math.log(q / (1.0 - q))


@kernel
def _recency(row: np.ndarray, at: int, last: int, n: int, n_gaps: int) -> int:
    """Into ``row[at:at + 2 + n_gaps]``: log of the gap in documents since ``last`` (0 if never), the
    never flag, and the one-hot of the gap's binary order of magnitude (the last column: never). Returns
    that column."""
    if last == _NEVER:
        row[at + 1] = 1.0
        bucket = n_gaps - 1
    else:
        gap = n - last
        row[at] = math.log1p(gap)
        bucket = min(int(math.log2(gap + 1.0)), n_gaps - 2)
    row[at + 2 + bucket] = 1.0
    return bucket


@kernel
def _fill_features(
    p: np.ndarray,
    leaf_p: np.ndarray,
    clusters: np.ndarray,
    j: int,
    last_relevant: int,
    last_irrelevant: int,
    n: int,
    n_ranks: int,
    n_gaps: int,
    row: np.ndarray,
) -> None:
    """Candidate ``j``'s features into ``row`` (zeroed here): bias, its log-odds, its rank (one-hot), the
    best candidate's log-odds and its distance to them, how long ago its label was last relevant and last
    an irrelevant candidate (see :func:`_recency`), its log-odds again in the column of its relevance
    gap's order of magnitude (a slope per recency), the log-odds of its leaf given its cluster and the
    rest of its path, and how many other candidates share its cluster and their summed probability."""
    row[:] = 0.0
    top = _log_odds(p[0])
    own = _log_odds(p[j])
    row[0] = 1.0
    row[1] = own
    row[2 + min(j, n_ranks - 1)] = 1.0
    at = 2 + n_ranks
    row[at] = top
    row[at + 1] = own - top
    at += 2
    bucket = _recency(row, at, last_relevant, n, n_gaps)
    at += 2 + n_gaps
    _recency(row, at, last_irrelevant, n, n_gaps)
    at += 2 + n_gaps
    row[at + bucket] = own
    at += n_gaps
    leaf = _log_odds(leaf_p[j]) if leaf_p[j] == leaf_p[j] else own  # NaN: the leaf was not evaluated
    row[at] = leaf
    row[at + 1] = own - leaf
    same = 0
    mass = 0.0
    for i in range(p.shape[0]):
        if clusters[i] == clusters[j]:
            same += 1
            mass += p[i]
    row[at + 2] = math.log1p(same - 1)
    row[at + 3] = _log_odds(mass)


@kernel
def _relevance(
    p: np.ndarray,
    leaf_p: np.ndarray,
    clusters: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray,
    last_relevant: np.ndarray,
    last_irrelevant: np.ndarray,
    n: int,
    n_ranks: int,
    n_gaps: int,
    max_slots: int,
) -> np.ndarray:
    """Each candidate's probability of relevance (a label past the per-label arrays has no history)."""
    n_slots = bias.shape[0]
    row = np.empty(weights.shape[0])
    out = np.empty(p.shape[0])
    for j in range(p.shape[0]):
        slot = labels[j] % max_slots
        z = 0.0
        if slot < n_slots:
            _fill_features(
                p, leaf_p, clusters, j, last_relevant[slot], last_irrelevant[slot], n, n_ranks, n_gaps, row
            )
            z = bias[slot]
        else:
            _fill_features(p, leaf_p, clusters, j, _NEVER, _NEVER, n, n_ranks, n_gaps, row)
        for f in range(row.shape[0]):
            z += row[f] * weights[f]
        out[j] = 1.0 / (1.0 + math.exp(-min(max(z, -30.0), 30.0)))
    return out


@kernel
def _learn(
    q: np.ndarray,
    p: np.ndarray,
    leaf_p: np.ndarray,
    clusters: np.ndarray,
    labels: np.ndarray,
    relevant: np.ndarray,
    weights: np.ndarray,
    g2: np.ndarray,
    bias: np.ndarray,
    bias_g2: np.ndarray,
    last_relevant: np.ndarray,
    last_irrelevant: np.ndarray,
    n: int,
    n_ranks: int,
    n_gaps: int,
    max_slots: int,
    learning_rate: float,
    label_learning_rate: float,
) -> None:
    """One AdaGrad step of the logistic loss over the candidates, whose relevance ``q`` was computed with
    the current weights (the shared weights take the summed
    gradient, each candidate's label bias its own); then the irrelevant candidates' labels are marked as
    such at the next tick of the clock (``n + 1``, the tick :meth:`CandidateRelevance.observe` makes)."""
    row = np.empty(weights.shape[0])
    gradient = np.zeros(weights.shape[0])
    for j in range(p.shape[0]):
        slot = labels[j] % max_slots
        error = q[j] - relevant[j]
        _fill_features(
            p, leaf_p, clusters, j, last_relevant[slot], last_irrelevant[slot], n, n_ranks, n_gaps, row
        )
        for f in range(row.shape[0]):
            gradient[f] += error * row[f]
        bias_g2[slot] += error * error
        bias[slot] -= label_learning_rate * error / math.sqrt(bias_g2[slot])
    for f in range(weights.shape[0]):
        g2[f] += gradient[f] * gradient[f]
        weights[f] -= learning_rate * gradient[f] / math.sqrt(g2[f])
    for j in range(p.shape[0]):
        if relevant[j] == 0.0:
            last_irrelevant[labels[j] % max_slots] = n + 1


class CandidateRelevance(Stateful):
    """The probability that each of a search's candidate labels is relevant, learned online.

    A logistic model of the candidate's tree probability (log-odds), its rank, the best candidate's
    log-odds and the distance to them, how many documents ago its label was last relevant and how many
    ago it was last a candidate that was not relevant (each as a log, and a one-hot of its binary order
    of magnitude, or never), the log-odds once more per order of magnitude of the first gap (recently
    relevant labels get their own slope), the log-odds of its leaf given its cluster (and of the rest of
    its path), how many other candidates share its cluster and their summed probability (labels of a
    cluster occur together), plus a bias per label. The shared weights start as the identity
    on the tree's log-odds (a fresh model returns the tree's probabilities) and every bias at 0, so a
    label with little history is judged by the pooled weights; AdaGrad steps (per weight, per label bias)
    learn from each learned document's candidates. Cost per document: two compiled calls of
    ``O(candidates x features)``, about 10 µs.

    Memory: ``n_features`` shared weights and four numbers per label slot, the slots growing with the
    label ids up to ``max_label_slots`` (labels past it share slots by id modulo, so a 1M-label stream
    holds at most 32 MB here).

    Measured on EUR-Lex 57k (year order, whole stream, the default learner, decisions by a pooled micro-F1
    cut over these probabilities instead of the tree's): see :class:`LabelTreeClassifier`.

    Parameters
    ----------
    learning_rate, label_learning_rate
        AdaGrad step sizes of the shared weights and of the per-label biases.
    n_ranks, n_gaps
        One-hot widths of the rank (ranks past the last share it) and of the recency order of magnitude
        (the last column is "never relevant"; gaps past ``2 ** (n_gaps - 2)`` documents share the one before).
    max_label_slots
        Largest number of per-label slots.

    Examples
    --------
    Labels 1 and 2 come second with the same tree probability; label 1 is then relevant, label 2 never.
    Their own biases tell them apart:

    >>> model = CandidateRelevance()
    >>> p = np.array([0.9, 0.5])
    >>> for i in range(400):
    ...     second = 1 if i % 2 else 2
    ...     model.learn(p, np.array([0, second]), np.array([True, second == 1]))
    ...     model.observe([0, 1] if second == 1 else [0])
    >>> q1, q2 = model.relevance(p, np.array([0, 1]))[1], model.relevance(p, np.array([0, 2]))[1]
    >>> bool(q1 > 0.8), bool(q2 < 0.2)
    (True, True)
    """

    state_header = {"format": STATE_FORMAT}
    state_settings = ("learning_rate", "label_learning_rate", "n_ranks", "n_gaps", "max_label_slots")
    state_fields = ("n",)
    state_arrays = ("weights", "g2", "bias", "bias_g2", "last_relevant", "last_irrelevant")

    def __init__(
        self,
        *,
        learning_rate: float = 0.1,
        label_learning_rate: float = 0.3,
        n_ranks: int = 16,
        n_gaps: int = 18,
        max_label_slots: int = 2**20,
    ) -> None:
        if n_ranks < 1 or n_gaps < 2 or max_label_slots < 1:
            raise ValueError("n_ranks >= 1, n_gaps >= 2 and max_label_slots >= 1 are required")
        self.learning_rate = learning_rate
        self.label_learning_rate = label_learning_rate
        self.n_ranks = n_ranks
        self.n_gaps = n_gaps
        self.max_label_slots = max_label_slots
        n_features = 2 + n_ranks + 2 + 2 * (2 + n_gaps) + n_gaps + 4
        self.weights = np.zeros(n_features)
        self.weights[1] = 1.0  # the identity on the tree's log-odds: a fresh model changes nothing
        self.g2 = np.full(n_features, _G2_START)
        self.bias = np.zeros(0)
        self.bias_g2 = np.zeros(0)
        # per label slot: the clock when it was last relevant, and last an irrelevant candidate
        self.last_relevant = np.zeros(0, dtype=np.int64)
        self.last_irrelevant = np.zeros(0, dtype=np.int64)
        self.n = 0  # learned documents: the clock of the recency features

    def _reserve(self, n_labels: int) -> None:
        """Grow the per-label arrays to hold label ids below ``n_labels`` (at most ``max_label_slots``)."""
        needed = min(n_labels, self.max_label_slots)
        size = self.bias.shape[0]
        if needed > size:
            grown = min(max(needed, 2 * size, 64), self.max_label_slots) - size
            self.bias = np.concatenate([self.bias, np.zeros(grown)])
            self.bias_g2 = np.concatenate([self.bias_g2, np.full(grown, _G2_START)])
            never = np.full(grown, _NEVER, dtype=np.int64)
            self.last_relevant = np.concatenate([self.last_relevant, never])
            self.last_irrelevant = np.concatenate([self.last_irrelevant, never])

    def relevance(
        self,
        p: np.ndarray,
        labels: np.ndarray,
        leaf_p: np.ndarray | None = None,
        clusters: np.ndarray | None = None,
    ) -> np.ndarray:
        """The probability that each candidate is relevant, from the tree's probabilities ``p`` (best first)
        of the candidate label ids ``labels`` (int64), their leaves' probabilities given their clusters
        (``leaf_p``, NaN where unknown; default: unknown) and their clusters' ids (default: all different)."""
        leaf_p, clusters = _path(p, leaf_p, clusters)
        return _relevance(
            p,
            leaf_p,
            clusters,
            labels,
            self.weights,
            self.bias,
            self.last_relevant,
            self.last_irrelevant,
            self.n,
            self.n_ranks,
            self.n_gaps,
            self.max_label_slots,
        )

    def learn(
        self,
        p: np.ndarray,
        labels: np.ndarray,
        relevant: np.ndarray,
        leaf_p: np.ndarray | None = None,
        clusters: np.ndarray | None = None,
        predicted: np.ndarray | None = None,
    ) -> None:
        """Learn which candidates were relevant (before :meth:`observe` of the same document); the
        arguments are those of :meth:`relevance`, the candidates' outcomes and, when the caller kept it,
        what :meth:`relevance` returned for them (the model has not changed since: it is not computed
        again)."""
        if not p.size:
            return
        q = self.relevance(p, labels, leaf_p, clusters) if predicted is None else predicted
        self._reserve(int(labels.max()) + 1)
        leaf_p, clusters = _path(p, leaf_p, clusters)
        _learn(
            q,
            p,
            leaf_p,
            clusters,
            labels,
            relevant.astype(np.float64),
            self.weights,
            self.g2,
            self.bias,
            self.bias_g2,
            self.last_relevant,
            self.last_irrelevant,
            self.n,
            self.n_ranks,
            self.n_gaps,
            self.max_label_slots,
            self.learning_rate,
            self.label_learning_rate,
        )

    def observe(self, labels: list[int]) -> None:
        """A learned document's relevant label ids: the clock advances and they become the most recent."""
        self.n += 1
        if labels:
            self._reserve(max(labels) + 1)
            self.last_relevant[np.asarray(labels, dtype=np.int64) % self.max_label_slots] = self.n


def _path(
    p: np.ndarray, leaf_p: np.ndarray | None, clusters: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The candidates' leaf probabilities and cluster ids, defaults filled in."""
    if leaf_p is None:
        leaf_p = np.full(p.shape[0], np.nan)
    if clusters is None:
        clusters = np.arange(p.shape[0], dtype=np.int64)
    return leaf_p, clusters
