"""The worker process's heap: the objects its garbage collector never needs to look at again.

A worker imports numpy, numba, torch, pydantic, kafka-python and river before it reads its first
record: about 90,000 container objects that live as long as the process. CPython's full (oldest
generation) collection walks all of them every time, about 100 ms on the 2-core benchmark machine,
and a worker triggers one every few thousand documents (objects that outlive a batch: waiting
documents, producer futures, the model's own growth): 16-30 µs per document of the no-change
learner's labelled mix went to walking the same imported modules again. ``gc.freeze`` moves the
objects alive at start-up out of the collector's reach; later objects are collected as before.
"""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)


def freeze_startup_objects() -> int:
    """Collect once, then exempt every object alive now from later collections; how many.

    For a process's entry point (``labelflow run``), after imports and the model are built: a frozen
    object that becomes garbage later is freed by reference counting as usual, only a reference cycle
    among frozen objects would stay (the modules and model built at start-up hold none that end).

    >>> freeze_startup_objects() > 0
    True
    >>> import gc; gc.unfreeze()
    """
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.info("event=startup_objects_frozen objects=%d", frozen)
    return frozen
