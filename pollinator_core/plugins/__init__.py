"""The plugin system: hook specifications, the plugin manager, plugin settings and the
``--backend`` interface plugins register.

Layer 7. May import every layer below: ``errors``, ``colonies``, ``project``, ``storage``,
``sync``, ``execution``, ``executor``.
"""
