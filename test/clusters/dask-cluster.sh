#!/usr/bin/env bash
# The tests' own Dask cluster (Debian python3-distributed) on loopback: one scheduler on a port it picks
# itself and N named workers (zpw-0..N-1), each under a nanny unless ZP_DASK_NANNY=0.
#   dask-cluster.sh up DIR    prints the scheduler's address once every worker has registered
#   dask-cluster.sh down DIR  stops exactly the processes `up` started (PIDs in DIR/pids), then removes DIR
# Knobs: ZP_DASK_PYTHON (/usr/bin/python3: a python3 earlier on PATH may not see Debian's packages),
#        ZP_DASK_WORKERS (2), ZP_DASK_THREADS (1), ZP_DASK_NANNY (1).
# Workers get TMPDIR=DIR/tmp, so what they put under tempfile.gettempdir() stays inside DIR.
set -euo pipefail
cmd=${1:?usage: dask-cluster.sh up|down DIR}
D=${2:?usage: dask-cluster.sh up|down DIR}
PY=${ZP_DASK_PYTHON:-/usr/bin/python3}

alive() { [ -e "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# TERM, up to 10 s for a graceful close (a worker tears its plugins down), then KILL
stop() {
  local p a
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 200); do
    a=0; for p in "$@"; do alive "$p" && a=1; done
    [ $a = 0 ] && return 0
    sleep 0.05
  done
  for p in "$@"; do alive "$p" && kill -KILL "$p" 2>/dev/null && echo "[dask-cluster] killed $p" >&2; done
  return 0
}

case "$cmd" in
up)
  N=${ZP_DASK_WORKERS:-2}
  T=${ZP_DASK_THREADS:-1}
  nanny=--nanny; [ "${ZP_DASK_NANNY:-1}" = 1 ] || nanny=--no-nanny
  [ ! -e "$D/pids" ] || { echo "[dask-cluster] $D already holds a cluster: run down first" >&2; exit 1; }
  mkdir -p "$D/log" "$D/tmp"
  : >"$D/pids"
  # --port 0: the scheduler picks a free port and writes its address to the scheduler file
  "$PY" -m distributed.cli.dask_scheduler --host 127.0.0.1 --port 0 --no-dashboard --no-show \
    --scheduler-file "$D/scheduler.json" >"$D/log/scheduler.log" 2>&1 &
  echo "scheduler $!" >>"$D/pids"
  for _ in $(seq 600); do [ -s "$D/scheduler.json" ] && break; sleep 0.05; done
  addr=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["address"])' "$D/scheduler.json" 2>/dev/null) || {
    echo "[dask-cluster] the scheduler did not start; its log:" >&2; cat "$D/log/scheduler.log" >&2; exit 1; }
  # DAEMON=False lets code on the workers start children of its own; --death-timeout ends workers whose
  # scheduler is gone (a test process that died before its stop)
  for i in $(seq 0 $((N-1))); do
    TMPDIR="$D/tmp" DASK_DISTRIBUTED__WORKER__DAEMON=False \
      "$PY" -m distributed.cli.dask_worker "$addr" --name "zpw-$i" --host 127.0.0.1 --nworkers 1 --nthreads "$T" \
      --no-dashboard $nanny --death-timeout 60 --local-directory "$D/w$i" >"$D/log/worker-$i.log" 2>&1 &
    echo "worker-$i $!" >>"$D/pids"
  done
  "$PY" - "$addr" "$N" <<'PY' || { echo "[dask-cluster] workers did not register; logs in $D/log" >&2; exit 1; }
import sys
from distributed import Client
with Client(sys.argv[1], timeout=20) as c:
    c.wait_for_workers(int(sys.argv[2]), timeout=60)
PY
  echo "$addr"
  ;;
down)
  if [ -f "$D/pids" ]; then
    workers=$(awk '$1 ~ /^worker/ {print $2}' "$D/pids")
    # a nanny's worker process is started by it, not by us: remember it so it cannot outlive the nanny
    kids=$(for p in $workers; do pgrep -P "$p" || true; done)
    # shellcheck disable=SC2086
    stop $workers
    # shellcheck disable=SC2086
    stop $kids
    # shellcheck disable=SC2086
    stop $(awk '$1 == "scheduler" {print $2}' "$D/pids")
  fi
  rm -rf "$D"
  ;;
*) echo "usage: dask-cluster.sh up|down DIR" >&2; exit 2 ;;
esac
