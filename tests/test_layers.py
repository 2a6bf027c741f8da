"""The package layering of CONTRIBUTING.md, read from the source: who imports whom, and module size."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mads_text", "synth", "mads_audio", "train", "serve")
ALLOWED = {
    "mads_text": set(),
    "synth": {"mads_text"},
    "mads_audio": {"mads_text", "synth"},
    "train": {"mads_text", "mads_audio", "synth"},
    "serve": {"mads_text", "mads_audio", "synth"},
}
# "package.module[:function]" strings name code that is imported later (Ray actors, entry points)
DOTTED = re.compile(r"^(%s)(\.\w+)+(:\w+)?$|^(%s):\w+$" % ("|".join(PACKAGES), "|".join(PACKAGES)))


def _names_a_module(dotted: str) -> bool:
    parts = dotted.split(":")[0].split(".")
    base = ROOT.joinpath(*parts)
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _modules(pkg: str) -> list[Path]:
    return sorted((ROOT / pkg).rglob("*.py"))


def imported_packages(path: Path) -> set[str]:
    """Our top-level packages that a file imports, statically or by a dotted string."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and DOTTED.match(node.value) \
                and _names_a_module(node.value):
            names = [node.value]
        found |= {n.split(".")[0].split(":")[0] for n in names} & set(PACKAGES)
    return found


def test_each_package_imports_only_the_layers_below_it():
    wrong = []
    for pkg in PACKAGES:
        for path in _modules(pkg):
            extra = imported_packages(path) - ALLOWED[pkg] - {pkg}
            if extra:
                wrong.append(f"{path.relative_to(ROOT)} imports {sorted(extra)}")
    assert not wrong, "\n".join(wrong)


def test_the_package_graph_has_no_cycle():
    graph = {pkg: set().union(*(imported_packages(p) for p in _modules(pkg))) - {pkg} for pkg in PACKAGES}
    seen: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        if seen.get(node) == 1:
            raise AssertionError("cycle: " + " -> ".join(stack + [node]))
        if seen.get(node) == 2:
            return
        seen[node] = 1
        for nxt in sorted(graph[node]):
            visit(nxt, stack + [node])
        seen[node] = 2

    for pkg in PACKAGES:
        visit(pkg, [])


def test_the_checker_sees_imports_and_dotted_strings(tmp_path):
    src = tmp_path / "m.py"
    src.write_text('import serve.call\nfrom synth import mix\nfactory = "train.sft:main"\nx = "train.jsonl"\n')
    assert imported_packages(src) == {"serve", "synth", "train"}


def test_no_module_is_longer_than_450_lines():
    long = [f"{p.relative_to(ROOT)}: {n}" for pkg in PACKAGES for p in _modules(pkg)
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450]
    assert not long, "split these by concern:\n" + "\n".join(long)
