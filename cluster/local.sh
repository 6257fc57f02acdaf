#!/usr/bin/env bash
# A Ray cluster on this machine (the "local" shape): one head node, token authentication on, the dashboard and the
# Jobs API on 127.0.0.1:8265, Prometheus metrics on :8080. Workers on other machines of a LAN can join it.
#
#   cluster/local.sh start [--num-cpus N] [--num-gpus N]   # start the head (in the background)
#   cluster/local.sh token                                 # print the token job submitters need
#   cluster/local.sh join HEAD_IP [--num-cpus N]           # on another machine: join as a worker node
#   cluster/local.sh stop                                  # `ray stop`: stops EVERY Ray process of this user here
#
# Everything runs with the project's interpreter (.venv, made by `uv sync --frozen`), never a `python`/`ray`
# found on PATH. Details and the security notes: docs/operations.md.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${REID_PYTHON:-$root/.venv/bin/python}"
if [[ ! -x "$py" ]]; then
  echo "cluster/local.sh: no interpreter at $py; run 'uv sync --frozen' in $root or set REID_PYTHON" >&2
  exit 2
fi
cmd="${1:-}"
shift || true
case "$cmd" in
  start|token|stop)
    cd "$root" && exec "$py" -m jobs.local_cluster "$cmd" "$@" ;;
  join)
    head_ip="${1:?usage: cluster/local.sh join HEAD_IP [ray start options]}"
    shift
    # the worker node needs the cluster's token too: copy ~/.ray/auth_token from the head (mode 600) first
    export RAY_AUTH_MODE=token
    exec "$(dirname "$py")/ray" start --address="$head_ip:6379" "$@" ;;
  *)
    echo "usage: cluster/local.sh {start|token|join HEAD_IP|stop} [options]" >&2
    exit 2 ;;
esac
