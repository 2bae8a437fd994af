"""Producer compression of the worker's predictions: ratio and CPU time per codec.

The worker's default model predicts the first documents of Reuters-21578 (half of them labelled, so it
learns as it goes); the prediction messages it would produce are cut into batches of ``batch.size``
(500) and each batch is compressed with every codec kafka-python offers, through kafka-python's own
codec functions (what its producer calls on a record batch). Reported: bytes before and after, and the
CPU seconds (``time.process_time``, median of repeats) to compress and to decompress a batch.

    python benchmarks/compression/run.py --documents 3000 --repeats 5
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from kafka import codec

from labelflow.operators.evaluation.machine import describe_machine
from labelflow.stream.config import Settings
from labelflow.stream.feedback_store import FeedbackStore
from labelflow.stream.model_runtime import ModelRuntime
from labelflow.stream.processor import BatchProcessor, InputRecord, RuntimeCounters
from labelflow.stream.quality import QualityTracker

HERE = Path(__file__).resolve().parent
DATASET = (
    HERE.parents[1].parent / "shared" / "datasets" / "reuters21578_modapte" / "reuters21578_modapte.jsonl"
)

CODECS: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
    "gzip": (codec.gzip_encode, codec.gzip_decode),
    "snappy": (codec.snappy_encode, codec.snappy_decode),
    "lz4": (codec.lz4_encode, codec.lz4_decode),
    "zstd": (codec.zstd_encode, codec.zstd_decode),
}


def predictions(n_documents: int, batch_size: int) -> list[bytes]:
    """The prediction values of the first ``n_documents``, concatenated per batch of ``batch_size``."""
    settings = Settings(topics={"documents": "docs", "labels": "labels"})
    runtime = ModelRuntime.from_settings(settings.model)
    processor = BatchProcessor(
        settings, runtime, FeedbackStore(20_000, 3_600, 100_000), RuntimeCounters(), QualityTracker(1_000)
    )
    records = []
    with DATASET.open() as handle:
        for i, line in enumerate(handle):
            if i >= n_documents:
                break
            doc = json.loads(line)
            message = {"id": doc["id"], "text": doc["text"]}
            if i % 2 == 0:
                message["labels"] = doc["labels"]
            records.append(InputRecord("docs", 0, i, doc["id"].encode(), json.dumps(message).encode()))
    batches = []
    for start in range(0, len(records), batch_size):
        outcome = processor.process(records[start : start + batch_size])
        values = [m.value for m in outcome.messages if m.topic == settings.topics.predictions]
        batches.append(b"".join(values))
    return batches


def cpu_seconds(function: Callable[[bytes], bytes], payloads: list[bytes], repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        started = time.process_time()
        for payload in payloads:
            function(payload)
        runs.append((time.process_time() - started) / len(payloads))
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=3_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    batches = predictions(args.documents, Settings().batch.size)
    # The first batches come from a model that knows few labels: measure the later, full-size ones.
    batches = batches[len(batches) // 2 :]
    raw = sum(len(b) for b in batches)
    rows = []
    for name, (encode, decode) in CODECS.items():
        compressed = [encode(b) for b in batches]
        assert all(decode(c) == b for c, b in zip(compressed, batches, strict=True))
        size = sum(len(c) for c in compressed)
        rows.append(
            {
                "codec": name,
                "ratio": raw / size,
                "compress_ms": 1000 * cpu_seconds(encode, batches, args.repeats),
                "decompress_ms": 1000 * cpu_seconds(decode, compressed, args.repeats),
                "bytes": size,
            }
        )
    per_batch = raw / len(batches)
    lines = [
        "# Producer compression of predictions",
        "",
        f"Command: `python benchmarks/compression/run.py --documents {args.documents} --repeats {args.repeats}`  ",
        f"Machine: {describe_machine()}  ",
        f"Date: {datetime.date.today().isoformat()}",
        "",
        f"The worker's default model on the first {args.documents:,} Reuters-21578 documents (every other one "
        f"labelled); the prediction messages of the last {len(batches)} batches of 500 "
        f"({per_batch / 1e6:.2f} MB of JSON a batch, every known label scored), compressed per batch with "
        "kafka-python's codec functions. CPU milliseconds per batch, medians of "
        f"{args.repeats} runs.",
        "",
        "| codec | compressed/raw | ratio | compress ms/batch | decompress ms/batch |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['codec']} | {row['bytes'] / raw:.3f} | {row['ratio']:.1f}x | "
            f"{row['compress_ms']:.1f} | {row['decompress_ms']:.1f} |"
        )
    (HERE / "RESULTS.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
