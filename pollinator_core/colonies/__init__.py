"""The Colonies transport: wire models, signing, client configuration and the signed RPC client.

Layer 1: speaks the Colonies protocol and nothing else. May import: ``pollinator_core.errors``.
"""
