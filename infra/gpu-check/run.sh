#!/usr/bin/env bash
# The GPU checks of issue 14 in one device call, on a lent GPU machine (docs/gpu/README.md):
#   here:   python3 infra/gpu-check/prepare.py            (builds .gpu-carry/)
#   device: bash infra/gpu-check/run.sh                   (carry [".gpu-carry"], timeout_s 600)
# It installs into /tmp the carried packages the machine's image lacks (never over what it has), then runs
#   reid bench gpu  --stores jpeg,jpeg-trainer  on the carried synthetic JPEG store (ResNet-50 bf16 step, the decoding
#                   CPUs that keep the GPU >= 90 % busy with the actors decoding and with nvJPEG decoding, every
#                   method's bf16 step, nvJPEG, `reid pose`'s Keypoint R-CNN per frame, the tests marked gpu), at
#                   most BENCH_GPU_S seconds;
#   reid bench data --workers 16 --batches 128 --stores jpeg  (the 1 -> 16 decoding-actor scaling, its ceiling;
#                   8 batches an actor an epoch: a shorter fit mostly measures each new actor's first touches of
#                   the object store's pages, docs/performance-log.md, 2026-12-07 evening).
# Everything lands in $OUT (at most 8 files come back): gpu-<date>.md/.json/.png, bench-gpu.log,
# bench-data-16.json/.log, session.log. Each step's failure is written down and the next one still runs; the status is the first failure's.
set -uo pipefail

OUT=${OUT:?"set OUT to the folder whose files come back"}
CARRY=${CARRY:-.gpu-carry}
SITE=${SITE:-/tmp/reid-site}
BENCH_GPU_S=${BENCH_GPU_S:-380}
WORKERS=${WORKERS:-16}
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$SITE"
LOG="$OUT/session.log"
status=0

say() { echo "[gpu-check $(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }
fail() { say "FAILED: $*"; [ "$status" -ne 0 ] || status=1; }

[ -d "$CARRY/wheels" ] || { say "no $CARRY/wheels: run infra/gpu-check/prepare.py here and carry .gpu-carry"; exit 2; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1; echo "cpus: $(nproc)"; "$PY" -V; } >>"$LOG" 2>&1
tag=$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
want=$(cat "$CARRY/PYTAG")
[ "$tag" = "$want" ] || { say "this machine runs $tag, the carried wheels are $want: rerun prepare.py --python X.Y"; exit 2; }

# which carried packages the image lacks (or has at another version than the lock's)
missing=$("$PY" - "$CARRY/wheels" <<'EOF'
import importlib.metadata as md, pathlib, sys
wheels = {p.name.split("-")[0].lower(): p for p in pathlib.Path(sys.argv[1]).glob("*.whl")}
def have(dist, version):
    try:
        return md.version(dist) == version
    except md.PackageNotFoundError:
        return False
need = [w for name, w in wheels.items() if not have(name.replace("_", "-"), w.name.split("-")[1])]
print(" ".join(str(w) for w in need))
EOF
)
say "installing into $SITE: ${missing:-nothing}"
if [ -n "$missing" ]; then
  # a wheel is a zip: unpacked as is, with its members' modes (Ray's gcs_server and raylet are executables)
  "$PY" - "$SITE" $missing <<'EOF' || { say "unpacking the wheels failed"; exit 2; }
import os, sys, zipfile
site = sys.argv[1]
for wheel in sys.argv[2:]:
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            path = z.extract(info, site)
            mode = info.external_attr >> 16
            if mode:
                os.chmod(path, mode & 0o7777)
EOF
fi
# their bytecode once, as uv installs it here (a container with PYTHONDONTWRITEBYTECODE=1 would otherwise have every
# Ray worker compile ray from source as it imports it: README, "Development")
"$PY" -m compileall -q -j 0 "$SITE" reid tune jobs >/dev/null 2>&1 || say "compileall failed (the runs still work, slower to start)"
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
# everything the two commands import (every method registers itself on list_methods): a module the image lacks is
# named here, in session.log; carry it with prepare.py --also NAME
"$PY" -c "import ray, ray.data, ray.train, pydantic, simplejpeg, torch, reid.cli, reid.bench.gpu, reid.bench.data
from reid.registry import list_methods
print('ray', ray.__version__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'methods', list_methods())" \
  >>"$LOG" 2>&1 || { say "imports failed: session.log names the module (prepare.py --also NAME carries it)"; exit 2; }

MANIFEST="$CARRY/bench-data/manifest.parquet"
say "reid bench gpu (at most ${BENCH_GPU_S} s)"
timeout $((BENCH_GPU_S + 40)) "$PY" -m reid.cli bench gpu --manifest "$MANIFEST" --stores jpeg,jpeg-trainer \
  --budget-s "$BENCH_GPU_S" --out "$OUT" >"$OUT/bench-gpu.log" 2>&1 || fail "reid bench gpu, status $? (bench-gpu.log)"

say "reid bench data --workers $WORKERS --batches $((8 * WORKERS))"
timeout 150 "$PY" -m reid.cli bench data --manifest "$MANIFEST" --stores jpeg --workers "$WORKERS" \
  --batches $((8 * WORKERS)) --repeats 1 --json "$OUT/bench-data-$WORKERS.json" >"$OUT/bench-data-$WORKERS.log" 2>&1 \
  || fail "reid bench data, status $? (bench-data-$WORKERS.log)"
say "done, status $status"
exit "$status"
