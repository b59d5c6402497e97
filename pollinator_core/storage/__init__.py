"""Where CFS file bytes live: storage locations (an fsspec filesystem plus the record
template) and the signed S3 fast path.

Layer 3. May import: ``errors``, ``colonies``, ``project``.
"""
