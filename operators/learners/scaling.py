"""The default learner: the flat learner while the label space is small, a label tree once it is large."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from labelflow.operators.base import (
    Features,
    Label,
    MultiLabelClassifier,
    PartitionInfo,
    ScoredLabels,
    feature_dim,
)
from labelflow.operators.drift.events import DriftEvent
from labelflow.operators.learners.calibration import ScoreCalibrator
from labelflow.operators.learners.decision_experts import DEFAULT_OBJECTIVE, CachedCandidates, DecisionExperts
from labelflow.operators.learners.partitioned import PartitionedClassifier
from labelflow.operators.learners.pruned_sets import PrunedSetsClassifier
from labelflow.operators.learners.tree_classifier import LabelTreeClassifier
from labelflow.operators.state import State, Stateful

STATE_FORMAT = "labelflow.scaling/1"
# The flat learner keeps a (features x labels) float matrix and does per-label work for every document:
# past 256 MB of heads (256 labels of 2**18 hashed text features) or 512 labels it is slower and
# larger than the tree, whose cost follows log(labels) (benchmarks/scale/RESULTS.md). The benchmark
# label sets below half of that (bibtex 159 labels, Reuters 90 at 2**18 features = 94 MB) stay flat
# and never pay for the tree.
FLAT_HEADS_BUDGET = 256 * 2**20
FLAT_MAX_LABELS = 512
# The tree starts learning beside the flat learner at half those sizes, so it has seen part of the
# stream when it takes over.
_SHADOW_FRACTION = 0.5


class _Prediction:
    """A document's prediction as learning needs it again: the learner's decided set, its own scores
    (``scores``, or the flat learner's probability array ``p``, float64, when it is the learner) and the
    published (calibrated) scores as a dict and, from the flat learner, the ids of those at 0.5 or more
    (``half``) and the calibrator's bins of ``p`` (``bins``); and the pruned-sets decision
    (``label_sets``, None where there is none)."""

    __slots__ = ("decided", "scores", "p", "half", "bins", "published", "label_sets")

    def __init__(
        self,
        decided: set[Label],
        scores: dict[Label, float] | None,
        p: np.ndarray | None,
        half: np.ndarray | None,
        published: dict[Label, float],
        label_sets: frozenset | None = None,
        bins: np.ndarray | None = None,
    ) -> None:
        self.decided = decided
        self.scores = scores
        self.p = p
        self.half = half
        self.bins = bins
        self.published = published
        self.label_sets = label_sets


class ScalingClassifier(Stateful, MultiLabelClassifier):
    """Chooses the learner by the size of the label space, with no setting to pick.

    Starts with the flat :class:`PartitionedClassifier` (the best quality on small label spaces: per-label
    heads, neighbours, stacker, joint decoding). When its heads would pass half of ``flat_heads_budget``
    bytes or half of ``flat_max_labels`` labels, a :class:`LabelTreeClassifier` starts learning beside it;
    at the full size the tree takes over (predictions and learning) and the flat learner is dropped, so
    memory and per-document cost stop growing with the labels. A document whose new labels would take
    the flat learner past the full size is handed over before it is learned, so the flat heads never
    pass their budget by more than one label. Small label spaces never reach the tree
    and behave exactly as the flat learner.

    Parameters
    ----------
    flat_heads_budget
        Bytes of flat heads (``labels * (features + 1) * 4``) at which the tree takes over.
    flat_max_labels
        Number of labels at which the tree takes over.
    tree
        Settings of the :class:`LabelTreeClassifier`.
    objective
        The metric the published label sets should maximize (``micro_f1``, ``macro_f1``,
        ``subset_accuracy``, ``example_f1``): :class:`DecisionExperts` chooses among the learner's
        decision, the trivial predictors and alternatives by their loss under it. Under
        ``subset_accuracy`` the flat learner also learns a :class:`PrunedSetsClassifier` (a softmax
        over the frequent label sets, pooled with its per-label log-odds) whose decision is one more
        candidate: subset accuracy 0.15 -> 0.22 on Yeast, 0.53 -> 0.57 on Medical
        (benchmarks/robustness/full-file-subset_accuracy); the other objectives do not pay for it.
    calibration
        Publish calibrated probabilities (:class:`ScoreCalibrator`, learned online from the outcomes):
        expected calibration error 25-80% lower on the benchmark streams, decisions unchanged but for
        the experts' "scored >= 0.5" candidate (benchmarks/calibration/RESULTS.md).
    **flat
        Settings of the :class:`PartitionedClassifier`.

    >>> import numpy as np
    >>> model = ScalingClassifier(flat_max_labels=8, tree={"bits": 16})
    >>> x = np.ones(4, dtype=np.float32)
    >>> for i in range(6):
    ...     model.learn_one(x, [f"label{i}"])
    >>> model.active, model.n_labels
    ('flat', 6)
    >>> for i in range(6, 10):
    ...     model.learn_one(x, [f"label{i}"])
    >>> model.active, model.n_labels, model.flat is None
    ('tree', 10, True)
    """

    state_header = {"format": STATE_FORMAT}
    state_settings = ("flat_heads_budget", "flat_max_labels", "tree_settings", "flat_settings", "calibration")
    state_fields = ("_dim",)

    def __init__(
        self,
        *,
        flat_heads_budget: int = FLAT_HEADS_BUDGET,
        flat_max_labels: int = FLAT_MAX_LABELS,
        tree: dict[str, Any] | None = None,
        objective: str = DEFAULT_OBJECTIVE,
        calibration: bool = True,
        **flat: Any,
    ) -> None:
        self.flat_heads_budget = flat_heads_budget
        self.flat_max_labels = flat_max_labels
        self.tree_settings = dict(tree or {})
        self.flat_settings = dict(flat)
        self.flat: PartitionedClassifier | None = PartitionedClassifier(**flat)
        self.tree: LabelTreeClassifier | None = None
        self._dim: int | None = None
        self.decisions = DecisionExperts(objective)
        self.label_sets = PrunedSetsClassifier() if objective == "subset_accuracy" else None
        self.calibration = calibration
        self.calibrator = ScoreCalibrator() if calibration else None
        self._predicted: CachedCandidates[_Prediction] = CachedCandidates()
        self._n_learned = 0  # the cache's version: a prediction is reused only if nothing was learned since
        self._sized_at = -1  # the label count _grow last checked the size at

    # ------------------------------------------------------------------ which learner

    @property
    def active(self) -> str:
        return "flat" if self.flat is not None else "tree"

    @property
    def model(self) -> MultiLabelClassifier:
        """The learner that predicts now."""
        return self.flat if self.flat is not None else self.tree  # type: ignore[return-value]

    def _size(self, n_labels: int | None = None) -> float:
        """How far the flat learner is towards its limits at ``n_labels`` (now: None; 1 = hand over)."""
        n = self.n_labels if n_labels is None else n_labels
        heads = n * ((self._dim or 0) + 1) * 4
        return max(n / self.flat_max_labels, heads / self.flat_heads_budget)

    def _grow(self) -> None:
        if self.flat is None:
            return
        n = len(self.flat.label_index.names_view)
        if n == self._sized_at:  # the size only changes with the label count (the dimension is fixed)
            return
        self._sized_at = n
        if self.tree is None and self._size() >= _SHADOW_FRACTION:
            self._start_tree(self.flat)
        if self.tree is not None and self._size() >= 1.0:
            self._hand_over()

    def _start_tree(self, flat: PartitionedClassifier) -> None:
        self.tree = LabelTreeClassifier(**self.tree_settings)
        # The tree knows every label from the start, grouped as the flat learner's clusterer grouped them.
        names = flat.labels
        clusters = [[names[i] for i in cluster] for cluster in flat.partition.clusters]
        self.tree.add_label_groups([*clusters, names])  # the last group: labels no cluster holds yet

    def _hand_over(self) -> None:
        self.flat = None  # the tree predicts from now on; the flat heads' memory is released
        self.label_sets = None  # it learned on the flat learner's features and log-odds
        if self.calibrator is not None:
            self.calibrator = ScoreCalibrator()  # the tree's scores (its top k) are another source

    def _hand_over_before(self, flat: PartitionedClassifier, y: list[Label]) -> None:
        """Hand over before learning ``y`` where its new labels would take the flat learner past its
        limits: the flat learner would allocate heads for all of them first (one document of 1,000 new
        labels at 2**18 features was a 1.25 GB peak against the 256 MB budget)."""
        n = len(flat.label_index)
        if len(y) < 2 or self._size(n + len(y)) < 1.0:
            return  # even if all are new (one label past the limit at most: _grow hands over after it)
        known = flat.label_index.get
        new = len({label for label in y if known(label) is None})
        if new and self._size(n + new) >= 1.0:
            if self.tree is None:
                self._start_tree(flat)
            self._hand_over()

    # ------------------------------------------------------------------ the classifier verbs

    @property
    def labels(self) -> list[Label]:
        return self.model.labels

    @property
    def input_dim(self) -> int | None:
        """The dimension of the features learned so far (None before the first document)."""
        return self._dim

    @property
    def n_labels(self) -> int:
        return len(self.flat.label_index) if self.flat is not None else len(self.model.labels)

    @property
    def partition(self) -> PartitionInfo | None:
        return self.model.partition

    def drain_events(self) -> list[DriftEvent]:
        return self.model.drain_events()

    def learn_one(self, x: Features, y: Iterable[Label]) -> None:
        y = list(y)
        # The decision experts score every candidate on this document before the learner learns it.
        prediction = self._predicted.take(x, self._n_learned, lambda: self._predict(x))
        half_ids = prediction.half
        half = None
        if half_ids is not None and self.flat is not None:  # the labels published at 0.5 or more
            names = self.flat.label_index.names_view
            half = frozenset([names[i] for i in half_ids.tolist()])
        self.decisions.learn(prediction.decided, prediction.published, y, prediction.label_sets, half)
        calibrator = self.calibrator
        if calibrator is not None:
            p, bins = prediction.p, prediction.bins
            if p is not None and bins is not None and self.flat is not None:
                if p.shape[0]:  # nothing scored (no label known yet) teaches nothing, as an empty dict
                    # The ids of y's labels known when it predicted, in y's order (as
                    # ScoreCalibrator.learn takes their probabilities from the scores).
                    known, n = self.flat.label_index.get, p.shape[0]
                    relevant = [i for i in map(known, y) if i is not None and i < n]
                    calibrator.learn_bins(p, bins, np.array(relevant, dtype=np.int64))
            elif prediction.scores:
                calibrator.learn(prediction.scores, y)
        self._n_learned += 1
        if self._dim is None:
            self._dim = feature_dim(x)
        if self.flat is not None:
            self._hand_over_before(self.flat, y)
        if self.flat is not None:  # still: _hand_over_before may have handed over to the tree
            label_sets = self.label_sets
            scaled = self.flat.evidence(x)[0] if label_sets is not None else None
            self.flat.learn_one(x, y)
            if label_sets is not None and scaled is not None:
                label_sets.learn(scaled, self.flat.label_index.ids(y))
        if self.tree is not None:
            self.tree.learn_one(x, y)
            if self.flat is not None:
                self.tree.drain_events()  # a shadow's drift is not the published model's: not reported
        self._grow()

    def _predict(self, x: Features) -> _Prediction:
        """The learner's prediction of ``x`` and the published scores, put aside for learning ``x``."""
        flat, calibrator = self.flat, self.calibrator
        if flat is not None and calibrator is not None:
            # The flat learner's arrays go to the calibrator as they are: no dict of its own scores.
            mask, p32 = flat.predict_arrays(x)
            names = flat.label_index.names_view
            p, calibrated, half, bins = calibrator.calibrate_float32(p32)
            published = dict(zip(names, calibrated.tolist(), strict=False))
            prediction = _Prediction(
                {names[i] for i in mask.nonzero()[0].tolist()},
                None,
                p,
                half,
                published,
                None if self.label_sets is None else self._label_set_decision(flat, x),
                bins,
            )
        else:
            decided, scores = self.model.predict_with_scores(x)
            published = scores if calibrator is None else calibrator.calibrate(scores)
            label_sets = self._label_set_decision(flat, x) if flat is not None else None
            prediction = _Prediction(decided, scores, None, None, published, label_sets)
        self._predicted.put(x, self._n_learned, prediction)
        return prediction

    def _label_set_decision(self, flat: PartitionedClassifier, x: Features) -> frozenset | None:
        """The pruned-sets decision for ``x`` (which ``flat`` has just predicted), named; None without one."""
        if self.label_sets is None:
            return None
        scaled, log_odds = flat.evidence(x)
        chosen = self.label_sets.decide(scaled, log_odds)
        if chosen is None:
            return None
        names = flat.label_index.names_view
        return frozenset([names[i] for i in chosen])

    def predict_with_scores(self, x: Features) -> ScoredLabels:
        prediction = self._predict(x)
        published = prediction.published
        return self.decisions.decide(prediction.decided, published, prediction.label_sets), published

    def predict_with_scores_many(self, xs: Sequence[Features]) -> list[ScoredLabels]:
        # The flat learner predicts one document at a time anyway (its batch path is a loop).
        if self.flat is not None:
            return [self.predict_with_scores(x) for x in xs]
        out = []
        for x, (decided, scores) in zip(xs, self.model.predict_with_scores_many(xs), strict=True):
            published = scores if self.calibrator is None else self.calibrator.calibrate(scores)
            self._predicted.put(x, self._n_learned, _Prediction(decided, scores, None, None, published))
            out.append((self.decisions.decide(decided, published), published))
        return out

    def predict_proba_one(self, x: Features) -> dict[Label, float]:
        return self.predict_with_scores(x)[1]

    def predict_one(self, x: Features) -> set[Label]:
        return self.predict_with_scores(x)[0]

    def predict_many(self, xs: Sequence[Features]) -> list[set[Label]]:
        return [decided for decided, _ in self.predict_with_scores_many(xs)]

    def predict_proba_many(self, xs: Sequence[Features]) -> list[dict[Label, float]]:
        return [scores for _, scores in self.predict_with_scores_many(xs)]

    def predict_top(self, x: Features, k: int) -> list[tuple[Label, float]]:
        top: list[tuple[Label, float]] = self.model.predict_top(x, k)  # type: ignore[attr-defined]
        if self.calibrator is None or not top:
            return top
        # The calibration is monotone in practice but not by construction: keep the learner's ranking.
        calibrated = self.calibrator.calibrate(dict(top))
        return [(label, calibrated[label]) for label, _ in top]

    def __getattr__(self, name: str) -> Any:
        # Components of the learner in charge (heads, clusterer, thresholds, ...) for benchmarks and tests
        # that look inside it; only reached for names this class does not define.
        if name in {
            "flat",
            "tree",
            "_dim",
            "decisions",
            "_predicted",
            "_n_learned",
            "_sized_at",
            "calibrator",
            "label_sets",
        }:
            raise AttributeError(name)
        return getattr(self.model, name)

    # ------------------------------------------------------------------ state

    @classmethod
    def from_state(cls, state: State) -> ScalingClassifier:
        if state.meta.get("format") == PartitionedClassifier.state_header["format"]:
            # The default learner of releases before this class: the flat learner alone.
            model = cls()
            model.flat = PartitionedClassifier.from_state(state)
            model._dim = model.flat.heads.dim
            model.decisions = DecisionExperts(model.decisions.objective, model_leads=True)  # it has learned
            return model
        return super().from_state(state)

    @classmethod
    def _from_settings(cls, settings: dict[str, Any]) -> ScalingClassifier:
        return cls(
            flat_heads_budget=settings["flat_heads_budget"],
            flat_max_labels=settings["flat_max_labels"],
            tree=settings["tree_settings"],
            calibration=settings.get("calibration", True),
            **settings["flat_settings"],
        )

    def _save_state(self, state: State) -> None:
        state.meta.update(has_flat=self.flat is not None, has_tree=self.tree is not None)
        if self.flat is not None:
            state.attach("flat", self.flat.state())
        if self.tree is not None:
            state.attach("tree", self.tree.state())
        state.attach("decisions", self.decisions.state())
        if self.calibrator is not None:
            state.attach("calibrator", self.calibrator.state())
        if self.label_sets is not None:
            state.attach("label_sets", self.label_sets.state())

    def _load_state(self, state: State) -> None:
        self.flat = PartitionedClassifier.from_state(state.detach("flat")) if state.meta["has_flat"] else None
        self.tree = LabelTreeClassifier.from_state(state.detach("tree")) if state.meta["has_tree"] else None
        # States written before the decision experts existed restore with fresh ones, the learner (which
        # has learned) leading.
        if "decisions" in state.meta.get("children", {}):
            self.decisions = DecisionExperts.from_state(state.detach("decisions"))
        else:
            self.decisions = DecisionExperts(self.decisions.objective, model_leads=True)
        # States written before the calibrator existed restore with a fresh one (it learns from here on).
        if self.calibrator is not None and "calibrator" in state.meta.get("children", {}):
            self.calibrator = ScoreCalibrator.from_state(state.detach("calibrator"))
        # The objective is the decision experts' setting; states written before the pruned-sets
        # classifier existed restore with a fresh one (it learns from here on, and leads only once better).
        if "label_sets" in state.meta.get("children", {}):
            self.label_sets = PrunedSetsClassifier.from_state(state.detach("label_sets"))
        elif self.decisions.objective == "subset_accuracy" and self.flat is not None:
            self.label_sets = PrunedSetsClassifier()
