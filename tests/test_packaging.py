"""mdval installs as a package: its run-time files are package data found with importlib.resources,
and the LAMMPS plugin builds into a per-user cache keyed by what it is built from.

Quick tests check the source tree and the cache layout. The slow one installs the clone with
``pip install`` (not editable) into a fresh virtualenv, builds the plugin and runs LAMMPS MD with
a packaged zoo model from a folder outside the clone.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import tomllib

from mdval import resources
from mdval.deploy import lammps_plugin

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "mdval"
VENV_BIN = Path(sys.executable).parent

# Ways a module could find files from its own location (and so reach the clone around the package)
# instead of through importlib.resources. Running a module's own file (md/guard.py) is fine.
OUTSIDE_THE_PACKAGE = [r"parents\[", r"__file__.*\.parent\b", r"dirname\(.*__file__", r"""__file__.*["']\.\.["']"""]


def package_modules() -> list[Path]:
    # os.walk does not follow the links in mdval/resources (they hold no Python).
    return sorted(
        Path(folder) / name for folder, _, names in os.walk(PACKAGE) for name in names if name.endswith(".py")
    )


def test_no_module_reaches_outside_the_package():
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in package_modules()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if any(re.search(pattern, line) for pattern in OUTSIDE_THE_PACKAGE)
    ]
    assert len(package_modules()) > 50
    assert not offenders, "read package files with mdval.resources.path(...) instead:\n" + "\n".join(offenders)


def packaged_files() -> set[str]:
    """What a wheel holds of mdval/resources: pyproject's package-data globs, expanded as setuptools
    expands them (relative to the package folder, through the links)."""
    with open(REPO / "pyproject.toml", "rb") as handle:
        patterns = tomllib.load(handle)["tool"]["setuptools"]["package-data"]["mdval.resources"]
    root = PACKAGE / "resources"
    return {name for pattern in patterns for name in glob.glob(pattern, root_dir=root) if (root / name).is_file()}


def test_every_resource_the_code_reads_is_declared_as_package_data(tmp_path, monkeypatch):
    root = PACKAGE / "resources"
    needed = {"md.in", "workflows/cu_demo.toml"}
    src = lammps_plugin.source_dir()
    assert src == (REPO / "pair_style").resolve()
    needed |= {f"pair_style/{path.relative_to(src)}" for path in lammps_plugin._sources(src)}
    # the demo's zoo as the packaged spec finds it from elsewhere: model files, cards, training logs
    from mdval.md.workflow import load_workflow

    monkeypatch.chdir(tmp_path)
    models = load_workflow(resources.path("workflows", "cu_demo.toml")).models
    assert len(models) == 8, models
    for model in map(Path, models):
        for sibling in (model, model.with_suffix(".json"), model.with_suffix(".log.jsonl")):
            assert sibling.is_file(), sibling
            needed.add(f"models/cu/{sibling.name}")
    missing = needed - packaged_files()
    assert not missing, f"add these to [tool.setuptools.package-data] in pyproject.toml: {sorted(missing)}"
    assert all((root / name).is_file() for name in needed)


def test_resources_are_found_through_importlib_resources():
    from importlib import resources as importlib_resources

    packaged = importlib_resources.files("mdval.resources")
    assert resources.path("md.in").read_text() == packaged.joinpath("md.in").read_text()
    assert "@{pair_lines}" in resources.path("md.in").read_text()
    assert resources.path("pair_style", "CMakeLists.txt").read_text().startswith("# pair_style taafs")
    with pytest.raises(FileNotFoundError, match=r"resource no/such\.file is missing from .*: reinstall mdval"):
        resources.path("no", "such.file")


def test_cache_root_follows_xdg_cache_home(tmp_path, monkeypatch):
    import mdval

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert lammps_plugin.cache_root() == tmp_path / "mdval" / mdval.__version__
    assert Path(lammps_plugin.plugin_dir()).parent == tmp_path / "mdval" / mdval.__version__
    for unset in ("", "relative/cache"):  # the XDG spec: ignore a relative path
        monkeypatch.setenv("XDG_CACHE_HOME", unset)
        assert lammps_plugin.cache_root() == Path.home() / ".cache" / "mdval" / mdval.__version__


def test_plugin_folder_is_keyed_by_sources_folder_and_content(tmp_path):
    def folder(src: Path) -> Path:
        return lammps_plugin._plugin_folder(lammps_plugin._fingerprint(src))

    here = lammps_plugin.source_dir()
    assert folder(here) == Path(lammps_plugin.plugin_dir())
    copy = tmp_path / "pair_style"
    shutil.copytree(here, copy, ignore=shutil.ignore_patterns("build", "doc"))
    assert folder(copy) != folder(here)  # another install never overwrites this one's plugin
    before = folder(copy)
    assert folder(copy) == before  # stable while nothing changes
    source = copy / "src" / "taafs_plugin.cpp"
    source.write_text(source.read_text() + "\n// edited\n")
    assert folder(copy) != before  # an edit builds anew
    import torch

    fingerprint = lammps_plugin._fingerprint(here)
    assert fingerprint["torch"] == torch.__version__ and fingerprint["lammps"] == metadata.version("lammps")
    assert Path(fingerprint["torch_dir"]) == Path(torch.__file__).resolve().parent  # the RPATH's folder


def test_a_build_removes_only_the_superseded_builds_of_its_own_install(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    fingerprint = lammps_plugin._fingerprint(lammps_plugin.source_dir())
    root = lammps_plugin.cache_root()

    def plugin_folder(name: str, **changes) -> Path:
        folder = root / name
        folder.mkdir(parents=True)
        (folder / lammps_plugin.STAMP_NAME).write_text(json.dumps(fingerprint | changes))
        return folder

    current = plugin_folder("plugin-current", complete=True)
    edited = plugin_folder("plugin-older", sources_sha256="0" * 64, complete=True)
    cut_short = plugin_folder("plugin-killed", sources_sha256="1" * 64, complete=False)
    other_clone = plugin_folder("plugin-clone", source_dir="/elsewhere/pair_style", complete=True)
    other_venv = plugin_folder("plugin-venv", torch_dir="/elsewhere/torch", complete=True)
    lammps_plugin._remove_superseded(current, fingerprint)
    assert current.exists() and other_clone.exists() and other_venv.exists()
    assert not edited.exists() and not cut_short.exists()


def test_lammps_check_with_an_empty_cache_says_missing_and_how_to_build(tmp_path):
    """lmp (through the lammps.plugins entry point) looks in the cache that XDG_CACHE_HOME names."""
    # Without LAMMPS_PLUGIN_PATH: an earlier `import lammps` in this process set it to the real
    # plugin folder, and lmp would find that one.
    env = {k: v for k, v in os.environ.items() if k != "LAMMPS_PLUGIN_PATH"}
    proc = subprocess.run(
        [str(VENV_BIN / "mdval"), "lammps", "check"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        env={**env, "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    plugin = Path(proc.stdout.split("plugin:", 1)[1].split()[0])
    assert plugin.is_relative_to(tmp_path / "cache" / "mdval") and plugin.name == "taafsplugin.so"
    assert "(MISSING)" in proc.stdout and "loads in lmp:  no" in proc.stdout
    assert "run `mdval lammps build` to build it" in proc.stdout


def test_the_entry_point_names_the_plugin_dir():
    (entry,) = [ep for ep in metadata.entry_points(group="lammps.plugins") if ep.name == "taafs"]
    assert entry.value == "mdval.deploy.lammps_plugin:plugin_dir"
    assert entry.load()() == lammps_plugin.plugin_dir()


def _clone_copy(target: Path) -> Path:
    """The clone's files as git sees them (tracked and new, not ignored), links kept: what a fresh
    clone holds, without the build/ and *.egg-info that an in-tree build would leave in ours."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, names):
        source = REPO / name
        if os.path.lexists(source):  # a file deleted in the work tree is still in git's index
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name, follow_symlinks=False)
    return target


@pytest.fixture
def scratch(tmp_path):
    """``tmp_path``, less its 1.6 GB virtualenv afterwards (pytest keeps the last runs' folders)."""
    yield tmp_path
    shutil.rmtree(tmp_path / "venv", ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_non_editable_install_builds_the_plugin_and_runs_lammps_md_from_anywhere(scratch):
    """pip install (not editable) into a fresh venv, then mdval lammps build / check and a short
    LAMMPS NVE run with a packaged zoo model, all from a folder that is not the clone."""
    clone = _clone_copy(scratch / "clone")
    venv, work = scratch / "venv", scratch / "work"
    work.mkdir()
    env = {**os.environ, "XDG_CACHE_HOME": str(scratch / "cache"), "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)

    def run(*command, timeout=900):
        proc = subprocess.run(
            [str(c) for c in command], capture_output=True, text=True, cwd=work, env=env, timeout=timeout
        )
        assert proc.returncode == 0, f"{command}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc.stdout

    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_ = venv / "bin"
    run(bin_ / "pip", "install", "--quiet", "torch==2.13.0")  # the CPU build, from local disk
    run(bin_ / "pip", "install", "--quiet", clone)
    installed = Path(run(bin_ / "python", "-c", "import mdval; print(mdval.__file__)").strip())
    assert installed.is_relative_to(venv) and not installed.is_relative_to(clone)
    resources_dir = installed.parent / "resources"
    assert not any(p.is_symlink() for p in resources_dir.rglob("*"))  # copies, not links to the clone

    run(bin_ / "mdval", "lammps", "build", timeout=1200)
    check = run(bin_ / "mdval", "lammps", "check")
    assert "(up to date)" in check and "loads in lmp:  yes" in check, check
    plugin = Path(check.split("plugin:", 1)[1].split()[0])
    assert plugin.is_relative_to(scratch / "cache" / "mdval"), check
    assert f"sources:       {resources_dir / 'pair_style'}" in check, check

    model = resources_dir / "models" / "cu" / "tanh-adam.pt"
    run(
        bin_ / "mdval",
        "md",
        "nve",
        "--engine",
        "lammps",
        "--model",
        model,
        "--supercell",
        "2",
        "2",
        "2",
        "--steps",
        "40",
        "--equilibration-steps",
        "10",
        "--sample-interval",
        "5",
        "--trajectory-interval",
        "20",
        "--checkpoint-interval",
        "20",
        "--out",
        "nve",
    )
    result = json.loads((work / "nve" / "results.json").read_text())
    assert result["status"] == "completed", result
    assert not (clone / "runs").exists()  # nothing was written into the clone
