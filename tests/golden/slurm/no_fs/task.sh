#!/bin/sh
# One task of the job: srun starts this on each node, once per task; the task's
# rank goes into the container as container.sh's arguments. One stream: Apptainer's
# own errors belong with the job's output.
exec 2>&1
exec apptainer exec --containall --cleanenv --bind /shared/jobs/pln-a8ae6e6ee929abea:/.pollinator:ro /shared/images/tool.sif /bin/sh /.pollinator/container.sh "$SLURM_PROCID" "$SLURM_LOCALID" "$SLURM_NTASKS" "$SLURM_NODEID" "$POLLINATOR_MASTER_ADDR" "$SLURM_JOB_ID"
