"""The Kubernetes API calls the runtime makes: a handful of REST requests with JSON bodies, each
one counted (what the benchmarks report as API requests per minute).

The ``kubernetes`` package supplies what is hard to get right (kubeconfig contexts, exec and
OIDC credentials, in-cluster tokens that rotate, TLS, the connection pool); the requests
themselves go through its ``ApiClient.call_api`` with plain dicts, so no generated model
stands between a manifest and the wire. Errors become the project's: the API unreachable or
answering 5xx is an :class:`InfraError` (the runtime rides it out), a refusal is an
:class:`ApiError` with the API's own message.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pollinator_core.api import InfraError, UsageError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from .settings import K8sSettings

IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
#: (connect, read) seconds of an ordinary request
TIMEOUT = (10.0, 30.0)
#: a log stream that stays silent this long is reopened: the last guard against a connection
#: that died without a word (TCP keepalive, on for every connection, notices most first)
STREAM_IDLE = 900.0
#: seconds one watch request lasts before the API ends it (and the runtime opens the next)
WATCH_SECONDS = 300
#: connections kept per host: one per followed pod, plus the poller's
POOL_SIZE = 64


class ApiError(InfraError):
    """The API refused a request; ``status`` is the HTTP status, the message the API's own."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        self.api_message = message
        super().__init__(f"Kubernetes API: {status} {reason}: {message}")


def _status_message(data: bytes) -> tuple[str, str]:
    """(reason, message) of a Kubernetes ``Status`` body, or the raw text."""
    try:
        status = json.loads(data)
        return str(status.get("reason") or ""), str(status.get("message") or "")
    except ValueError:
        return "", data.decode("utf-8", "replace")[:500]


class Kube:
    """One namespace of one cluster, through ``client`` (a configured ``ApiClient``)."""

    def __init__(self, client: ApiClient, namespace: str, where: str = "") -> None:
        self.client = client
        self.namespace = namespace
        self.where = where or client.configuration.host
        self._lock = threading.Lock()
        #: requests made, by kind ("list pods", "log stream" ...)
        self.calls: dict[str, int] = {}

    # --- connecting ----------------------------------------------------------------------------

    @classmethod
    def connect(cls, settings: K8sSettings) -> Kube:
        """In-cluster credentials when running in a pod (and no kubeconfig is named), else the
        kubeconfig: ``settings.kubeconfig``, $KUBECONFIG, ~/.kube/config."""
        from kubernetes import client
        from kubernetes.config.config_exception import ConfigException

        config = _config_module()
        configuration = client.Configuration()
        if settings.kubeconfig and not Path(settings.kubeconfig).expanduser().is_file():
            raise UsageError(
                f"The kubeconfig {settings.kubeconfig} does not exist. Name an existing one "
                "(-s kubeconfig=PATH, POLLINATOR_K8S_KUBECONFIG, or k8s.kubeconfig in "
                "project.yaml), or leave it empty for $KUBECONFIG or ~/.kube/config."
            )
        in_cluster = (
            not settings.kubeconfig
            and "KUBERNETES_SERVICE_HOST" in os.environ
            and IN_CLUSTER_TOKEN.exists()
        )
        try:
            if in_cluster:
                config.load_incluster_config(client_configuration=configuration)
                namespace = settings.namespace or _read(IN_CLUSTER_NAMESPACE) or "default"
                source = "in-cluster credentials"
            else:
                path = str(Path(settings.kubeconfig).expanduser()) if settings.kubeconfig else None
                context = settings.context or None
                config.load_kube_config(
                    config_file=path, context=context, client_configuration=configuration
                )
                namespace = settings.namespace or _context_namespace(path, context) or "default"
                source = f"kubeconfig {path or os.environ.get('KUBECONFIG') or '~/.kube/config'}"
        except (ConfigException, OSError, ValueError, TypeError, KeyError) as exc:
            why = str(exc).rstrip(".")
            raise UsageError(
                f"No usable Kubernetes credentials: {why}. Name a kubeconfig (-s kubeconfig=PATH "
                "or $KUBECONFIG) and a context (-s context=NAME), or run the executor in a pod "
                "with a ServiceAccount (deploy/k8s/executor.yaml)."
            ) from None
        configuration.connection_pool_maxsize = POOL_SIZE
        configuration.keep_alive = True  # as client-go: a dead peer is noticed within minutes
        where = f"{configuration.host} ({source})"
        return cls(client.ApiClient(configuration), namespace, where)

    def close(self) -> None:
        closing: Any = self.client.close  # untyped in the kubernetes package
        closing()

    # --- requests ------------------------------------------------------------------------------

    def _count(self, kind: str) -> None:
        with self._lock:
            self.calls[kind] = self.calls.get(kind, 0) + 1

    def _send(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: tuple[float, float] = TIMEOUT,
    ) -> Any:
        """The response of one request (its body not read yet); errors as the module says."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        self._count(kind)
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            request = self.client.param_serialize(
                method,
                path,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.client.call_api(*request, _request_timeout=timeout)
        except (urllib3.exceptions.HTTPError, ApiException, OSError) as exc:
            why = getattr(exc, "reason", None) or exc  # urllib3's retries wrap the cause
            raise InfraError(
                f"the Kubernetes API at {self.where} is unreachable: {why}. Is the cluster up, "
                "and the kubeconfig's context the right one?"
            ) from exc
        if response.status >= 400:
            data = response.response.data
            reason, message = _status_message(data)
            if response.status >= 500 or response.status == 429:
                raise InfraError(
                    f"the Kubernetes API at {self.where} is unavailable: {response.status} "
                    f"{reason}: {message}"
                )
            raise ApiError(response.status, reason, message)
        return response.response

    def _json(self, kind: str, method: str, path: str, **options: Any) -> dict[str, Any]:
        import urllib3

        response = self._send(kind, method, path, **options)
        try:
            data: dict[str, Any] = json.loads(response.data)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise InfraError(f"the Kubernetes API at {self.where} broke off: {exc}") from exc
        return data

    def _ns(self, group: str, resource: str, name: str = "") -> str:
        base = "/api/v1" if group == "" else f"/apis/{group}"
        path = f"{base}/namespaces/{self.namespace}/{resource}"
        return f"{path}/{name}" if name else path

    # --- the calls the runtime makes -------------------------------------------------------------

    def check_access(self) -> None:
        """One cheap list, to fail at start with the API's words when credentials or the Role
        do not let this executor work in the namespace."""
        try:
            self._json("list jobs", "GET", self._ns("batch/v1", "jobs"), query=[("limit", "1")])
        except ApiError as exc:
            raise UsageError(
                f"The Kubernetes API at {self.where} refuses this executor in namespace "
                f"{self.namespace!r}: {exc.status} {exc.reason}: {exc.api_message}. Give its "
                "ServiceAccount the Role in deploy/k8s/executor.yaml, or name another namespace "
                "(-s namespace=NAME)."
            ) from None

    def list_jobs(self, selector: str) -> list[dict[str, Any]]:
        query = [("labelSelector", selector)]
        items: list[dict[str, Any]] = self._json(
            "list jobs", "GET", self._ns("batch/v1", "jobs"), query=query
        )["items"]
        return items

    def list_pods(self, selector: str) -> list[dict[str, Any]]:
        query = [("labelSelector", selector)]
        items: list[dict[str, Any]] = self._json(
            "list pods", "GET", self._ns("", "pods"), query=query
        )["items"]
        return items

    def watch_pods(self, selector: str, seconds: int = WATCH_SECONDS) -> Iterator[bytes]:
        """The pods' changes as they happen (raw event data), for ``seconds``; the runtime only
        uses them as a signal to poll now. InfraError when the stream breaks off."""
        import urllib3

        query = [("labelSelector", selector), ("watch", "true"), ("timeoutSeconds", str(seconds))]
        response = self._send(
            "watch pods", "GET", self._ns("", "pods"), query=query,
            timeout=(TIMEOUT[0], seconds + 30.0),
        )  # fmt: skip
        try:
            yield from response.stream(amt=None, decode_content=True)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise InfraError(f"the watch of pods broke off: {exc}") from exc
        finally:
            response.close()

    def get_job(self, name: str) -> dict[str, Any] | None:
        try:
            return self._json("get job", "GET", self._ns("batch/v1", "jobs", name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def get_pod(self, name: str) -> dict[str, Any] | None:
        try:
            return self._json("get pod", "GET", self._ns("", "pods", name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._json("create job", "POST", self._ns("batch/v1", "jobs"), body=body)

    def create_service(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._json("create service", "POST", self._ns("", "services"), body=body)

    def patch_job(self, name: str, patch: dict[str, Any]) -> None:
        self._json(
            "patch job",
            "PATCH",
            self._ns("batch/v1", "jobs", name),
            body=patch,
            content_type="application/merge-patch+json",
        )

    def delete_job(self, name: str, propagation: str = "Background") -> bool:
        """Delete the Job and, by ``propagation``, its pods; False if it was gone already."""
        try:
            self._json(
                "delete job",
                "DELETE",
                self._ns("batch/v1", "jobs", name),
                query=[("propagationPolicy", propagation)],
            )
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def delete_pod(self, name: str, grace: int) -> None:
        try:
            self._json(
                "delete pod",
                "DELETE",
                self._ns("", "pods", name),
                query=[("gracePeriodSeconds", str(grace))],
            )
        except ApiError as exc:
            if exc.status != 404:
                raise

    def log(self, pod: str, container: str, *, follow: bool, since: str = "") -> Iterator[bytes]:
        """The container's log with timestamps, as it arrives; ``since`` an RFC 3339 time (whole
        seconds: the API's precision; inclusive). Ends when the API ends the stream, raises
        InfraError when it breaks off."""
        import urllib3

        query = [("container", container), ("timestamps", "true")]
        if follow:
            query.append(("follow", "true"))
        if since:
            query.append(("sinceTime", since))
        kind = "log stream" if follow else "log read"
        response = self._send(
            kind, "GET", self._ns("", "pods", pod) + "/log", query=query,
            timeout=(TIMEOUT[0], STREAM_IDLE),
        )  # fmt: skip
        try:
            yield from response.stream(amt=None, decode_content=True)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise InfraError(f"the log stream of pod {pod} broke off: {exc}") from exc
        finally:
            response.close()  # a stream left half-read must not go back into the pool


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _config_module() -> Any:
    """kubernetes.config, whose loaders carry no type hints."""
    from kubernetes import config

    return config


def _context_namespace(path: str | None, context: str | None) -> str:
    contexts, active = _config_module().list_kube_config_contexts(config_file=path)
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else active
    return str(((chosen or {}).get("context") or {}).get("namespace") or "")
