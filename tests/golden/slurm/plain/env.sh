# The job's environment, read by sh in the container (written by Pollinator).
PYTHONUNBUFFERED=1
export PYTHONUNBUFFERED
PROJECT_DIR=/cfs/pollinator/demo/snap
export PROJECT_DIR
COLONIES_PROCESS_ID=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
export COLONIES_PROCESS_ID
