"""Slurm + Singularity/Apptainer execution plugin (package reserved in the layout; the backend
and its entry point arrive with the Slurm issue)."""
