"""Pollinator: run one project folder, unchanged, on Slurm, Kubernetes or Docker via Colonies.

The core is layered; each subpackage may import only the layers below it (tests/test_layers.py
enforces this, function-local and ``TYPE_CHECKING`` imports included, and that no module
imports itself back through a cycle):

0. ``errors``     error types and their exit codes
1. ``colonies``   the Colonies protocol: wire models, signing, the client
2. ``project``    project.yaml, units, the function spec, scaffolding
3. ``storage``    where file bytes live (fsspec locations, the signed S3 path)
4. ``sync``       project directories <-> Colonies file records and objects
5. ``execution``  the runtime contract and the job semantics every runtime shares
6. ``executor``   the generic executor loop, staging, registration
7. ``plugins``    hook specifications, the plugin manager, settings, the backend interface
8. ``runs``       the user side: backends, the local agent, submit, follow, results
9. ``api``        the one import surface for plugin authors
10. ``builtin``   the built-in plugins (import only ``api``)
11. ``testing``   the test kit for plugin authors (a pytest plugin)
12. ``cli``       the command line
"""

__version__ = "0.1.0"
