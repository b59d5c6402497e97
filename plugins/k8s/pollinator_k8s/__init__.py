"""The Kubernetes execution plugin: processes run as batch/v1 Jobs (executor type ``k8s``, and
``--backend k8s``). docs/k8s.md describes it; plugin.py holds its hooks."""
