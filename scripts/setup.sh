#!/usr/bin/env bash
# Installs everything hamdb needs on a fresh Debian machine of this kind (run as root):
# system libraries for GPAW, the pinned CPU build of torch, GPAW built against the installed
# numpy, then hamdb itself (editable) with its test tools. Safe to run again: steps already
# done are skipped quickly.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
quiet() { "$@" >/tmp/hamdb-setup.log 2>&1 || { cat /tmp/hamdb-setup.log; exit 1; }; }

if ! dpkg -s libxc-dev libopenblas-dev >/dev/null 2>&1; then
    echo "setup: installing libxc and OpenBLAS (apt-get)"
    quiet apt-get update
    DEBIAN_FRONTEND=noninteractive quiet apt-get install -y libxc-dev libopenblas-dev
fi

echo "setup: python packages"
# torch is pinned: this file lies on the machine as a CPU build; a bare 'torch' would pull CUDA.
quiet "$PY" -m pip install --quiet torch==2.13.0 pybind11 ase "numpy>=2"

if ! "$PY" -c "import gpaw, gpaw_data" >/dev/null 2>&1; then
    echo "setup: building GPAW (a few minutes, once)"
    CC=g++ quiet "$PY" -m pip install --quiet --no-build-isolation gpaw gpaw-data
fi

quiet "$PY" -m pip install --quiet -e ".[test,dft]"
echo "setup: done ($("$PY" -c 'import hamdb, torch, gpaw; print("hamdb", hamdb.__version__, "torch", torch.__version__, "gpaw", gpaw.__version__)'))"
