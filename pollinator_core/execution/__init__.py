"""The execution contract every runtime implements, and the job semantics they share.

The Job a runtime receives, the Runtime interface, the termination record a finished job ends
with, and what every runtime must do the same way (init-cmd then cmd, the job environment, path
rewriting, walltime and kill grace, whole output lines, the batch-scheduler base).

Layer 5. May import: ``errors``, ``colonies``, ``project``.
"""
