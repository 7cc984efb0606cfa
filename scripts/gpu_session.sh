#!/usr/bin/env bash
# Every GPU measurement spectrax still owes, in one call of a lent GPU machine (the device tool
# gives 10 minutes a command, 15 minutes a session, machine start included), in order of what
# matters most, each step under its own time limit so that a slow step cannot starve the rest:
#
#   1. FNO-2d train step at the issue's sizes (issue 5's speed criterion): spectrax rfft / dft
#      vs a plain jnp.fft FNO (and neuraloperator if PyTorch is installed there);
#   2. fft_conv: XLA vs the compiled Pallas kernels, forward and backward, each row's error
#      against a float64 NumPy reference (the first compiled run of the GPU kernels);
#   3. SpectralConv rfft vs kept-modes DFT paths (which one impl="auto" should pick on a GPU);
#   4. S4 / S4D / S5 training throughput and the diagonal scan against its byte floor.
#
# Run from the repository root on the device machine (the device tool's image has JAX with CUDA,
# equinox, optax): `bash scripts/gpu_session.sh`. Results: one JSON per step and one log, under
# $OUT when set (the device tool brings that folder back; at most 8 files), else benchmarks/.
# Copy the JSON files into benchmarks/ and quote them in README. Each step's limit is in
# seconds; SPECTRAX_GPU_SCALE=small runs every step at small sizes (a dry run of this script).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:-.}"
on_cpu='import jax, sys; sys.exit(jax.default_backend() != "cpu")'  # exit 0 on a CPU
if [[ "${SPECTRAX_GPU_SCALE:-}" != small ]] && python -c "$on_cpu"; then
    echo "no accelerator: the full run is for a GPU (SPECTRAX_GPU_SCALE=small for a dry run)" >&2
    exit 2
fi

dest="${OUT:-benchmarks}"
mkdir -p "$dest"
log="$dest/gpu-session.log"
: >"$log"
small="${SPECTRAX_GPU_SCALE:-}"

python - <<'EOF' 2>&1 | tee -a "$log"
import jax
print("jax", jax.__version__, "backend", jax.default_backend(), "devices", jax.devices())
EOF
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm --format=csv 2>/dev/null \
    | tee -a "$log"

status=()
step() {  # step NAME LIMIT_S COMMAND...: run under a time limit, log, remember the outcome
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit}s): $*" | tee -a "$log"
    local t0=$SECONDS from
    from=$(wc -l <"$log")
    timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1
    local rc=$?
    status+=("$(printf '%-14s rc=%-3s %4ss' "$name" "$rc" "$((SECONDS - t0))")")
    tail -n +"$((from + 1))" "$log" | tail -n 25 | sed 's/^/    /'
}

if [[ "$small" == small ]]; then
    step fno 300 python scripts/bench_fno.py --repeats 2 --out "$dest/fno-train-step-gpu.json"
    step fft_conv 300 python scripts/bench_fft_conv.py --lengths 256 1024 --total 16384 \
        --dtypes float32 --repeats 1 --out "$dest/fft_conv-gpu.json"
    step spectral_conv 300 python scripts/bench_spectral_conv.py --repeats 1 \
        --out "$dest/spectral-conv-gpu.json"
    step ssm 300 python scripts/bench_ssm.py --lengths 256 --repeats 1 --out "$dest/ssm-gpu.json"
else
    step fno 150 python scripts/bench_fno.py --repeats 30 --out "$dest/fno-train-step-gpu.json"
    step fft_conv 200 python scripts/bench_fft_conv.py \
        --lengths 1024 4096 16384 65536 262144 1048576 --total $((1 << 25)) \
        --out "$dest/fft_conv-gpu.json"
    step spectral_conv 60 python scripts/bench_spectral_conv.py \
        --out "$dest/spectral-conv-gpu.json"
    step ssm 90 python scripts/bench_ssm.py --lengths 1024 4096 16384 65536 --batch 16 \
        --channels 256 --state 64 --repeats 10 --out "$dest/ssm-gpu.json"
fi

echo "=== summary (rc 124: the step ran out of time)" | tee -a "$log"
printf '%s\n' "${status[@]}" | tee -a "$log"
