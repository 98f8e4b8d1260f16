#!/usr/bin/env bash
# The project's single-node Slurm 22.05 for tests: munge, MariaDB, slurmdbd (so sacct keeps array
# indices and exit codes), slurmctld and slurmd, all living in $ZP_SLURM_DIR.
#
#   slurm-cluster.sh up     start it, or do nothing when it is already up; exits 0 once the node is idle
#   slurm-cluster.sh down   cancel its jobs, stop exactly the daemons `up` started, remove $ZP_SLURM_DIR
#
# Clients need SLURM_CONF, written to $ZP_SLURM_DIR/env (`. $ZP_SLURM_DIR/env`).
# Knobs: ZP_SLURM_DIR (default /tmp/zp-slurm), ZP_SLURM_CPUS (default 4: more than this 2-core box has,
# so 2-4 array tasks run at once), ZP_SLURM_PORT (slurmctld, default 6817; slurmd +1, slurmdbd +2),
# ZP_SLURM_DB_PORT (MariaDB, default 3307). Needs root (slurmd runs jobs as their users).
set -euo pipefail
D=${ZP_SLURM_DIR:-/tmp/zp-slurm}
CPUS=${ZP_SLURM_CPUS:-4}
P=${ZP_SLURM_PORT:-6817}
DBP=${ZP_SLURM_DB_PORT:-3307}
export SLURM_CONF=$D/etc/slurm.conf
T0=$EPOCHREALTIME
log() { printf '[slurm-cluster %s %5.1fs] %s\n' "$CMD" "$(bc_sub "$EPOCHREALTIME" "$T0")" "$*"; }
bc_sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }
die() { echo "[slurm-cluster $CMD] $*" >&2; exit 1; }

# KillWait=30: scancel and the time limit send SIGTERM, then SIGKILL only after 30 s, so a bridged
# node has time to drain. config_overrides lets CPUs exceed the machine's cores.
write_conf() {
  cat >"$SLURM_CONF" <<CONF
ClusterName=zp
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$P
SlurmdPort=$((P + 1))
AuthType=auth/munge
AuthInfo=socket=$SOCK
CredType=cred/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_min_interval=0,batch_sched_delay=0
SlurmdParameters=config_overrides
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$((P + 2))
AccountingStoragePass=$SOCK
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
  cat >"$D/etc/slurmdbd.conf" <<CONF
AuthType=auth/munge
AuthInfo=socket=$SOCK
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$((P + 2))
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DBP
StorageUser=root
StorageLoc=slurm_acct_db
PidFile=$D/run/slurmdbd.pid
LogFile=$D/log/slurmdbd.log
CONF
  chmod 0600 "$D/etc/slurmdbd.conf" # slurmdbd refuses a readable config
}

node_state() { timeout 5 sinfo -h -n localhost -o %T 2>/dev/null | head -1 | tr -d '*~#!%$@^-'; }

# Every daemon `up` recorded is still alive (a half-up cluster is not "up").
recorded_alive() {
  [ -s "$D/pids" ] || return 1
  local name pid
  while read -r name pid; do kill -0 "$pid" 2>/dev/null || return 1; done <"$D/pids"
}

# `wait_until SECONDS CMD…`: polls CMD every 0.1 s
wait_until() {
  local end=$((SECONDS + $1)); shift
  until "$@"; do [ $SECONDS -lt $end ] || return 1; sleep 0.1; done
}

started() { echo "$1 $2" >>"$D/pids"; }

check_prerequisites() {
  local missing=() b
  for b in munged mariadbd mariadb-install-db mariadb-admin slurmdbd slurmctld slurmd sinfo sbatch squeue sacct scancel setpriv; do
    command -v "$b" >/dev/null || missing+=("$b")
  done
  [ ${#missing[@]} = 0 ] || die "missing ${missing[*]}: apt-get install slurm-wlm slurmctld slurmd slurm-client munge slurmdbd mariadb-server"
  [ "$(id -u)" = 0 ] || die "must run as root (slurmd starts jobs as their users; munge and MariaDB run as their own users)"
}

# munge and mysql reach their files under $D through every parent directory (mktemp -d makes 0700 ones).
check_traversable() {
  local user
  for user in munge mysql; do
    setpriv --reuid="$user" --regid="$user" --init-groups test -x "$D" ||
      die "the $user user cannot reach $D: every parent directory must be traversable (chmod o+x), or set ZP_SLURM_DIR under /tmp"
  done
}

start_munge() {
  if [ ! -s "$D/munge/munge.key" ]; then
    dd if=/dev/urandom of="$D/munge/munge.key" bs=1 count=1024 2>/dev/null
  fi
  chown -R munge:munge "$D/munge"; chmod 0711 "$D/munge"; chmod 0400 "$D/munge/munge.key"
  rm -f "$SOCK" "$SOCK.lock"
  setpriv --reuid=munge --regid=munge --init-groups munged -F --socket="$SOCK" --key-file="$D/munge/munge.key" \
    --pid-file="$D/munge/munged.pid" --log-file="$D/munge/munged.log" --seed-file="$D/munge/munged.seed" \
    >>"$D/log/munged.out" 2>&1 &
  started munged $!
  wait_until 10 test -S "$SOCK" || die "munged did not start; see $D/munge/munged.log"
  log "munged up"
}

db_ping() { mariadb-admin --no-defaults -h127.0.0.1 -P"$DBP" -uroot ping >/dev/null 2>&1; }

start_mariadb() {
  local db=$D/mysql
  if [ ! -d "$db/mysql" ]; then
    mkdir -p "$db"; chown mysql:mysql "$db"
    mariadb-install-db --user=mysql --datadir="$db" --auth-root-authentication-method=normal \
      --skip-test-db >"$D/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed; see $D/log/mariadb-install.log"
  fi
  ! db_ping || die "port $DBP already has a database server: set ZP_SLURM_DB_PORT to a free port"
  # socket, pid file and error log must be in a directory the mysql user can write
  mariadbd --no-defaults --user=mysql --datadir="$db" --socket="$db/mysqld.sock" \
    --pid-file="$db/mysqld.pid" --bind-address=127.0.0.1 --port="$DBP" --skip-grant-tables \
    --innodb-buffer-pool-size=64M --log-error="$db/mariadb.err" >>"$D/log/mariadb.out" 2>&1 &
  started mariadbd $!
  wait_until 30 db_ping || die "mariadbd did not start; see $db/mariadb.err: $(tail -3 "$db/mariadb.err" 2>/dev/null)"
  log "mariadb up on 127.0.0.1:$DBP"
}

dbd_listens() { (exec 3<>"/dev/tcp/127.0.0.1/$((P + 2))") 2>/dev/null; }

start_slurm() {
  slurmdbd -D >>"$D/log/slurmdbd.out" 2>&1 &
  started slurmdbd $!
  wait_until 30 dbd_listens || die "slurmdbd did not listen on $((P + 2)); see $D/log/slurmdbd.log: $(tail -3 "$D/log/slurmdbd.log" 2>/dev/null)"
  log "slurmdbd up on 127.0.0.1:$((P + 2))"
  slurmctld -D -i >>"$D/log/slurmctld.out" 2>&1 &
  started slurmctld $!
  slurmd -D -N localhost >>"$D/log/slurmd.out" 2>&1 &
  started slurmd $!
}

node_idle() { [ "$(node_state)" = idle ]; }
no_jobs() { [ -z "$(timeout 5 squeue -h -o %A 2>/dev/null)" ]; }

up() {
  check_prerequisites
  if recorded_alive && [[ "$(node_state)" =~ ^(idle|mixed|allocated|completing)$ ]]; then
    log "already up; . $D/env"; return 0
  fi
  # leftovers of a half-up or crashed cluster: stop what was recorded, keep the data, start clean
  [ ! -f "$D/pids" ] || stop_daemons
  mkdir -p "$D"/{etc,log,state,spool,munge,run}
  chmod 755 "$D"
  check_traversable
  : >"$D/pids"
  # a failed start leaves nothing running (the logs stay in $D/log)
  trap 'stop_daemons' EXIT
  SOCK=$D/munge/munge.socket.2
  write_conf
  start_munge
  start_mariadb
  start_slurm
  printf 'export SLURM_CONF=%s\n' "$SLURM_CONF" >"$D/env"
  wait_until 30 node_idle || {
    sinfo -R >&2 || true
    die "node not idle after 30 s (state '$(node_state)'); logs in $D/log"
  }
  trap - EXIT
  log "node idle with $CPUS CPUs; . $D/env"
}

# SIGTERM to every recorded daemon at once (each takes ~2 s), SIGKILL to any still there after 10 s.
stop_daemons() {
  local pids p name
  pids=$(tac "$D/pids" | awk '{print $2}')
  for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
  all_gone() { local q; for q in $pids; do ! kill -0 "$q" 2>/dev/null || return 1; done; }
  wait_until 10 all_gone || true
  while read -r name p; do
    if kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null || true; log "$name ($p) killed: no exit 10 s after SIGTERM"; fi
  done < <(tac "$D/pids")
  : >"$D/pids"
}

down() {
  if [ ! -f "$D/pids" ]; then rm -rf "$D"; log "nothing running"; return 0; fi
  # jobs first, so no job process outlives slurmd; they get KillWait (30 s) to drain
  if recorded_alive; then
    local ids
    ids=$(timeout 5 squeue -h -o %A 2>/dev/null | sort -u || true)
    if [ -n "$ids" ]; then
      # shellcheck disable=SC2086 # one argument per job id
      timeout 5 scancel $ids 2>/dev/null || true
      wait_until 40 no_jobs || log "jobs still listed 40 s after scancel: $(timeout 5 squeue -h -o %i 2>/dev/null | tr '\n' ' ')"
    fi
  fi
  stop_daemons
  rm -rf "$D"
  log "stopped"
}

CMD=${1:-}
case "$CMD" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down   (ZP_SLURM_DIR=${D})" >&2; exit 2 ;;
esac
