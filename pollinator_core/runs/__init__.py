"""The user side of a run: backends (where runs go), the local agent, submitting, following,
fetching results.

Layer 8. May import every layer below (up to ``plugins``).
"""
