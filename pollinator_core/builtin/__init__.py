"""The built-in plugins (storage schemes, the ``colonies`` backend). They are registered
through the same entry-point group as third-party plugins.

Layer 10: may import ``pollinator_core.api`` only, like any plugin.
"""
