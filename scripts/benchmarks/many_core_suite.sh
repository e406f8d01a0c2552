#!/usr/bin/env bash
# Every many-core measurement in one go, for a machine you have for a few minutes only
# (how results/scaling/16-core-*/ and results/mpi/16-core-*/ were made).
# Usage: scripts/benchmarks/many_core_suite.sh OUT_DIR [DATA_ROOT]
#   runs scripts/benchmarks/many_cores.py (step times 1..N workers against PyTorch threads
#   and DDP, start-up, the seed's 500-step run, the GEMM ceiling), then, where `mpiexec`
#   is on PATH, scripts/benchmarks/mpi_cost.py at N ranks. Each part has a time limit and
#   keeps what it measured when cut short. Not a test: it asserts nothing.
set -uo pipefail
out=${1:?usage: many_core_suite.sh OUT_DIR [DATA_ROOT]}
data=${2:-"$(cd "$(dirname "$0")/../../.." && pwd)/shared/data"}
here="$(cd "$(dirname "$0")" && pwd)"
cores=$(python3 -c "import psutil; print(psutil.cpu_count(logical=False))")
mkdir -p "$out"
{ nproc; lscpu 2>&1 | head -20; df -h /dev/shm; python3 -c "import numpy, sys; print(sys.version); numpy.show_config()" 2>&1 | head -40; } \
    > "$out/machine.txt"
export PARTRAIN_DATA="$data"
timeout "${MANY_CORES_SECONDS:-420}" python3 "$here/many_cores.py" --rounds "${ROUNDS:-3}" \
    --data-root "$data" --out "$out/scaling" 2>&1 | tee "$out/many_cores.log"
if command -v mpiexec >/dev/null; then
    timeout "${MPI_SECONDS:-120}" python3 "$here/mpi_cost.py" --data-dir "$data" --ranks "$cores" \
        --rounds 2 --steps 5 --out "$out/mpi" 2>&1 | tee "$out/mpi_cost.log"
fi
