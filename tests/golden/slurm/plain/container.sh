#!/bin/sh
# The first program in the container, once per task. Arguments: the task's rank, local rank,
# the number of tasks, the node's rank, the first node's name and the Slurm job id.
. /.pollinator/env.sh
RANK=$1 LOCAL_RANK=$2 WORLD_SIZE=$3 NODE_RANK=$4 MASTER_ADDR=$5 SLURM_JOB_ID=$6
export RANK LOCAL_RANK WORLD_SIZE NODE_RANK MASTER_ADDR SLURM_JOB_ID
stopping=
interrupted=
# Stop every process of the task: the container has a PID namespace of its own
# (--containall), so kill -1 reaches exactly the job's processes.
pollinator_stop() {
  interrupted=1
  [ -n "$stopping" ] && return
  stopping=1
  kill -TERM -1 2>/dev/null
  ( sleep 30; kill -KILL -1 2>/dev/null ) &
}
trap pollinator_stop TERM USR2 INT
# One stream, in the order the job wrote it; this shell's own words ("Killed") are not the
# job's output.
/bin/sh /.pollinator/cmd.sh 2>&1 &
child=$!
exec 2>/dev/null
while :; do
  interrupted=
  wait "$child"
  rc=$?
  [ -z "$interrupted" ] && break
done
exit "$rc"
