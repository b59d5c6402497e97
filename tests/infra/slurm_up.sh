#!/usr/bin/env bash
# Bring up a one-node Slurm cluster with Apptainer for the tests, all on 127.0.0.1. Idempotent.
#
#   tests/infra/slurm_up.sh [--with-dbd]  install what is missing (Slurm 22.05 + munge + MariaDB
#                                   from Debian, Apptainer 1.4 into $APPTAINER_ROOT), start munged,
#                                   MariaDB + slurmdbd (real sacct), slurmctld and slurmd, or reuse
#                                   ours when they run with the same configuration; convert the
#                                   test image to a SIF; prove it with two sbatch jobs (root and
#                                   the test user) that run `apptainer exec`; write
#                                   $POLLINATOR_CI_DIR/slurm.env and print its path on stdout
#   tests/infra/slurm_up.sh --no-dbd      the same without accounting: no MariaDB, no slurmdbd,
#                                   plain sacct says "accounting storage is disabled"
#   tests/infra/slurm_up.sh --status      exit 0 when our cluster answers and apptainer runs
#   tests/infra/slurm_up.sh --stop        stop every daemon this script started (pid files)
#   tests/infra/slurm_up.sh --stop-dbd    stop slurmdbd alone (slurmctld queues its records)
#   tests/infra/slurm_up.sh --start-dbd   start slurmdbd again (it receives the queued records)
#   tests/infra/slurm_up.sh --restart-ctld  restart slurmctld alone; running jobs go on
#
# The cluster: ClusterName=pollinator, one node `localhost` (CPUs=2, RealMemory=4096 MB),
# partition `debug` (default, MaxTime 30 min), cores and memory consumable (CR_Core_Memory).
#
# Memory enforcement on this machine kind (cgroup v1 hybrid, no systemd): proctrack/cgroup +
# task/cgroup with cgroup.conf CgroupPlugin=cgroup/v1, ConstrainRAMSpace=yes (and
# ConstrainSwapSpace=yes, AllowedSwapSpace=0, so that a machine with swap kills instead of
# swapping). slurmd puts each step in /sys/fs/cgroup/memory/slurm_localhost/uid_U/job_J/step_S
# with the job's --mem as memory.limit_in_bytes; the kernel OOM-kills a hog inside the step, task/cgroup
# sees the OOM event and the job ends OUT_OF_MEMORY (sacct: State OUT_OF_MEMORY, ExitCode 0:125).
# The alternative without cgroups (jobacct_gather/linux + JobAcctGatherParams=OverMemoryKill) only
# samples RSS every few seconds and lets a fast hog through; it is not used.
#
# Jobs: sbatch works as root and as the non-root user $TEST_USER (`runuser -u pollinator-test --
# sbatch ...`, or as root `sbatch --uid=pollinator-test`). The user has no password and no login
# need; its jobs see $SHARED_DIR (mode 1777), the SIFs in $SIF_DIR (world-readable) and run
# `apptainer exec` unprivileged (user namespace + squashfuse; /dev/fuse is made 0666 as Debian's
# udev rule would, there is no udev here). Root's exec runs with the capabilities root has here:
# root lacks CAP_SYS_RESOURCE, and apptainer's default for root ("full") would ask for it.
#
# Everything at run time lives in $POLLINATOR_CI_DIR/slurm (state, logs, pid files, the accounting
# database); Slurm's own config files are where every Slurm command looks (/etc/slurm). A
# slurm.conf that this script did not write is never overwritten. Daemons run in the foreground
# (-D/-F) under nohup so that the PID we record is the daemon's; nothing is stopped by name.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG_TAG=slurm
# shellcheck source=tests/infra/lib.sh
source "$here/lib.sh"

S=$POLLINATOR_CI_DIR/slurm
RUN=$S/run
LOGS=$S/log
ENV_FILE=$POLLINATOR_CI_DIR/slurm.env
SHARED_DIR=$S/shared
SIF_DIR=$S/sif
TEST_SIF=$SIF_DIR/test-image.sif
DB_DIR=$S/mariadb
DB_RUN=$S/mysqld
DB_SECRET=$S/dbd-password
CONF_DIR=/etc/slurm
SLURM_CONF=$CONF_DIR/slurm.conf
CGROUP_CONF=$CONF_DIR/cgroup.conf
DBD_CONF=$CONF_DIR/slurmdbd.conf
# The first line of every config file this script writes: the mark that it is ours to replace.
MARK="# Written by Pollinator's tests/infra/slurm_up.sh; rewritten on every run."

CLUSTER=pollinator
PARTITION=debug
ACCOUNT=pollinator
TEST_USER=pollinator-test
CTLD_PORT=${POLLINATOR_SLURMCTLD_PORT:-6817}
SLURMD_PORT=${POLLINATOR_SLURMD_PORT:-6818}
DBD_PORT=${POLLINATOR_SLURMDBD_PORT:-6819}
NETNS_PID=$RUN/dbd-netns.pid
# Apptainer is installed once per machine into a fixed path outside any checkout and reused.
APPTAINER_ROOT=${POLLINATOR_APPTAINER_ROOT:-/opt/pollinator/apptainer}
APPTAINER=$APPTAINER_ROOT/bin/apptainer
# The image tests/infra/docker_up.sh builds; tests/conftest.py reads the same variable.
IMAGE=${POLLINATOR_TEST_IMAGE:-localhost/pollinator-python:bookworm}

elapsed() { awk "BEGIN {printf \"%.1f\", $EPOCHREALTIME - $1}"; }

# --- daemons -------------------------------------------------------------------------------------

# start_daemon NAME COMMAND...: start COMMAND (a daemon in the foreground) detached, without our
# lock fd, and record its PID in $RUN/NAME.pid.
start_daemon() {
  local name=$1
  shift
  nohup "$@" >"$LOGS/$name.out" 2>&1 </dev/null 9>&- &
  echo $! >"$RUN/$name.pid"
}

munge_works() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
ctld_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }
node_ready() { sinfo -h -n localhost -o '%T' 2>/dev/null | grep -Eqx 'idle|mixed|allocated|completing'; }
db_up() { db_sql <<<'SELECT 1' >/dev/null 2>&1; }
dbd_up() { sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER"; }
accounting_on() { grep -q '^AccountingStorageType=accounting_storage/slurmdbd' "$SLURM_CONF" 2>/dev/null; }

# SQL from stdin on our MariaDB as its root over the private socket (unix-socket authentication,
# no password).
db_sql() { mariadb --no-defaults --protocol=socket --socket="$DB_RUN/mysqld.sock" -u root -N; }

show_log_tail() {
  local f
  for f in "$@"; do
    [[ -s $f ]] || continue
    printf '%s\n' "--- last lines of $f" >&2
    tail -n 20 "$f" >&2
  done
}

start_munge() {
  if munge_works; then
    pid_alive "$RUN/munged.pid" munged || log "reusing a munged this script did not start"
    return 0
  fi
  mkdir -p /run/munge
  chown munge:munge /run/munge
  chmod 755 /run/munge
  [[ -s /etc/munge/munge.key ]] || mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
  # setpriv execs munged (runuser would stay as its parent), so $! is munged's PID.
  start_daemon munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground
  wait_until 30 "munged" munge_works || {
    show_log_tail "$LOGS/munged.out" /var/log/munge/munged.log
    die "munged did not start"
  }
}

# --- accounting: MariaDB and slurmdbd in a network namespace of their own ---------------------
#
# slurmdbd always listens on all addresses (DbdAddr only names it to others; there is no
# NoInAddrAny for slurmdbd), and nothing on this machine may listen beyond loopback. So slurmdbd
# and its MariaDB run in a network namespace that has only a loopback device (`unshare --net`,
# kept alive by a holder process, entered with nsenter). socat bridges it both ways through Unix
# sockets: the host's 127.0.0.1:$DBD_PORT reaches slurmdbd (slurmctld, sacct, sacctmgr), and the
# namespace's 127.0.0.1:$CTLD_PORT reaches slurmctld (slurmdbd pushes association changes to the
# address a cluster registered from). MariaDB's port exists only inside the namespace.

# The holder has entered a network namespace other than ours (until unshare has run,
# /proc/PID/ns/net is still the host's).
own_netns() {
  pid_alive "$NETNS_PID" sleep &&
    [[ $(readlink "/proc/$(<"$NETNS_PID")/ns/net") != "$(readlink /proc/self/ns/net)" ]]
}

in_netns() { nsenter --net="/proc/$(<"$NETNS_PID")/ns/net" -- "$@"; }

# Bridges: pid file name, then socat's two addresses; "ns-" ones run inside the namespace.
BRIDGES=(
  "ns-dbd UNIX-LISTEN:$RUN/dbd.sock,fork,mode=600,unlink-early,backlog=128 TCP:127.0.0.1:$DBD_PORT"
  "host-dbd TCP-LISTEN:$DBD_PORT,bind=127.0.0.1,reuseaddr,fork,backlog=128 UNIX-CONNECT:$RUN/dbd.sock"
  "host-ctld UNIX-LISTEN:$RUN/ctld.sock,fork,mode=600,unlink-early,backlog=128 TCP:127.0.0.1:$CTLD_PORT"
  "ns-ctld TCP-LISTEN:$CTLD_PORT,bind=127.0.0.1,reuseaddr,fork,backlog=128 UNIX-CONNECT:$RUN/ctld.sock"
)

start_netns() {
  own_netns && return 0
  # Whatever still runs in an earlier namespace could not be reached from a new one.
  stop_accounting
  start_daemon dbd-netns unshare --net -- sleep infinity
  wait_until 10 "the network namespace" own_netns || die "unshare --net did not create a network namespace"
  in_netns ip link set lo up
  # A second loopback address: slurmdbd resolves its listening address with AI_ADDRCONFIG, and
  # glibc counts IPv4 as configured only when some address other than 127.0.0.1 exists.
  in_netns ip addr add 127.0.0.2/8 dev lo
}

start_bridges() {
  local b name from to
  for b in "${BRIDGES[@]}"; do
    read -r name from to <<<"$b"
    pid_alive "$RUN/bridge-$name.pid" socat && continue
    if [[ $name == host-dbd ]]; then
      port_open "$DBD_PORT" && die "127.0.0.1:$DBD_PORT is in use by a process this script did not" \
        "start; choose another port with POLLINATOR_SLURMDBD_PORT"
      start_daemon "bridge-$name" socat "$from" "$to"
    elif [[ $name == ns-* ]]; then
      start_daemon "bridge-$name" nsenter --net="/proc/$(<"$NETNS_PID")/ns/net" -- socat "$from" "$to"
    else
      start_daemon "bridge-$name" socat "$from" "$to"
    fi
  done
  wait_until 10 "the bridges' sockets" test -S "$RUN/dbd.sock" -a -S "$RUN/ctld.sock" ||
    die "socat did not create the bridge sockets in $RUN"
}

start_mariadb() {
  db_up && return 0
  pid_alive "$RUN/mariadbd.pid" mariadbd && die "our mariadbd runs but does not answer on $DB_RUN/mysqld.sock"
  mkdir -p "$DB_DIR" "$DB_RUN"
  chown mysql:mysql "$DB_DIR" "$DB_RUN"
  if [[ ! -d $DB_DIR/mysql ]]; then
    log "creating the accounting database in $DB_DIR"
    mariadb-install-db --no-defaults --user=mysql --datadir="$DB_DIR" --skip-test-db \
      --auth-root-authentication-method=socket >"$LOGS/mariadb-install.out" 2>&1 9>&- || {
      show_log_tail "$LOGS/mariadb-install.out"
      die "mariadb-install-db failed"
    }
  fi
  # --no-defaults: Debian's /etc/mysql config (system socket, system datadir) is not ours. The
  # lock wait timeout is the one slurmdbd asks for; its buffer pool advice (GBs) is not followed
  # for a database of a few test jobs (slurmdbd logs a warning about that at start).
  start_daemon mariadbd nsenter --net="/proc/$(<"$NETNS_PID")/ns/net" -- \
    /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$DB_DIR" \
    --socket="$DB_RUN/mysqld.sock" --pid-file="$DB_RUN/mariadbd.pid" \
    --bind-address=127.0.0.1 --port=3306 --skip-name-resolve --log-error="$LOGS/mariadb.log" \
    --innodb-lock-wait-timeout=900
  wait_until 60 "MariaDB" db_up || {
    show_log_tail "$LOGS/mariadb.log" "$LOGS/mariadbd.out"
    die "MariaDB did not start"
  }
}

# The slurmdbd database user's password: random, made once, kept in a root-only file, given to
# MariaDB on stdin and to slurmdbd in its 0600 config; never on a command line or in a log.
db_password() {
  if [[ ! -s $DB_SECRET ]]; then
    (umask 077 && od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$DB_SECRET")
  fi
  cat "$DB_SECRET"
}

setup_db_user() {
  local pw
  pw=$(db_password)
  db_sql <<SQL || die "cannot create the slurm database user"
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$pw';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$pw';
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL
}

write_dbd_conf() {
  local tmp=$DBD_CONF.tmp
  (
    umask 077
    cat >"$tmp" <<CONF
$MARK
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=slurm
LogFile=$LOGS/slurmdbd.log
PidFile=$RUN/slurmdbd.daemon.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=$(db_password)
StorageLoc=slurm_acct_db
CONF
  )
  chown slurm:slurm "$tmp"
  mv -f "$tmp" "$DBD_CONF"
}

start_dbd() {
  dbd_up && pid_alive "$RUN/slurmdbd.pid" slurmdbd && return 0
  start_netns
  start_bridges
  start_mariadb
  setup_db_user
  write_dbd_conf
  if ! pid_alive "$RUN/slurmdbd.pid" slurmdbd; then
    start_daemon slurmdbd nsenter --net="/proc/$(<"$NETNS_PID")/ns/net" -- /usr/sbin/slurmdbd -D
  fi
  # sacctmgr needs slurmdbd, not slurmctld; the cluster row may not exist yet on a fresh database.
  slurmdbd_answers() { sacctmgr -n list cluster >/dev/null 2>&1; }
  wait_until 60 "slurmdbd" slurmdbd_answers || {
    show_log_tail "$LOGS/slurmdbd.log" "$LOGS/slurmdbd.out"
    die "slurmdbd did not start"
  }
  dbd_up || sacctmgr -i add cluster "$CLUSTER" >/dev/null
  # An account with root and the test user, so that tests can pass --account (not enforced).
  if ! sacctmgr -n -P list account "$ACCOUNT" format=account | grep -qx "$ACCOUNT"; then
    sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description="Pollinator tests" \
      organization=pollinator >/dev/null
  fi
  local user
  for user in root "$TEST_USER"; do
    if ! sacctmgr -n -P list user "$user" format=user | grep -qx "$user"; then
      sacctmgr -i add user "$user" account="$ACCOUNT" cluster="$CLUSTER" >/dev/null
    fi
  done
}

# slurmdbd and the host end of its bridge: a client then gets "Connection refused", as from a real
# slurmdbd that is down. (Through a bridge whose far end is gone, the connection would open and
# then fail, and a slurmctld starting then would take the dbd for up but broken and refuse to run
# from its state files.)
stop_dbd() {
  stop_pidfile "$RUN/slurmdbd.pid" slurmdbd 30
  stop_pidfile "$RUN/bridge-host-dbd.pid" socat 5
}

# slurmdbd, MariaDB, the bridges and the namespace.
stop_accounting() {
  local i name
  stop_dbd
  stop_pidfile "$RUN/mariadbd.pid" mariadbd 60
  for ((i = ${#BRIDGES[@]} - 1; i >= 0; i--)); do
    read -r name _ <<<"${BRIDGES[i]}"
    stop_pidfile "$RUN/bridge-$name.pid" socat 5
  done
  stop_pidfile "$NETNS_PID" sleep 5
}

start_ctld() {
  pid_alive "$RUN/slurmctld.pid" slurmctld || {
    port_open "$CTLD_PORT" && die "127.0.0.1:$CTLD_PORT is in use by a process this script did" \
      "not start (another slurmctld?); stop it, or choose POLLINATOR_SLURMCTLD_PORT"
    start_daemon slurmctld /usr/sbin/slurmctld -D
  }
  wait_until 60 "slurmctld" ctld_up || {
    show_log_tail "$LOGS/slurmctld.log" "$LOGS/slurmctld.out"
    die "slurmctld did not start"
  }
}

start_slurmd() {
  pid_alive "$RUN/slurmd.pid" slurmd || {
    port_open "$SLURMD_PORT" && die "127.0.0.1:$SLURMD_PORT is in use by a process this script" \
      "did not start (another slurmd?); stop it, or choose POLLINATOR_SLURMD_PORT"
    start_daemon slurmd /usr/sbin/slurmd -D -N localhost
  }
  wait_until 60 "the node to become ready" node_ready || {
    show_log_tail "$LOGS/slurmd.log" "$LOGS/slurmd.out" "$LOGS/slurmctld.log"
    sinfo -N -l >&2 || true
    die "node localhost did not become ready"
  }
}

# Jobs still running would outlive slurmd (slurmstepd and the job's processes): cancel them first.
cancel_jobs() {
  local jobs
  pid_alive "$RUN/slurmctld.pid" slurmctld && ctld_up || return 0
  mapfile -t jobs < <(squeue -h -o %i 2>/dev/null)
  ((${#jobs[@]} > 0)) || return 0
  log "cancelling the cluster's jobs: ${jobs[*]}"
  scancel "${jobs[@]}" || true
  no_jobs() { [[ -z $(squeue -h -o %i 2>/dev/null) ]]; }
  wait_until 30 "the jobs to end" no_jobs || log "jobs still listed: $(squeue -h -o '%i %T' | tr '\n' ' ')"
}

stop_ours() {
  cancel_jobs
  stop_pidfile "$RUN/slurmd.pid" slurmd 30
  stop_pidfile "$RUN/slurmctld.pid" slurmctld 30
  stop_accounting
  stop_pidfile "$RUN/munged.pid" munged 10
  rm -f "$ENV_FILE"
}

ours_running() {
  local name
  for name in slurmctld slurmd; do
    pid_alive "$RUN/$name.pid" "$name" || return 1
  done
  if accounting_on; then accounting_running || return 1; fi
  return 0
}

accounting_running() {
  local b name
  own_netns && pid_alive "$RUN/mariadbd.pid" mariadbd && pid_alive "$RUN/slurmdbd.pid" slurmdbd || return 1
  for b in "${BRIDGES[@]}"; do
    read -r name _ <<<"$b"
    pid_alive "$RUN/bridge-$name.pid" socat || return 1
  done
}

healthy() {
  ours_running && munge_works && ctld_up && node_ready && "$APPTAINER" --version >/dev/null 2>&1
}

# --- configuration -------------------------------------------------------------------------------

# render_slurm_conf WITH_DBD: slurm.conf on stdout.
render_slurm_conf() {
  local accounting
  if (($1)); then
    accounting="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT"
  else
    accounting="AccountingStorageType=accounting_storage/none"
  fi
  cat <<CONF
$MARK
ClusterName=$CLUSTER
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
# Every daemon binds the address its host name resolves to (localhost: 127.0.0.1), not 0.0.0.0.
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
SwitchType=switch/none
StateSaveLocation=$S/ctld-state
SlurmdSpoolDir=$S/slurmd-spool
SlurmctldPidFile=$RUN/slurmctld.daemon.pid
SlurmdPidFile=$RUN/slurmd.daemon.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# Memory limits enforced by the kernel through cgroup v1 (see cgroup.conf and the script header).
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
JobAcctGatherType=jobacct_gather/cgroup
JobAcctGatherFrequency=task=5
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without --mem a job gets this per CPU, not the whole node (which would serialise all jobs).
DefMemPerCPU=512
# The node comes back by itself after a restart of slurmd or slurmctld.
ReturnToService=2
# Finished jobs stay visible to squeue/scontrol for 5 minutes (sacct keeps them for good).
MinJobAge=300
# SIGTERM to SIGKILL on timeout or scancel: short, so that walltime and cancel tests are quick.
KillWait=5
InactiveLimit=0
# No mail on this machine; sbatch --mail-type would otherwise log an invalid MailProg.
MailProg=/bin/true
$accounting
# Completed jobs also go to a text file: \`sacct -c\` still answers without slurmdbd.
JobCompType=jobcomp/filetxt
JobCompLoc=$LOGS/jobcomp.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=4096 State=UNKNOWN
PartitionName=$PARTITION Nodes=localhost Default=YES MaxTime=30 DefaultTime=10 State=UP
CONF
}

render_cgroup_conf() {
  cat <<CONF
$MARK
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
ConstrainCores=yes
ConstrainRAMSpace=yes
AllowedRAMSpace=100
ConstrainSwapSpace=yes
AllowedSwapSpace=0
CONF
}

# A config file we may replace: absent, or written by this script.
ours_to_write() { [[ ! -e $1 ]] || [[ $(head -n 1 "$1") == "$MARK" ]]; }

# install_conf FILE CONTENT: write FILE when it differs; returns 0 when it changed.
install_conf() {
  local file=$1 content=$2
  if [[ -e $file ]] && [[ $(<"$file") == "$content" ]]; then return 1; fi
  printf '%s\n' "$content" >"$file.tmp"
  chmod 644 "$file.tmp"
  mv -f "$file.tmp" "$file"
  return 0
}

# --- Apptainer -----------------------------------------------------------------------------------

apptainer_works() { [[ -f $APPTAINER_ROOT/.complete ]] && "$APPTAINER" --version >/dev/null 2>&1; }

# Apptainer is not in bookworm and not on PyPI. Debian sid has 1.4, built against glibc >= 2.38
# (bookworm has 2.36). Instead of upgrading the system's libc, sid's apptainer and sid's libc6
# are unpacked into a private prefix and the two ELF programs (apptainer, starter) get that libc
# as interpreter and first RPATH entry (patchelf). Apptainer relocates itself to the prefix it runs
# from (BINDIR, LIBEXECDIR, the config dir), as long as there is no setuid starter.
install_apptainer() {
  local started=$EPOCHREALTIME mirror work version libc_version prefix caps
  mirror=$(debian_mirror)
  work=$POLLINATOR_CI_DIR/apptainer-download
  rm -rf "$work"
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/x"
  printf 'deb %s sid main\n' "$mirror" >"$work/sources.list"
  # A private package list for sid: the machine's own apt sources stay untouched.
  local apt=(apt-get -q -o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=-
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root)
  log "downloading apptainer and libc6 from Debian sid ($mirror)"
  "${apt[@]}" update >"$work/apt.log" 2>&1 || {
    show_log_tail "$work/apt.log"
    die "apt-get update for Debian sid failed"
  }
  (cd "$work" && "${apt[@]}" download apptainer libc6 >>"$work/apt.log" 2>&1) || {
    show_log_tail "$work/apt.log"
    die "cannot download apptainer/libc6 from Debian sid"
  }
  version=$(dpkg-deb -f "$work"/apptainer_*.deb Version)
  libc_version=$(dpkg-deb -f "$work"/libc6_*.deb Version)
  [[ $version == 1.4.* ]] || log "WARNING: Debian sid now has apptainer $version (verified with 1.4.x)"
  # A versioned directory, completed in place and then pointed to by $APPTAINER_ROOT: the patched
  # binaries hold absolute paths into it, and a half-built one is never the one in use.
  prefix=$(dirname "$APPTAINER_ROOT")/apptainer-$version
  rm -rf "$prefix"
  mkdir -p "$prefix/bin" "$prefix/libexec" "$prefix/lib/x86_64-linux-gnu" "$prefix/glibc" \
    "$prefix/var/lib/apptainer/mnt/session"
  dpkg-deb -x "$work"/apptainer_*.deb "$work/x"
  dpkg-deb -x "$work"/libc6_*.deb "$prefix/glibc"
  cp -a "$work/x/usr/bin/apptainer" "$prefix/bin/"
  cp -a "$work/x/etc" "$prefix/"
  cp -a "$work/x/usr/lib/x86_64-linux-gnu/apptainer" "$prefix/libexec/apptainer"
  # Debian's LIBEXECDIR is lib/x86_64-linux-gnu, but the starter derives the prefix from its own
  # path as PREFIX/libexec/apptainer/bin/starter: keep the file there and point Debian's path at it.
  ln -s ../../libexec/apptainer "$prefix/lib/x86_64-linux-gnu/apptainer"
  local libc=$prefix/glibc/usr/lib/x86_64-linux-gnu bin
  for bin in "$prefix/bin/apptainer" "$prefix/libexec/apptainer/bin/starter"; do
    patchelf --set-interpreter "$libc/ld-linux-x86-64.so.2" --force-rpath \
      --set-rpath "$libc:/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu" "$bin" ||
      die "patchelf failed on $bin"
  done
  "$prefix/bin/apptainer" --version >/dev/null 2>&1 || die "the patched apptainer does not run:" \
    "$("$prefix/bin/apptainer" --version 2>&1 | tail -n 3)"
  # Root here lacks CAP_SYS_RESOURCE; apptainer's "full" default for root asks for every
  # capability and fails. "file" grants what capability.json lists: every capability root has.
  sed -i 's/^root default capabilities = full$/root default capabilities = file/' \
    "$prefix/etc/apptainer/apptainer.conf"
  grep -q '^root default capabilities = file$' "$prefix/etc/apptainer/apptainer.conf" ||
    die "apptainer.conf has no 'root default capabilities' line to change"
  caps=$(capsh --decode="$(awk '/^CapEff/ {print $2}' /proc/self/status)" | cut -d= -f2 | tr "[:lower:]" "[:upper:]")
  "$prefix/bin/apptainer" capability add --user root "$caps" >/dev/null 2>&1 ||
    die "apptainer capability add --user root failed"
  printf 'apptainer %s with libc6 %s from Debian sid\n' "$version" "$libc_version" >"$prefix/.complete"
  ln -sfn "$(basename "$prefix")" "$APPTAINER_ROOT.new"
  mv -T -f "$APPTAINER_ROOT.new" "$APPTAINER_ROOT"
  rm -rf "$work"
  log "apptainer $version installed in $prefix in $(elapsed "$started") s"
}

setup_apptainer() {
  # What sid's package depends on and bookworm has (mksquashfs, squashfuse, newuidmap), what its
  # unprivileged mode uses (fuse2fs, gocryptfs: without them every non-root exec prints two INFO
  # lines into the job's output), and the install's tools (patchelf, capsh).
  apt_install --no-install-recommends squashfs-tools squashfuse uidmap fuse2fs gocryptfs \
    patchelf libcap2-bin
  apptainer_works || install_apptainer
  apptainer_works || die "apptainer in $APPTAINER_ROOT does not run after installing it"
  # On PATH for jobs and tests (sbatch --export=NONE jobs get a login PATH, which has /usr/local/bin).
  ln -sfn "$APPTAINER" /usr/local/bin/apptainer
  ln -sfn "$APPTAINER" /usr/local/bin/singularity
  # Unprivileged users mount SIFs with squashfuse in a user namespace: they need /dev/fuse, which
  # udev makes 0666 on an ordinary Debian system; there is no udev here.
  if [[ -c /dev/fuse ]]; then chmod 666 /dev/fuse; else log "WARNING: no /dev/fuse: non-root exec will unpack SIFs"; fi
}

# The test image as a SIF, rebuilt when the Docker image changes (its ID is kept beside the SIF).
# Without a Docker engine, an existing SIF is reused as it is.
ensure_test_sif() {
  local id started tmp
  if ! id=$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null); then
    [[ -s $TEST_SIF ]] && return 0
    die "no SIF at $TEST_SIF and no Docker image $IMAGE to build it from; run tests/infra/docker_up.sh first"
  fi
  [[ -s $TEST_SIF && $(cat "$TEST_SIF.image-id" 2>/dev/null) == "$id" ]] && return 0
  started=$EPOCHREALTIME
  tmp=$SIF_DIR/.test-image.$$.sif
  log "converting $IMAGE to $TEST_SIF"
  "$APPTAINER" build --force "$tmp" "docker-daemon:$IMAGE" >"$LOGS/sif-build.out" 2>&1 9>&- || {
    rm -f "$tmp"
    show_log_tail "$LOGS/sif-build.out"
    die "apptainer build of $IMAGE failed"
  }
  chmod 644 "$tmp"
  mv -f "$tmp" "$TEST_SIF"
  printf '%s\n' "$id" >"$TEST_SIF.image-id"
  log "SIF of the test image built in $(elapsed "$started") s"
}

# --- proof: apptainer exec inside sbatch jobs, as root and as the test user -----------------------

# verify_job AS_USER: one batch job with the login environment only (--export=NONE) runs
# `apptainer exec --containall --cleanenv` with a directory bound at /cfs; the job must print its
# line, write a file there as AS_USER, and end COMPLETED with exit code 0.
verify_job() {
  local user=$1 dir out script jobid rc started first=""
  dir=$SHARED_DIR/verify-$user
  rm -rf "$dir"
  mkdir -p "$dir/cfs"
  script=$dir/job.sh
  out=$dir/job.out
  cat >"$script" <<'JOB'
#!/bin/bash
exec apptainer exec --containall --cleanenv --bind "$1:/cfs" "$2" python3 -c '
import os
print("hello from apptainer, uid", os.getuid(), flush=True)
with open("/cfs/written", "w") as f:
    f.write(str(os.getuid()))
'
JOB
  chmod 755 "$script"
  chown -R "$user:" "$dir"
  local submit=(sbatch --parsable --wait --export=NONE --job-name=pollinator-infra-check
    --chdir="$dir" --output="$out" --time=2 --mem=256M "$script" "$dir/cfs" "$TEST_SIF")
  [[ $user == root ]] || submit=(runuser -u "$user" -- "${submit[@]}")
  started=$EPOCHREALTIME
  "${submit[@]}" >"$dir/jobid" 2>"$dir/sbatch.err" 9>&- &
  local waiter=$!
  # sbatch-to-first-line latency: poll the output file while sbatch --wait waits.
  while [[ -d /proc/$waiter ]]; do
    if [[ -s $out ]] && grep -q '^hello from apptainer' "$out"; then
      first=$(elapsed "$started")
      break
    fi
    sleep 0.05
  done
  rc=0
  wait "$waiter" || rc=$?
  jobid=$(head -n 1 "$dir/jobid" 2>/dev/null || true)
  if ((rc != 0)) || ! grep -q '^hello from apptainer' "$out" 2>/dev/null; then
    show_log_tail "$dir/sbatch.err" "$out" "$LOGS/slurmd.log"
    die "the check job ${jobid:-?} as $user failed (sbatch --wait exit $rc)"
  fi
  [[ $(cat "$dir/cfs/written") == "$(id -u "$user")" && $(stat -c %U "$dir/cfs/written") == "$user" ]] ||
    die "the check job as $user did not write /cfs/written as $user"
  log "sbatch + apptainer exec as $user: job $jobid ok, first line after ${first:-?} s," \
    "done after $(elapsed "$started") s"
}

# --- actions -------------------------------------------------------------------------------------

ensure_test_user() {
  id -u "$TEST_USER" >/dev/null 2>&1 && return 0
  log "creating the non-root test user $TEST_USER"
  useradd --create-home --shell /bin/bash --comment "Pollinator test jobs" "$TEST_USER"
}

prepare_dirs() {
  mkdir -p "$RUN" "$LOGS" "$S/ctld-state" "$S/slurmd-spool" "$SHARED_DIR" "$SIF_DIR"
  # slurmctld and slurmdbd run as the slurm user and write their state, logs and pid files here.
  chown slurm:slurm "$S/ctld-state" "$LOGS" "$RUN"
  chmod 755 "$POLLINATOR_CI_DIR" "$S" "$SIF_DIR"
  # Jobs of any user (root, the test user) create their working directories here.
  chmod 1777 "$SHARED_DIR"
}

write_env_file() {
  local with_dbd=$1
  cat >"$ENV_FILE.tmp" <<ENV
# Written by tests/infra/slurm_up.sh: the one-node Slurm cluster with Apptainer for the tests.
POLLINATOR_SLURM_CLUSTER=$CLUSTER
POLLINATOR_SLURM_PARTITION=$PARTITION
POLLINATOR_SLURM_ACCOUNT=$ACCOUNT
POLLINATOR_SLURM_ACCOUNTING=$( ((with_dbd)) && echo true || echo false)
POLLINATOR_SLURM_TEST_USER=$TEST_USER
POLLINATOR_SLURM_SHARED_DIR=$SHARED_DIR
POLLINATOR_SLURM_SIF_DIR=$SIF_DIR
POLLINATOR_SLURM_TEST_SIF=$TEST_SIF
POLLINATOR_SLURM_APPTAINER=$APPTAINER
POLLINATOR_SLURM_CONF=$SLURM_CONF
POLLINATOR_SLURM_LOG_DIR=$LOGS
ENV
  mv -f "$ENV_FILE.tmp" "$ENV_FILE"
}

up() {
  local with_dbd=$1 t conf_changed=0
  need_root
  take_lock slurm
  t=$EPOCHREALTIME
  # Slurm 22.05 and munge from bookworm; without recommends (slurm-wlm would pull every plugin).
  apt_install --no-install-recommends munge slurmctld slurmd slurm-client
  ((with_dbd)) && apt_install --no-install-recommends slurmdbd mariadb-server socat iproute2
  log "packages ready in $(elapsed "$t") s"
  t=$EPOCHREALTIME
  setup_apptainer
  log "apptainer $("$APPTAINER" --version | awk '{print $NF}') ready in $(elapsed "$t") s"

  ensure_test_user
  prepare_dirs
  ours_to_write "$SLURM_CONF" || die "$SLURM_CONF exists and was not written by this script;" \
    "move it away to let the script set up its test cluster"
  ours_to_write "$CGROUP_CONF" || die "$CGROUP_CONF exists and was not written by this script"
  ((with_dbd)) && { ours_to_write "$DBD_CONF" || die "$DBD_CONF exists and was not written by this script"; }

  t=$EPOCHREALTIME
  install_conf "$CGROUP_CONF" "$(render_cgroup_conf)" && conf_changed=1
  install_conf "$SLURM_CONF" "$(render_slurm_conf "$with_dbd")" && conf_changed=1
  if ((conf_changed)) || ! healthy; then
    # slurmctld and slurmd read slurm.conf at start; a changed one (other accounting mode) means
    # a restart of both. Their state (queued and running jobs) survives in ctld-state.
    stop_pidfile "$RUN/slurmd.pid" slurmd 30
    stop_pidfile "$RUN/slurmctld.pid" slurmctld 30
    trap 'log "start-up failed; stopping what was started"; stop_ours' EXIT
    start_munge
    if ((with_dbd)); then
      start_dbd
    else
      stop_accounting
    fi
    start_ctld
    start_slurmd
    trap - EXIT
    log "cluster up in $(elapsed "$t") s ($( ((with_dbd)) && echo with || echo without) accounting)"
  else
    log "reusing the running cluster"
  fi

  # Tests find the cluster by the env file: none while the cluster is not proven to work.
  trap 'rm -f "$ENV_FILE"' EXIT
  ensure_test_sif
  verify_job root
  verify_job "$TEST_USER"
  trap - EXIT
  write_env_file "$with_dbd"
  local pids
  pids="slurmctld=$(<"$RUN/slurmctld.pid") slurmd=$(<"$RUN/slurmd.pid")"
  ((with_dbd)) && pids+=" slurmdbd=$(<"$RUN/slurmdbd.pid") mariadbd=$(<"$RUN/mariadbd.pid")"
  log "Slurm ready: partition $PARTITION, $(sinfo -h -o '%C' | awk -F/ '{print $4}') CPUs," \
    "pids: $pids; env file: $ENV_FILE"
  printf '%s\n' "$ENV_FILE"
}

case ${1:-} in
  "" | --with-dbd) up 1 ;;
  --no-dbd) up 0 ;;
  --status) healthy ;;
  --stop)
    stop_ours
    ;;
  --stop-dbd)
    need_root
    take_lock slurm
    stop_dbd
    ;;
  --start-dbd)
    need_root
    take_lock slurm
    accounting_on || die "the cluster runs without accounting (--no-dbd); start it with --with-dbd"
    start_dbd
    log "slurmdbd running (pid $(<"$RUN/slurmdbd.pid"))"
    ;;
  --restart-ctld)
    need_root
    take_lock slurm
    pid_alive "$RUN/slurmctld.pid" slurmctld || die "slurmctld is not running (ours); start the cluster first"
    t=$EPOCHREALTIME
    stop_pidfile "$RUN/slurmctld.pid" slurmctld 30
    start_ctld
    log "slurmctld restarted in $(elapsed "$t") s (pid $(<"$RUN/slurmctld.pid"))"
    ;;
  *) die "usage: $0 [--with-dbd|--no-dbd|--status|--stop|--stop-dbd|--start-dbd|--restart-ctld]" ;;
esac
