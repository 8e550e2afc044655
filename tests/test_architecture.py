"""The layering of mdval, read from the imports of its source (ast, nothing is imported).

Imports flow one way: base → nn → data → deploy (export, serve) → train and md → report. Training
code is never imported by inference (deploy), MD or the report; the report is never imported
below it. The entry points (``mdval/__init__.py``, ``cli.py``, ``__main__.py``) dispatch to every
layer and are exempt.

mdval/report/ renders finished results: none of its modules starts a process, and none but the
command glue (report/commands.py) imports or calls the MD runners (engines, run matrix, NVE
ladder). No file in mdval/ is over 600 lines, no function over 80.
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


def imports(path: Path, name: str | None = None) -> set[str]:
    """The mdval modules that ``path`` (the module ``name``, by default its name in the package)
    imports, absolute and relative, at any depth in the file."""
    name = name or module_name(path)
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


#: what starts a process (imports, and calls through ``os``)
PROCESS_STARTERS = {
    "subprocess",
    "multiprocessing",
    "concurrent.futures",
    "os.system",
    "os.popen",
    "os.fork",
    "os.spawnv",
    "os.execv",
    "pty",
}
#: the modules that run MD: the engines, the run matrix and its pool, the NVE ladder
MD_RUNNERS = {"mdval.md.ase_engine", "mdval.md.lammps_engine", "mdval.md.matrix", "mdval.md.nve_ladder"}
#: the command glue of `mdval report`, `compare` and `demo`: it calls md/ to run, then report/ to render
REPORT_COMMANDS = "mdval.report.commands"
MAX_FILE_LINES, MAX_FUNCTION_LINES = 600, 80


def process_starters(path: Path) -> set[str]:
    """The process-starting modules and ``os`` calls that ``path`` imports or names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            found.add(f"{node.value.id}.{node.attr}")
    return {name for name in found if name in PROCESS_STARTERS or name.split(".")[0] in PROCESS_STARTERS}


def runner_functions() -> set[str]:
    """The public run functions of the MD runners (run_ase, run_one, run_matrix, run_pool, ...)."""
    names = set()
    for module in MD_RUNNERS:
        path = PACKAGE.parent.joinpath(*module.split(".")).with_suffix(".py")
        names |= {
            node.name
            for node in ast.parse(path.read_text()).body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("run")
        }
    return names


def md_runs(path: Path, name: str | None = None) -> set[str]:
    """The MD runner modules that ``path`` (the module ``name``) imports and the runner functions
    it calls."""
    found = imports(path, name) & MD_RUNNERS
    runners = runner_functions()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            called = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if called in runners:
                found.add(f"{called}()")
    return found


def test_the_checks_see_a_report_module_that_runs(tmp_path):
    source = (
        "import concurrent.futures\nfrom multiprocessing import Pool\nfrom mdval.md import matrix\n"
        "def f(wf):\n    os.system('lmp')\n    return matrix.run_matrix(wf), run_ase(1, 2, 3, 4)\n"
    )
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    assert process_starters(probe) == {"concurrent.futures", "multiprocessing", "multiprocessing.Pool", "os.system"}
    runners = {"run_one", "run_matrix", "run_workflow", "run_pool", "run_ase", "run_lammps", "run_ladder"}
    assert runners <= runner_functions()
    assert md_runs(probe, "mdval.report.probe") == {"mdval.md.matrix", "run_matrix()", "run_ase()"}


@pytest.mark.parametrize("path", sorted((PACKAGE / "report").glob("*.py")), ids=lambda p: p.name)
def test_the_report_starts_no_process_and_runs_no_md(path):
    """report/ reads results and renders them; runs and worker pools live in md/. Only the command
    glue (report/commands.py) calls md/ to run before it calls report/ to render."""
    starters = process_starters(path)
    assert not starters, f"{path.name} starts processes ({sorted(starters)}); runs belong in mdval.md"
    if module_name(path) != REPORT_COMMANDS:
        runs = md_runs(path)
        assert not runs, f"{path.name} runs MD ({sorted(runs)}); take finished results from mdval.md instead"


def test_no_file_over_600_lines_and_no_function_over_80():
    long_files, long_functions = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        name = str(path.relative_to(PACKAGE.parent))
        if len(text.splitlines()) > MAX_FILE_LINES:
            long_files.append(f"{name} ({len(text.splitlines())} lines)")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{name}:{node.lineno} {node.name} ({length} lines)")
    assert not long_files, f"split these modules (at most {MAX_FILE_LINES} lines): {long_files}"
    assert not long_functions, f"split these functions (at most {MAX_FUNCTION_LINES} lines): {long_functions}"
