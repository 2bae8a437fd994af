"""The worker's warm-up: the learner's compiled kernels are loaded before the first batch, on a
throwaway model, and the model the worker serves is left exactly as it was."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from labelflow.operators.learners.tree_classifier import LabelTreeClassifier
from labelflow.stream.config import ModelSettings
from labelflow.stream.messages import Document
from labelflow.stream.model_runtime import ModelRuntime

# In a new process (kernels are loaded once per process): how many compiled kernels the first 600
# labelled documents load, with and without a warm-up of the default learner first.
_FIRST_LOADS = textwrap.dedent(
    """
    import json, sys
    import numba.core.dispatcher as dispatcher
    from labelflow.operators.datasets.synthetic import SyntheticStream, SyntheticStreamConfig
    from labelflow.stream.config import ModelSettings
    from labelflow.stream.messages import Document
    from labelflow.stream.model_runtime import ModelRuntime

    runtime = ModelRuntime.from_settings(ModelSettings())
    warmed = runtime.warm_up(int(sys.argv[1]))
    loads = []
    compile_for_args = dispatcher._DispatcherBase._compile_for_args

    def counted(self, *args, **kwargs):
        loads.append(self.py_func.__name__)
        return compile_for_args(self, *args, **kwargs)

    dispatcher._DispatcherBase._compile_for_args = counted
    stream = SyntheticStream(SyntheticStreamConfig(seed=11, n_documents=600))
    documents = [Document(id=d.id, text=d.text) for d in stream]
    for document, labels in zip(documents, (d.labels for d in stream)):
        (x,) = runtime.features([document])
        runtime.predict([x])
        runtime.learn(x, labels)
    print(json.dumps({"warmed": warmed, "loads": loads}))
    """
)


def first_loads(warm_up_documents: int) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_LOADS, str(warm_up_documents)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_after_the_warm_up_the_first_documents_load_no_compiled_kernel() -> None:
    cold = first_loads(0)
    assert cold["warmed"] == 0 and len(cold["loads"]) >= 10  # type: ignore[arg-type]
    warm = first_loads(600)
    assert warm == {"warmed": 600, "loads": []}


def test_the_warm_up_leaves_the_served_model_as_it_was() -> None:
    runtime = ModelRuntime.from_settings(ModelSettings())
    (x,) = runtime.features([Document(id="a", text="wheat and corn exports rose")])
    assert not isinstance(x, Exception)
    runtime.learn(x, ["grain"])
    before = runtime.state()
    assert runtime.warm_up(50) == 50
    after = runtime.state()
    assert after.meta == before.meta and after.arrays.keys() == before.arrays.keys()
    assert all(after.arrays[k].tobytes() == before.arrays[k].tobytes() for k in before.arrays)
    assert runtime.labels == ["grain"] and runtime.n_learned == 1


def test_a_model_given_as_an_instance_is_not_warmed_and_zero_documents_skip_it() -> None:
    given = ModelRuntime.from_settings(ModelSettings(), model=LabelTreeClassifier(bits=12))
    assert given.new_model is None and given.warm_up(600) == 0
    assert ModelRuntime.from_settings(ModelSettings()).warm_up(0) == 0


def test_a_failing_warm_up_is_logged_and_the_worker_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    runtime = ModelRuntime.from_settings(ModelSettings())

    def broken() -> LabelTreeClassifier:
        raise MemoryError("no room for a second model")

    runtime.new_model = broken
    assert runtime.warm_up(600) == 0
    assert "event=warm_up_failed" in caplog.text
