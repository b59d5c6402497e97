"""The project: project.yaml loaded into typed models, units, the function spec, scaffolding.

Layer 2: pure functions of the project folder, no network. May import: ``errors``, ``colonies``
(for the wire models the function spec is made of).
"""
