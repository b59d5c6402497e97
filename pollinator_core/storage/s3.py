"""Single S3 requests signed with AWS Signature V4, on one keep-alive connection per thread
(keepalive.py).

A sync of many small files is thousands of tiny requests (PUT, HEAD, GET, list pages). Through
a botocore client each costs ~1 ms of CPU (hooks, endpoint rules, user-agent assembly); signed
with botocore's own SigV4 signer (~0.03 ms) and sent over plain http.client it costs a fraction
of that, which on a small machine shared with the S3 server decides whether a cold sync keeps
up with rclone. Streams, multipart uploads and parallel ranged downloads stay with s3fs.
Path-style addressing (``/bucket/key``), as S3-compatible servers expect. Every request here is
idempotent (content-addressed PUTs included), so transient failures are retried.
"""

from __future__ import annotations

import hashlib
import http.client
import ssl
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from pollinator_core.colonies.keepalive import Origin

_EMPTY_SHA = hashlib.sha256(b"").hexdigest()
_RETRIES = 4
_RETRY_STATUS = frozenset((500, 502, 503, 504))
_ERRORS: dict[str, type[OSError]] = {
    "NoSuchBucket": FileNotFoundError,
    "NoSuchKey": FileNotFoundError,
    "AccessDenied": PermissionError,
    "InvalidAccessKeyId": PermissionError,
    "SignatureDoesNotMatch": PermissionError,
}


def _quote(text: str, safe: str = "-_.~") -> str:
    return quote(text, safe=safe)


class SignedS3:
    def __init__(
        self,
        endpoint_url: str,
        access_key: str,
        secret_key: str,
        region: str,
        *,
        verify: bool = True,
        timeout: float = 60.0,
    ) -> None:
        parts = urlsplit(endpoint_url)
        self._base = f"{parts.scheme}://{parts.netloc}"
        tls = parts.scheme == "https"
        context = ssl.create_default_context() if tls else None
        if context is not None and not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        default_port = 443 if tls else 80
        self._origin = Origin(
            parts.hostname or "", parts.port or default_port, context=context, timeout=timeout
        )
        # The Host header as http.client would send it, given to the signer up front so that
        # it does not parse the URL again for every request.
        self._host = parts.netloc.rpartition(":")[0] if parts.port == default_port else parts.netloc
        self._region = region
        self._signer = _KnownPayloadSigner(Credentials(access_key, secret_key), "s3", region)

    def __repr__(self) -> str:
        return f"SignedS3({self._base}, region={self._region!r})"

    # --- requests ------------------------------------------------------------------------

    def head(self, bucket: str, key: str = "") -> bool:
        """Whether the bucket (or the object) exists."""
        status, _ = self._call("HEAD", bucket, key, missing_ok=True)
        return status != 404

    def put(self, bucket: str, key: str, data: bytes, sha256: str | None = None) -> None:
        self._call("PUT", bucket, key, body=data, payload_sha=sha256)

    def get(self, bucket: str, key: str) -> bytes:
        return self._call("GET", bucket, key)[1]

    def create_bucket(self, bucket: str) -> None:
        body = b""
        if self._region and self._region != "us-east-1":
            body = (
                "<CreateBucketConfiguration><LocationConstraint>"
                f"{self._region}</LocationConstraint></CreateBucketConfiguration>"
            ).encode()
        self._call("PUT", bucket, body=body)

    def list_page(
        self, bucket: str, prefix: str, *, start_after: str = "", token: str = ""
    ) -> tuple[list[str], str]:
        """One ListObjectsV2 page: (keys, continuation token or "" at the end)."""
        query = {"list-type": "2", "prefix": prefix}
        if token:
            query["continuation-token"] = token
        elif start_after:
            query["start-after"] = start_after
        fields: dict[str, str] = {}
        keys = []
        for el in ET.fromstring(self._call("GET", bucket, query=query)[1]).iter():
            tag = el.tag.rpartition("}")[2]  # with or without the S3 namespace
            if tag == "Key":
                keys.append(el.text or "")
            else:
                fields[tag] = el.text or ""
        truncated = fields.get("IsTruncated", "").lower() == "true"
        return keys, fields.get("NextContinuationToken", "") if truncated else ""

    # --- signing -------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        bucket: str,
        key: str = "",
        *,
        query: Mapping[str, str] | None = None,
        body: bytes = b"",
        payload_sha: str | None = None,
        missing_ok: bool = False,
    ) -> tuple[int, bytes]:
        path = "/" + _quote(bucket) + ("/" + _quote(key, "-_.~/") if key else "")
        canonical_query = "&".join(
            f"{_quote(k)}={_quote(v)}" for k, v in sorted((query or {}).items())
        )
        target = path + (f"?{canonical_query}" if canonical_query else "")
        headers = self._sign(method, target, payload_sha or _sha(body))
        status, data = self._send(method, target, body, headers)
        if status < 300 or (missing_ok and status == 404):
            return status, data
        raise _error(method, bucket, key, status, data)

    def _send(
        self, method: str, target: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        for attempt in range(_RETRIES + 1):
            try:
                status, data = self._origin.request(method, target, body or None, headers)
            except (http.client.HTTPException, OSError) as exc:
                if attempt == _RETRIES:
                    raise ConnectionError(f"S3 endpoint {self._base} unreachable: {exc}") from exc
            else:
                if status not in _RETRY_STATUS or attempt == _RETRIES:
                    return status, data
            time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def _sign(self, method: str, target: str, payload_sha: str) -> dict[str, str]:
        request = AWSRequest(method=method, url=self._base + target, headers={"Host": self._host})
        request.context["payload_sha"] = payload_sha
        self._signer.add_auth(request)
        return dict(request.headers.items())


class _KnownPayloadSigner(S3SigV4Auth):
    """botocore's S3 SigV4 signer, told the payload's sha256 instead of hashing it again
    (content-addressed uploads already know it)."""

    def payload(self, request: AWSRequest) -> str:
        known: str | None = request.context.get("payload_sha")
        return known if known is not None else str(super().payload(request))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest() if data else _EMPTY_SHA


def _error(method: str, bucket: str, key: str, status: int, body: bytes) -> OSError:
    code = message = ""
    try:
        root = ET.fromstring(body)
        code, message = root.findtext("Code") or "", root.findtext("Message") or ""
    except ET.ParseError:
        pass
    what = f"{bucket}/{key}" if key else bucket
    kind = _ERRORS.get(code) or {403: PermissionError, 404: FileNotFoundError}.get(status, OSError)
    return kind(f"S3 {method} {what}: HTTP {status} {code or ''} {message}".rstrip())
