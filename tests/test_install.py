"""The installed package imports from any folder, as a user's scripts do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROBE = "import mdval; print(mdval.Calculator.__module__, mdval.__file__)"


@pytest.mark.parametrize("where", ["parent of a clone named mdval", "parent of this clone"])
def test_import_mdval_from_any_folder(tmp_path, where):
    """From the folder above a clone called ``mdval`` (the ``../shared`` layout), the clone itself
    is a candidate namespace package on ``sys.path[0]``; with setuptools' default editable finder it
    won, and ``mdval.Calculator`` did not exist. ``make`` installs in editable_mode=compat."""
    if where == "parent of a clone named mdval":
        (tmp_path / "mdval").symlink_to(REPO, target_is_directory=True)
        cwd = tmp_path
    else:
        cwd = REPO.parent
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    module, init = proc.stdout.split()
    assert module == "mdval.deploy.calculator"
    assert Path(init) == REPO / "mdval" / "__init__.py"
