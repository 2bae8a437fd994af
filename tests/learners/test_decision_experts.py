"""Decision experts: the published label set follows the candidate with the smallest loss under the objective."""

from __future__ import annotations

import numpy as np
import pytest

from labelflow.operators.learners.decision_experts import (
    CANDIDATES,
    CachedCandidates,
    DecisionExperts,
    candidate_sets,
)
from labelflow.operators.learners.scaling import ScalingClassifier
from labelflow.operators.state import State

from .conformance import dense_stream


def _run(experts: DecisionExperts, stream: list[tuple[set, dict, list]]) -> list[set]:
    out = []
    for decided, scores, y in stream:
        out.append(experts.decide(decided, scores))
        experts.learn(decided, scores, y)
    return out


def test_a_fresh_expert_set_publishes_no_change_until_the_learner_has_scored_better() -> None:
    experts = DecisionExperts()
    assert experts.leader == "no-change"
    assert experts.decide({"a", "b"}, {"a": 0.9, "b": 0.2}) == set()  # nothing learned: no previous set
    experts.learn({"a"}, {"a": 0.9}, ["a"])  # the learner right, no-change (the empty set) wrong
    assert experts.leader == "model" and experts.switches == 1
    assert experts.decide({"a", "b"}, {"a": 0.9, "b": 0.2}) == {"a", "b"}


def test_model_leads_publishes_the_learners_own_decision_from_the_start() -> None:
    experts = DecisionExperts(model_leads=True)
    assert experts.leader == "model"
    assert experts.decide({"a", "b"}, {"a": 0.9, "b": 0.2}) == {"a", "b"}


def test_a_sorted_stream_publishes_no_change_from_the_start() -> None:
    # Runs of identical label sets; the learner is right on all but the first document of each run, as
    # no-change is, and on one more document per run it is wrong where no-change is right. With the
    # learner first, its miss on the first run's second document put it behind for good: one document.
    stream = []
    for i in range(300):
        truth = [f"l{i // 30}"]
        decided = {"other"} if i % 30 in (0, 1) else set(truth)
        stream.append((decided, {"other": 0.9}, truth))
    for objective in ("micro_f1", "subset_accuracy"):
        experts = DecisionExperts(objective)
        published = _run(experts, stream)
        exact = sum(p == set(y) for p, (_, _, y) in zip(published, stream, strict=True))
        assert experts.switches == 0 and exact == 300 - 10, objective  # no-change's 10 misses, no more
        first = DecisionExperts(objective, model_leads=True)
        assert sum(p == set(y) for p, (_, _, y) in zip(_run(first, stream), stream, strict=True)) == exact - 1


def test_subset_accuracy_follows_the_empty_set_when_it_is_the_most_frequent_answer() -> None:
    # The learner always says {"a"}; the truth is the empty set 3 times in 4 (the "empty50" shape).
    stream = [({"a"}, {"a": 0.7}, ["a"] if i % 4 == 0 else []) for i in range(400)]
    experts = DecisionExperts("subset_accuracy")
    published = _run(experts, stream)
    exact = sum(p == set(y) for p, (_, _, y) in zip(published, stream, strict=True)) / len(stream)
    assert experts.leader == "majority"
    # The be-the-leader bound, counted: errors <= the best expert's errors + the changes of leader.
    best_errors = min(experts.losses.values())
    assert exact >= 1 - (best_errors + experts.switches) / len(stream)
    assert best_errors == 102  # majority: wrong on the 100 {"a"} and on 2 of the first 3 documents


def test_ordered_streams_follow_no_change() -> None:
    # Runs of 50 identical label sets; the learner is right half the time.
    stream = []
    for i in range(500):
        truth = [f"l{(i // 50) % 3}"]
        stream.append(({truth[0]} if i % 2 else {"other"}, {"other": 0.9}, truth))
    for objective in ("micro_f1", "subset_accuracy"):
        experts = DecisionExperts(objective)
        published = _run(experts, stream)
        assert experts.leader == "no-change", objective
    exact = sum(p == set(y) for p, (_, _, y) in zip(published, stream, strict=True)) / len(stream)
    no_change = 1 - 10 / 500  # wrong once per run
    assert exact >= no_change - experts.switches / len(stream)


def test_the_learner_keeps_the_lead_when_it_is_the_best() -> None:
    stream = [({f"l{i % 5}"}, {f"l{i % 5}": 0.9}, [f"l{i % 5}"]) for i in range(300)]
    for objective in ("micro_f1", "macro_f1", "subset_accuracy", "example_f1"):
        experts = DecisionExperts(objective)
        _run(experts, stream)
        assert experts.leader == "model" and experts.switches == 1, objective  # took the lead at once


def test_micro_f1_loss_prefers_the_higher_micro_f1_over_the_lower_hamming_loss() -> None:
    # Three labels per document, rare: the empty set has the smaller Hamming loss, {"a","b","c"} the
    # higher micro-F1 (2/3 of its labels are right). micro_f1 must choose the latter, subset the former.
    rng = np.random.default_rng(0)
    stream = []
    for _ in range(300):
        truth = [label for label in "abc" if rng.random() < 0.6]
        stream.append(({"a", "b", "c"}, {"a": 0.4, "b": 0.4, "c": 0.4}, truth))
    micro = DecisionExperts("micro_f1")
    _run(micro, stream)
    assert micro.leader == "model"


def test_unknown_objective_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown objective 'accuracy'"):
        DecisionExperts("accuracy")


def test_candidates_include_the_empty_set_and_the_trivial_predictors() -> None:
    sets = candidate_sets({"a"}, {"a": 0.2, "b": 0.1}, frozenset({"c"}), frozenset())
    assert dict(zip(CANDIDATES, sets, strict=True)) == {
        "model": {"a"},
        "half": frozenset(),
        "no-change": {"c"},
        "majority": frozenset(),
        "pruned-sets": {"a"},  # no label-set model: the learner's decision
    }
    assert candidate_sets({"a"}, None, frozenset(), frozenset(), {"b", "c"})[-1] == {"b", "c"}


def test_state_round_trip_continues_identically(tmp_path) -> None:
    stream = [({"a"}, {"a": 0.7, "b": 0.3}, ["b"] if i % 3 else ["a", "b"]) for i in range(120)]
    for objective in ("micro_f1", "macro_f1", "subset_accuracy", "example_f1"):
        experts = DecisionExperts(objective)
        _run(experts, stream[:60])
        experts.state().save(tmp_path / objective)
        restored = DecisionExperts.from_state(State.load(tmp_path / objective))
        assert _run(restored, stream[60:]) == _run(experts, stream[60:])
        assert restored.losses == experts.losses and restored.switches == experts.switches


def test_cached_candidates_are_reused_only_for_the_same_object_and_version() -> None:
    cache = CachedCandidates(capacity=2)
    x, y = np.ones(2), np.ones(2)
    cache.put(x, 0, ({"a"}, None))
    assert cache.take(y, 0, lambda: ({"fresh"}, None)) == ({"fresh"}, None)
    assert cache.take(x, 0, lambda: ({"fresh"}, None)) == ({"a"}, None)
    assert cache.take(x, 0, lambda: ({"fresh"}, None)) == ({"fresh"}, None)  # taken once
    cache.put(x, 0, ({"a"}, None))
    assert cache.take(x, 1, lambda: ({"fresh"}, None)) == ({"fresh"}, None)  # the learner changed since


def test_the_experts_state_does_not_depend_on_batch_boundaries() -> None:
    # A replay after a crash predicts in other batches; the learned state must be the same bit for bit.
    stream = list(dense_stream(120, seed=5))
    states = []
    for batch in (1, 7, 32):
        model = ScalingClassifier()
        for start in range(0, len(stream), batch):
            chunk = stream[start : start + batch]
            model.predict_with_scores_many([x for x, _ in chunk])
            for x, y in chunk:
                model.learn_one(x, y)
        states.append(model.decisions.state())
    for other in states[1:]:
        assert other.meta == states[0].meta
        for name, value in states[0].arrays.items():
            np.testing.assert_array_equal(other.arrays[name], value, err_msg=name)


def test_the_default_learner_publishes_the_majority_set_where_the_empty_set_dominates(tmp_path) -> None:
    # Labels on only one document in four: the learner's threshold cuts keep proposing labels.
    model = ScalingClassifier(objective="subset_accuracy")
    stream = list(dense_stream(400, seed=3))
    exact = 0
    for i, (x, y) in enumerate(stream):
        truth = y if i % 4 == 0 else []
        exact += model.predict_one(x) == set(truth)
        model.learn_one(x, truth)
    decisions = model.decisions
    assert exact >= len(stream) - min(decisions.losses.values()) - decisions.switches
    assert decisions.leader in ("majority", "half", "no-change")
    model.state().save(tmp_path / "m")
    restored = ScalingClassifier.from_state(State.load(tmp_path / "m"))
    assert restored.decisions.leader == model.decisions.leader
    xs = [x for x, _ in stream[:20]]
    assert restored.predict_many(xs) == model.predict_many(xs)


def test_each_experts_loss_is_its_candidates_score_over_the_stream() -> None:
    # The running counts must equal the metric recomputed from every candidate's label sets.
    rng = np.random.default_rng(4)
    labels = list("abcdef")
    stream = []
    for _ in range(300):
        scores = {label: float(rng.random()) for label in labels}
        decided = {label for label in labels if rng.random() < 0.3}
        truth = [label for label in labels if rng.random() < 0.25]
        stream.append((decided, scores, truth))
    for objective in ("micro_f1", "subset_accuracy", "example_f1"):
        experts = DecisionExperts(objective)
        last, counts, majority = frozenset(), {}, frozenset()
        sets: list[list[frozenset]] = []
        for decided, scores, truth in stream:
            sets.append(candidate_sets(decided, scores, last, majority))
            experts.learn(decided, scores, truth)
            last = frozenset(truth)
            counts[last] = counts.get(last, 0) + 1
            if counts[last] > counts.get(majority, 0):
                majority = last
        truths = [frozenset(y) for _, _, y in stream]
        for e, name in enumerate(CANDIDATES):
            predicted = [s[e] for s in sets]
            if objective == "micro_f1":
                tp = sum(len(p & t) for p, t in zip(predicted, truths, strict=True))
                size = sum(len(p) + len(t) for p, t in zip(predicted, truths, strict=True))
                expected = 1 - 2 * tp / size
            elif objective == "subset_accuracy":
                expected = sum(p != t for p, t in zip(predicted, truths, strict=True))
            else:
                expected = sum(
                    1 - (2 * len(p & t) / (len(p) + len(t)) if p or t else 1.0)
                    for p, t in zip(predicted, truths, strict=True)
                )
            assert experts.losses[name] == pytest.approx(expected, abs=1e-9), (objective, name)


def test_a_learner_restored_from_before_the_experts_keeps_its_own_decisions_leading(tmp_path) -> None:
    # The flat learner's state is what releases before ScalingClassifier wrote: it has learned, so its
    # decisions lead (a fresh expert set would publish no-change, the empty set, until feedback came).
    model = ScalingClassifier()
    stream = list(dense_stream(60, seed=2))
    for x, y in stream:
        model.learn_one(x, y)
    assert model.flat is not None
    model.flat.state().save(tmp_path / "flat")
    restored = ScalingClassifier.from_state(State.load(tmp_path / "flat"))
    assert restored.decisions.leader == "model" and restored.decisions.switches == 0
    xs = [x for x, _ in stream[:10]]
    assert restored.predict_many(xs) == [model.flat.predict_one(x) for x in xs]
