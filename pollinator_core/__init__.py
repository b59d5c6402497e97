"""Pollinator: run one project folder, unchanged, on Slurm, Kubernetes or Docker via Colonies."""

__version__ = "0.1.0"
