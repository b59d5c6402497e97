"""pollinator-spool: an example Pollinator plugin, built in docs/plugins.md.

Executor type ``spool`` runs Pollinator's jobs on a tiny batch scheduler that ships with it,
``pollinator-spoold`` (:mod:`pollinator_spool.daemon`): jobs are files in a spool directory.
"""

__version__ = "0.1.0"
