"""The ``pollinator`` command line (click), each command imported only when it runs.

Layer 12, the top: may import every other layer.
"""
