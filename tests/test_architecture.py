"""The layering of mdval, read from the imports of its source (ast, nothing is imported).

Imports flow one way: base → nn → data → deploy (export, serve) → train and md → report. Training
code is never imported by inference (deploy), MD or the report; the report is never imported
below it. The entry points (``mdval/__init__.py``, ``cli.py``, ``__main__.py``) dispatch to every
layer and are exempt.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mdval"
BASE = {"abi", "fileio", "argtypes", "options", "resources", "__version__"}
ENTRY = {"mdval", "mdval.cli", "mdval.__main__"}
#: what each layer may import besides itself and the base modules
ALLOWED = {
    "base": set(),
    "nn": set(),
    "data": {"nn"},
    "deploy": {"nn", "data"},
    "train": {"nn", "data", "deploy"},
    "md": {"nn", "data", "deploy"},
    "report": {"nn", "data", "deploy", "md"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The mdval modules that ``path`` imports (absolute and relative, at any depth in the file)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            source = node.module
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(parts + ([node.module] if node.module else []))
            # from mdval.md import results: a submodule or a name, of mdval.md either way
            found |= {source} | {f"{source}.{alias.name}" for alias in node.names}
    return {m for m in found if m == "mdval" or m.startswith("mdval.")}


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in BASE:
        return "base"
    return parts[1]


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if module_name(p) not in ENTRY)


def test_the_import_reader_sees_absolute_relative_and_nested_imports():
    found = imports(PACKAGE / "md" / "ase_engine.py")
    assert {"mdval.fileio", "mdval.md.results", "mdval.deploy.calculator", "mdval.data.teachers"} <= found
    assert layer("mdval.fileio") == "base" and layer("mdval.md.results") == "md" and layer("mdval") == "base"
    assert {layer(module_name(p)) for p in modules()} == set(ALLOWED)


@pytest.mark.parametrize("path", modules(), ids=module_name)
def test_imports_flow_one_way(path):
    own = layer(module_name(path))
    wrong = sorted(m for m in imports(path) if layer(m) not in {own, "base"} | ALLOWED[own])
    assert not wrong, f"{module_name(path)} ({own}) may import only base and {sorted(ALLOWED[own])}, imports {wrong}"


def test_nothing_reaches_the_repository_through_parents():
    users = [str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py") if "parents[" in p.read_text()]
    assert not users, f"read packaged files with mdval.resources, not through Path.parents[...]: {users}"


def test_the_report_starts_no_process():
    """report/ reads results and renders them; runs and worker pools live in md/ (mdval.md.matrix)."""
    starters = {"subprocess", "multiprocessing", "concurrent.futures", "os.system"}
    for path in sorted((PACKAGE / "report").glob("*.py")):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                found.add(node.module)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                found.add(f"{node.value.id}.{node.attr}")
        assert not found & starters, f"{path.name} starts processes ({sorted(found & starters)}); use mdval.md.matrix"
