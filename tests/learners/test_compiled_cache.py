"""Cached kernels are dropped when a module changes (``operators.compiled.drop_stale_kernels``): numba
checks a cached kernel against its own file only, so a kernel calling an edited kernel of another module
kept the old code."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from labelflow.operators.compiled import drop_stale_kernels

CALLEE = "from labelflow.operators.compiled import kernel\n\n@kernel\ndef step(x):\n    return x + {}\n"
CALLER = textwrap.dedent(
    """
    from labelflow.operators.compiled import kernel
    from kernels_pkg.callee import step

    @kernel
    def twice(x):
        return step(step(x))
    """
)
RUN = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from labelflow.operators.compiled import drop_stale_kernels
    package = Path(sys.argv[1]) / "kernels_pkg"
    if sys.argv[2] == "drop":
        drop_stale_kernels(package, package / "__pycache__" / "stamp")
    sys.path.insert(0, sys.argv[1])
    from kernels_pkg.caller import twice
    print(twice(0))
    """
)


def test_a_changed_module_drops_the_cached_kernels_once(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub" / "__pycache__").mkdir(parents=True)
    (package / "a.py").write_text("@kernel\ndef x(): ...\n")
    (package / "sub" / "b.py").write_text("@kernel\ndef y(): ...\n")
    (package / "plain.py").write_text("z = 1\n")
    cached = [package / "sub" / "__pycache__" / f"b.f-1.py311.{ext}" for ext in ("nbi", "nbc")]
    for path in cached:
        path.write_bytes(b"compiled")
    stamp = package / "__pycache__" / "stamp"
    assert drop_stale_kernels(package, stamp) == 2 and not any(p.exists() for p in cached)
    for path in cached:
        path.write_bytes(b"compiled")
    assert drop_stale_kernels(package, stamp) == 0 and all(p.exists() for p in cached)  # nothing changed
    (package / "plain.py").write_text("z = 10\n")
    assert drop_stale_kernels(package, stamp) == 0  # no kernel there: the cache stays
    (package / "a.py").write_text("@kernel\ndef x(): return 10\n")
    assert drop_stale_kernels(package, stamp) == 2


def test_an_edited_callee_reaches_its_cached_caller(tmp_path: Path) -> None:
    package = tmp_path / "kernels_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "caller.py").write_text(CALLER)
    script = tmp_path / "run.py"
    script.write_text(RUN)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}

    def twice(mode: str) -> int:
        done = subprocess.run(
            [sys.executable, str(script), str(tmp_path), mode],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        return int(done.stdout.split()[-1])

    (package / "callee.py").write_text(CALLEE.format(1))
    assert twice("drop") == 2  # compiled and cached
    (package / "callee.py").write_text(CALLEE.format(5))
    assert twice("keep") == 2  # numba's own check: the caller's cache still holds the old callee
    assert twice("drop") == 10  # the stamp changed: the cache is dropped and compiled afresh
