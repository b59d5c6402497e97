"""Slurm + Apptainer/Singularity execution plugin: ``pollinator executor start --type slurm``
and ``--backend slurm`` (see docs/slurm.md)."""
