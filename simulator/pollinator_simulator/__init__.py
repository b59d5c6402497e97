"""A Colonies-compatible server stand-in: ``pollinator_simulator.embedded`` for in-process use,
``pollinator simulator serve`` (or ``python -m pollinator_simulator``) as a process."""
