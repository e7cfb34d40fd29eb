#!/usr/bin/env bash
# One prepared GPU check for a session lent the H200 (15 minutes of device time, machine start included):
# environment, every method on the CUDA fast path, the speed.py table at 50,000 rows, Clothing1M-shaped ResNet-50
# throughput from streamed files (issue #16), a fixed-budget accuracy run.
# The work is in benchmarks/gpu_check.py (its docstring lists the steps); this wrapper picks the interpreter, the
# output folder and an outer time limit.
#
# PREPARE (here, on the machine that has ../shared/data; ~5 s):
#     .venv/bin/python benchmarks/pack_cifar10.py
#   writes .gpudata/cifar10.pack (git-ignored): all 60,000 CIFAR-10 JPEGs, bit-identical (one SHA-256 checked on
#   unpack), + the reference noise files + cifar10n/labels.csv, 18.6 MB (17.8 MiB); it prints the size and checks it
#   against the 64 MiB a device call carries together with the working tree (~1 MiB). Optional rehearsal at toy
#   size on the CPU (30-60 s): bash benchmarks/gpu_check.sh --smoke /tmp/gc_smoke   (tests/test_gpu_check.py runs it)
#
# RUN (once, with the device tool; nothing is installed there: its python3 has torch+CUDA, scikit-learn, PyYAML,
# Pillow, tqdm; the package is used from the checkout through PYTHONPATH=.):
#     run(command="GPU_CHECK_COMMIT=<git rev-parse --short HEAD here> bash benchmarks/gpu_check.sh",
#         carry=[".gpudata"], timeout_s=570)
#   The script keeps to 525 s of its own (GPU_CHECK_BUDGET_S; every step is cut to what is left) and an outer
#   `timeout` stops it at 560 s, so 570 leaves margin. A machine start (1-2 min) + 570 s fits the 15-minute lease
#   once: there is no second try, so give_back afterwards. $OUT comes back with 4 files:
#     gpu_check.md          all tables, ready to paste into benchmarks/RESULTS.md (also printed at the end)
#     gpu_check.json        the same, machine-readable (per-epoch metrics included)
#     gpu_check.log         what ran when, each step's budget and status
#     subprocess_logs.txt   every step's own output (tracebacks of failures), at most 14 MB
#   Without the carried pack it still runs, on a synthetic stand-in of CIFAR-10's shapes and counts, labelled
#   STAND-IN in every table (speeds valid, accuracies meaningless).
#
# Budgets (seconds, of the 525; each step also keeps a reserve for the ones after it):
#   0 data: unpack 60k files with 16 processes, decode them once into the cache     cap 90  (expected ~15)
#   1 environment (nvidia-smi, versions, a bf16 matmul), beside step 0                cap 45  (expected ~10)
#   2 methods: CE, DivideMix, PLReMix, BPT-PLR, TCL (batch 1024), SimCLR, MW-Net (random init), DivideMix at batch 128, 256:
#     9 runs of 2 epochs on 5,120 / 1,024 images, all at once on the GPU (compiles overlap)  cap 160
#   3 speed.py, DivideMix, PreAct ResNet-18, 50,000 rows: [64 fp32+fast], [128 256 fast], [128 256 fp32],
#     one process each, shares 100:75:55 of what is left          cap 230, but leaves 165 for 3b + 4 (so >= 185)
#   3b clothing1m_throughput.py --files 6000 --steps 30: ResNet-50, 224² crops of 256² synthetic JPEGs, bf16, eager,
#     streamed by 12 DataLoader workers; PLReMix (warm-up epoch, division, 30 semi steps; then the same resident)
#     and DivideMix (streamed), projected Clothing1M recipe times. One process, stopped at its budget (SIGINT,
#     SIGKILL 10 s later: a `timeout`), its JSON/Markdown rewritten after every phase        cap 120, leaves 55 for 4
#     (expected ~70-90: ~15 start + files, ~25 PLReMix streamed, ~20 resident, ~12 DivideMix)
#   4 the DivideMix recipe on all of CIFAR-10 JPEG (50% sym file), stopped when time is up   the rest (>= ~45)
#   Worst case 15 + 160 + 185 + 110 + 47 + 8 s of margin and reporting = 525 (step 4 just above its 45 s minimum);
#   the torch.compile times on the H200 are unknown (never measured), which is why every step is cut by the clock
#   and its partial results are kept. Step 3b compiles nothing, so its time is the better known one.
#
# Usage: bash benchmarks/gpu_check.sh [--smoke] [OUT_DIR]
#   OUT_DIR: the first non-flag argument, else $OUT, else runs/gpu_check.
#   PYTHON: the interpreter (default python3); GPU_CHECK_BUDGET_S: the script's own budget (default 525, smoke 200);
#   GPU_CHECK_C1M=1: step 3b in --smoke too (off there: tests/test_gpu_check.py checks the smoke run's step list);
#   GPU_CHECK_WORK: scratch folder (default a new temporary folder, removed at the end).
set -u
cd "$(dirname "$0")/.." || exit 2

smoke=()
outdir=""
for arg in "$@"; do
  case "$arg" in
    --smoke) smoke=(--smoke) ;;
    -h|--help) sed -n '2,/^set -u$/{/^set -u$/d;p}' "$0"; exit 0 ;;
    -*) echo "gpu_check.sh: unknown option $arg (use --smoke, --help)" >&2; exit 2 ;;
    *) if [ -z "$outdir" ]; then outdir="$arg"; else echo "gpu_check.sh: one output folder only" >&2; exit 2; fi ;;
  esac
done
outdir="${outdir:-${OUT:-runs/gpu_check}}"
mkdir -p "$outdir" || exit 2

PYTHON="${PYTHON:-python3}"
export PYTHON
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
if [ ${#smoke[@]} -gt 0 ]; then budget="${GPU_CHECK_BUDGET_S:-200}"; else budget="${GPU_CHECK_BUDGET_S:-525}"; fi
work=()
if [ -n "${GPU_CHECK_WORK:-}" ]; then work=(--work "$GPU_CHECK_WORK"); fi

# The outer limit only matters if the orchestrator itself hangs: it gets SIGTERM, stops its steps and writes the report.
timeout -k 10 "$((${budget%.*} + 35))" "$PYTHON" benchmarks/gpu_check.py ${smoke[@]+"${smoke[@]}"} --budget "$budget" \
  ${work[@]+"${work[@]}"} "$outdir"
rc=$?
if [ "$rc" -eq 124 ]; then echo "gpu_check.sh: stopped by the outer timeout; see $outdir/gpu_check.md" >&2; fi
exit "$rc"
