"""The worker process's garbage collector: what it need not look at, and how often it looks.

A worker imports numpy, numba, torch, pydantic, kafka-python and river before it reads its first
record: about 90,000 container objects that live as long as the process. CPython's full (oldest
generation) collection walks all of them every time, about 100 ms on the 2-core benchmark machine,
and a worker triggered one every few thousand documents (objects that outlive a batch: waiting
documents, producer futures, the model's own growth): 16-30 µs per document of the no-change
learner's labelled mix went to walking the same imported modules again. ``gc.freeze`` moves the
objects alive at start-up out of the collector's reach; later objects are collected as before.

The youngest generation is collected after 10,000 net allocations instead of 700: a micro-batch keeps
thousands of objects alive (records, documents, feature vectors, output futures) for its whole
duration, and at 700 every collection walked and promoted them again, ~5 CPU µs per document
(measured with ``gc.callbacks``; 0.7 µs per document at 10,000). Garbage cycles wait a little longer.
"""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)

YOUNG_COLLECTION_THRESHOLD = 10_000


def tune_garbage_collection() -> int:
    """Collect once, exempt every object alive now from later collections, collect the youngest
    generation less often; how many objects were frozen.

    For a process's entry point (``labelflow run``), once imports are done and the model is built: a
    frozen object that becomes garbage later is freed by reference counting as usual; only a reference
    cycle among frozen objects would stay (the modules and the model built at start-up end with the
    process).

    >>> import gc
    >>> before = gc.get_threshold()
    >>> tune_garbage_collection() > 0, gc.get_threshold()[0]
    (True, 10000)
    >>> gc.unfreeze(); gc.set_threshold(*before)
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, older, oldest)
    frozen = gc.get_freeze_count()
    logger.info(
        "event=garbage_collection_tuned frozen_objects=%d young_threshold=%d",
        frozen,
        YOUNG_COLLECTION_THRESHOLD,
    )
    return frozen
