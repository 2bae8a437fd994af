"""Check the transformer embedder on an accelerator: conformance checks, and agreement with reference
embeddings computed elsewhere (e.g. float32 on a CPU).

The tests exercise the device code path on a CPU; this script runs the same code on a GPU, where
half precision changes results by ~1e-3, so batch-vs-single agreement is checked at that tolerance.

    python benchmarks/embedding/gpu_check.py --device cuda --reference ref.npy --out check.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import DEFAULT_REUTERS, read_texts  # noqa: E402  (the benchmark's reader, same article order)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--reuters", default=str(DEFAULT_REUTERS))
    parser.add_argument(
        "--reference", default=None, help=".npy of reference embeddings of the first N articles"
    )
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    from labelflow.operators.embedders import checks
    from labelflow.operators.embedders.transformer import TransformerEmbedder

    embedder = TransformerEmbedder(
        args.model_dir,
        device=args.device,
        dtype=args.dtype,
        max_seq_length=args.max_seq_length,
        batch_size=32,
    )
    half = embedder.dtype != __import__("torch").float32
    report: dict = {
        "device": str(embedder.device),
        "dtype": str(embedder.dtype),
        "identity": embedder.identity,
    }
    failures = []
    for check in checks.EMBEDDER_CHECKS:
        try:
            if check is checks.check_batch_equals_one_by_one:
                check(embedder, atol=5e-3 if half else 1e-4)
            else:
                check(embedder)
        except AssertionError as exc:
            failures.append(f"{check.__name__}: {exc}")
    report["check_failures"] = failures
    if args.reference:
        reference = np.load(args.reference, allow_pickle=False)
        texts = read_texts(Path(args.reuters), reference.shape[0])
        got = embedder.embed_array(texts)
        cosine = np.sum(got * reference, axis=1) / (
            np.linalg.norm(got, axis=1) * np.linalg.norm(reference, axis=1)
        )
        report["reference_cosine"] = {
            "n": int(reference.shape[0]),
            "min": float(cosine.min()),
            "median": float(np.median(cosine)),
            "max_abs_diff": float(np.abs(got - reference).max()),
        }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
