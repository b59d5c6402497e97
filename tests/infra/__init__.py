"""Test infrastructure: scripts that bring up real components, and their pytest side."""
