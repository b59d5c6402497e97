#!/bin/sh
#SBATCH --job-name="pln-a8ae6e6ee929abea"
#SBATCH --comment="0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#SBATCH --chdir="/shared/fs/p/a1/.pollinator-slurm"
#SBATCH --output="/shared/fs/p/a1/.pollinator-slurm/output.log"
#SBATCH --error="/shared/fs/p/a1/.pollinator-slurm/slurm.log"
#SBATCH --open-mode="append"
#SBATCH --export="ALL"
#SBATCH --no-requeue
#SBATCH --signal="B:USR2@60"
#SBATCH --nodes="1"
#SBATCH --ntasks-per-node="1"
#SBATCH --time="12"
#SBATCH --cpus-per-task="1"
#SBATCH --mem="1000M"
# Written by Pollinator for the Colonies process in --comment. The command is in
# cmd.sh, its environment in env.sh; srun runs task.sh on each node, which runs
# container.sh in the container.

pollinator_exit_record() {
  printf '{"exit_code": %d, "reason": "%s", "host": "%s", "ended": %d}\n' \
    "$1" "${2:-}" "$(hostname 2>/dev/null || echo unknown)" "$(date +%s)" \
    > "$POLLINATOR_EXIT_RECORD.tmp" && mv -f "$POLLINATOR_EXIT_RECORD.tmp" "$POLLINATOR_EXIT_RECORD"
}
POLLINATOR_EXIT_RECORD=/shared/fs/p/a1/.pollinator-slurm/exit.json
rm -f "$POLLINATOR_EXIT_RECORD"  # a requeued job starts without the last record
reason=
interrupted=
step=
pollinator_stop() {
  interrupted=1
  [ -n "$reason" ] && return
  reason=$1
  echo "pollinator: $2" >&2
  [ -n "$step" ] && kill -USR2 "$step" 2>/dev/null
}
pollinator_give_up() {
  echo "pollinator: $2" >&2
  pollinator_exit_record "$1"
  exit "$1"
}
on_walltime='walltime of 600 s reached: stopping the job (SIGTERM, then SIGKILL after 30 s)'
on_cancel='cancelled: stopping the job (SIGTERM, then SIGKILL after 30 s)'
trap 'pollinator_stop walltime "$on_walltime"' USR2
trap 'pollinator_stop cancelled "$on_cancel"' TERM INT
command -v apptainer >/dev/null 2>&1 || pollinator_give_up 127 "apptainer is not on PATH on $(hostname); load its module (the slurm modules setting)"
POLLINATOR_MASTER_ADDR=$(scontrol show hostnames "${SLURM_JOB_NODELIST:-}" 2>/dev/null | head -n 1)
: "${POLLINATOR_MASTER_ADDR:=${SLURMD_NODENAME:-$(hostname)}}"
export POLLINATOR_MASTER_ADDR
timer=
# The walltime, to the second, from the job's start.
(
  trap 'kill "$s" 2>/dev/null; exit 0' TERM
  sleep 600 &
  s=$!
  wait "$s" && kill -USR2 $$
) &
timer=$!
srun --quiet --export=ALL --kill-on-bad-exit=1 /bin/sh /shared/fs/p/a1/.pollinator-slurm/task.sh &
step=$!
[ -n "$reason" ] && kill -USR2 "$step" 2>/dev/null
# wait returns early when a signal is trapped: wait again until the step has ended.
while :; do
  interrupted=
  wait "$step"
  rc=$?
  [ -z "$interrupted" ] && break
done
[ -n "$timer" ] && kill "$timer" 2>/dev/null
# slurmstepd says so when the kernel killed a task for its memory.
[ -z "$reason" ] && tail -c 65536 /shared/fs/p/a1/.pollinator-slurm/slurm.log 2>/dev/null |
  grep -Eq "oom-kill event.*(StepId=|step )${SLURM_JOB_ID:-none}\." && reason=oom
pollinator_exit_record "$rc" "$reason"
exit "$rc"
