"""The executor: the generic loop that takes processes from a Colonies server, stages their
files, runs them on a runtime and closes them with the truth.

Layer 6. May import: ``errors``, ``colonies``, ``project``, ``storage``, ``sync``, ``execution``.
"""
