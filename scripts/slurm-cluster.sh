#!/usr/bin/env bash
# scripts/slurm-cluster.sh start | stop | status     (root; `make slurm` installs the packages and starts it)
#
# A one-node SLURM cluster on this machine, for trying and testing `hydra/launcher=slurm` without a real cluster:
# munged, MariaDB + slurmdbd (job accounting, so that `sacct` answers: submitit polls it for every job's state,
# and without it a cancelled job reads UNKNOWN forever and the sweep waits on it), slurmctld and slurmd. Works
# without systemd: every daemon is started here by hand and stopped by the pid this script recorded. The node
# takes this machine's CPUs and memory as `slurmd -C` reads them. Everything it writes lives under $STATE, apart
# from /etc/slurm/slurm.conf and slurmdbd.conf, where SLURM's commands look; it never overwrites a slurm.conf it
# did not write.
set -euo pipefail

STATE=${PEFT_BENCH_SLURM_DIR:-/tmp/peft-bench-slurm}
CONF_DIR=/etc/slurm
DB_PORT=${PEFT_BENCH_SLURM_DB_PORT:-3307}   # not 3306, so a MariaDB the machine already runs is left alone
CLUSTER=peftbench
MARK="# written by peft-bench scripts/slurm-cluster.sh"
WAIT_S=${PEFT_BENCH_SLURM_WAIT_S:-90}

say() { echo "slurm-cluster: $*" >&2; }
die() { say "$*"; exit 1; }

need() {
  local missing=()
  for tool in munged slurmctld slurmd slurmdbd sacctmgr sinfo mariadbd mariadb-install-db; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] || die "missing ${missing[*]}: make slurm (apt-get install slurm-wlm slurmdbd munge mariadb-server)"
  [ "$(id -u)" = 0 ] || die "run as root: the daemons and /etc/slurm need it"
}

# Waits up to WAIT_S seconds for a command to succeed; the daemon's log goes to stderr when it never does.
wait_for() {
  local what=$1 log=$2; shift 2
  for _ in $(seq "$((WAIT_S * 2))"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  [ -f "$log" ] && tail -n 20 "$log" >&2
  die "$what did not come up in ${WAIT_S} s (log: $log)"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    return  # a munged is already running (the machine's own): use it, and leave it running on stop
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  [ -f /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key; chown munge:munge /etc/munge/munge.key; }
  runuser -u munge -- munged --pid-file=/run/munge/peft-bench-munged.pid
  ln -sf /run/munge/peft-bench-munged.pid "$STATE/munged.pid"
  wait_for munged /var/log/munge/munged.log bash -c 'munge -n | unmunge'
}

start_mariadb() {
  alive "$STATE/mariadb.pid" && return
  if [ ! -d "$STATE/mysql/mysql" ]; then
    mkdir -p "$STATE/mysql"; chown mysql:mysql "$STATE/mysql"
    mariadb-install-db --no-defaults --user=mysql --datadir="$STATE/mysql" --auth-root-authentication-method=socket \
      --skip-test-db >"$STATE/mariadb-install.log" 2>&1 || { tail -n 20 "$STATE/mariadb-install.log" >&2; die "mariadb-install-db failed"; }
  fi
  # Its socket, pid and log live in its data folder: it runs as the mysql user, who cannot write to $STATE.
  setsid mariadbd --no-defaults --user=mysql --datadir="$STATE/mysql" --socket="$STATE/mysql/mysql.sock" \
    --port="$DB_PORT" --bind-address=127.0.0.1 --pid-file="$STATE/mysql/mariadb.pid" --skip-log-bin \
    --log-error="$STATE/mysql/mariadb.log" </dev/null >/dev/null 2>&1 &
  ln -sf "$STATE/mysql/mariadb.pid" "$STATE/mariadb.pid"
  wait_for MariaDB "$STATE/mysql/mariadb.log" mariadb --no-defaults -S "$STATE/mysql/mysql.sock" -u root -e 'select 1'
}

db_password() {
  [ -f "$STATE/db.pass" ] || { head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$STATE/db.pass"; chmod 600 "$STATE/db.pass"; }
  cat "$STATE/db.pass"
}

write_configs() {
  local pass node
  pass=$(db_password)
  mariadb --no-defaults -S "$STATE/mysql/mysql.sock" -u root -e "
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$pass';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
  if [ -f "$CONF_DIR/slurm.conf" ] && ! grep -qF "$MARK" "$CONF_DIR/slurm.conf"; then
    die "$CONF_DIR/slurm.conf exists and was not written by this script: this machine has its own SLURM; use it"
  fi
  # The node line exactly as slurmd sees the hardware, so slurmd never drains the node for a mismatch.
  node=$(slurmd -C | head -n 1)
  mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d"
  cat >"$CONF_DIR/slurm.conf" <<EOF
$MARK
ClusterName=$CLUSTER
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
# No cgroups in a container: track processes by parent, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$CONF_DIR/slurmdbd.conf" <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$pass
StorageLoc=slurm_acct_db
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/slurmdbd.log
EOF
  chmod 600 "$CONF_DIR/slurmdbd.conf"  # slurmdbd refuses a world-readable file (it holds the password)
}

start() {
  need
  mkdir -p "$STATE"; chmod 755 "$STATE"
  start_munge
  start_mariadb
  write_configs
  alive "$STATE/slurmdbd.pid" || slurmdbd
  wait_for slurmdbd "$STATE/slurmdbd.log" sacctmgr -n list cluster
  sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null 2>&1 || true  # already there on a restart
  alive "$STATE/slurmctld.pid" || slurmctld
  alive "$STATE/slurmd.pid" || slurmd
  wait_for "the node (sinfo idle)" "$STATE/slurmd.log" bash -c '[ "$(sinfo -h -N -o %T)" = idle ]'
  say "up: $(sinfo -h -N -o '%N %T, %c CPUs, %m MB'); stop with: $0 stop"
}

stop() {
  # Reverse order; only what this script started (the pid files under $STATE), each by its own pid.
  for name in slurmd slurmctld slurmdbd mariadb munged; do
    local pidfile="$STATE/$name.pid"
    if alive "$pidfile"; then
      local pid; pid=$(cat "$pidfile")
      kill "$pid"
      for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$pidfile"
  done
  say "stopped"
}

status() {
  for name in munged mariadb slurmdbd slurmctld slurmd; do
    if alive "$STATE/$name.pid"; then echo "$name: running ($(cat "$STATE/$name.pid"))"; else echo "$name: not running"; fi
  done
  sinfo -h -N -o '%N %T' 2>/dev/null || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start | stop | status" >&2; exit 2 ;;
esac
