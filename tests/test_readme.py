"""Every command in README.md runs as written, in README order, in a scratch folder laid out like a
clone (models/ and workflows/ copied; data/, runs/ and reports/ made by the commands themselves).

- ```bash blocks: each line is one command for bash (its trailing ``# comment`` is bash's too).
- ```python blocks: run as a script.
- ```lammps blocks: the first line names the file (``# in.cu: ...``); it is written there.
- The activation-spec block: every spec on it parses.

Quick commands run in ``make test``. Long ones (training, MD, workflows) carry the ``slow`` marker
(``pytest -m slow``); a slow command runs every earlier command first, so each passes alone too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
VENV_BIN = Path(sys.executable).parent

# Commands that take minutes: under the slow marker.
SLOW_PREFIXES = (
    "mdval train ",
    "mdval test runs/",
    "mdval export runs/",
    "mdval compress ",
    "mdval check cu.pt",
    "mdval md ",
    "mdval run ",
    "mdval compare ",
    "mdval report energy-conservation ",
)
# Commands this test does not run, and why.
NOT_RUN = {
    "make test": "the command that runs this test (CI runs it)",
    "make demo": "the demo: `mdval demo` is what it runs, after the set-up that `make test` does too",
    "make models": "retrains the committed zoo in place (15 min)",
    "make bench": "the benchmarks: hours",
    "make bench BENCH_ARGS=--quick": "the benchmarks' smoke run (12 min, installs DeePMD-kit)",
    ".venv/bin/pytest -m slow": "runs this test",
}
STEP_TIMEOUT_S = {
    False: 300,
    True: 7200,
}  # s; `mdval run workflows/cu_emt.toml` (now cu_eam.toml) took 2712 s on a loaded 2-core machine


@dataclass(frozen=True)
class Step:
    line: int  # README line number, 1-based
    kind: str  # "bash" | "python" | "lammps" | "specs"
    text: str
    slow: bool

    @property
    def label(self) -> str:
        first = self.text.strip().splitlines()[0]
        return f"L{self.line}-{self.kind}-{first[:50]}"


def readme_steps() -> list[Step]:
    steps: list[Step] = []
    text = README.read_text()
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        lang, body = match.group(1), match.group(2)
        start = text.count("\n", 0, match.start()) + 2  # line of the block's first content line
        if lang == "bash":
            for offset, raw in enumerate(body.splitlines()):
                command = raw.split("#", 1)[0].strip()  # bash itself gets the whole line
                if not command or command.startswith("#") or command in NOT_RUN:
                    continue
                steps.append(Step(start + offset, "bash", raw.strip(), command.startswith(SLOW_PREFIXES)))
        elif lang in ("python", "lammps"):
            steps.append(Step(start, lang, body, False))
        elif lang == "" and body.lstrip().startswith("tanh | silu"):
            steps.append(Step(start, "specs", body, False))
    return steps


STEPS = readme_steps()


class Scratch:
    """A folder laid out like a fresh clone, where the README's commands run one after another."""

    def __init__(self, root: Path):
        self.root = root
        for name in ("models", "workflows"):
            shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("*.fisher.*"))
        self.env = {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "MPLBACKEND": "Agg",
            "OMP_NUM_THREADS": "1",
        }
        self.done: set[int] = set()

    def run_through(self, index: int) -> None:
        """Run every step up to ``index`` that has not run; earlier slow ones only for a slow step."""
        target = STEPS[index]
        for i, step in enumerate(STEPS[: index + 1]):
            if i not in self.done and (i == index or target.slow or not step.slow):
                self.done.add(i)  # a failure is reported once, by the step's own test
                self._run(step)

    def _run(self, step: Step) -> None:
        if step.kind == "specs":
            from mdval.nn import make_activation

            for raw in step.text.splitlines():
                spec = raw.split("#", 1)[0].strip()
                for alternative in filter(None, (s.strip() for s in spec.split("|"))):
                    assert make_activation(alternative, 4) is not None, alternative
            return
        if step.kind == "lammps":
            name = step.text.splitlines()[0].lstrip("# ").split(":", 1)[0]
            (self.root / name).write_text(step.text)
            return
        if step.kind == "python":
            script = self.root / f"readme_L{step.line}.py"
            script.write_text(step.text)
            argv = [sys.executable, str(script)]
        else:
            argv = ["bash", "-e", "-o", "pipefail", "-c", step.text]
        proc = subprocess.run(
            argv,
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_S[step.slow],
            stdin=subprocess.DEVNULL,
        )
        output = (
            f"README line {step.line}: {step.text.strip()[:200]}\n--- stdout\n{proc.stdout[-3000:]}\n"
            f"--- stderr\n{proc.stderr[-3000:]}"
        )
        assert proc.returncode == 0, output
        assert "Traceback" not in proc.stderr, output


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Scratch:
    return Scratch(tmp_path_factory.mktemp("readme"))


def test_the_readme_has_the_commands_we_expect():
    """The parser sees every kind of block (a README rewrite that hid them would pass vacuously)."""
    kinds = [s.kind for s in STEPS]
    assert kinds.count("python") == 3 and kinds.count("lammps") == 2 and kinds.count("specs") == 1
    commands = [s.text for s in STEPS if s.kind == "bash"]
    for expected in ("lmp -in in.cu", "mpirun -np 2 lmp -in in.cu", "mdval fisher models/cu/tanh-adam.pt"):
        assert any(c.startswith(expected) for c in commands), expected
    # every fisher/test input is made by an earlier README command
    for data in ("data/cu_emt.xyz", "data/cu_eam.xyz"):
        generate = next(i for i, c in enumerate(commands) if f"--out {data}" in c)
        assert all(i > generate for i, c in enumerate(commands) if data in c and "generate" not in c), data


@pytest.mark.parametrize(
    "index", [pytest.param(i, id=s.label, marks=[pytest.mark.slow] if s.slow else []) for i, s in enumerate(STEPS)]
)
def test_readme_step_runs_as_written(scratch, index):
    scratch.run_through(index)
