"""The built-in storage plugin: S3 (the official AWS_S3_* variables), local directories, memory.

Registered in the ``pollinator`` entry-point group like any third-party plugin. s3fs is
imported only when an S3 location first transfers bytes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pollinator_core.errors import InfraError, UsageError
from pollinator_core.hookspecs import hookimpl
from pollinator_core.models import S3Object
from pollinator_core.storage import (
    SMALL_OBJECT,
    LocalStorageLocation,
    StorageLocation,
)

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

_TRUE = {"true", "1", "yes", "on"}
# Parts of a multipart upload; s3fs switches to multipart at twice this size.
MULTIPART_CHUNK = SMALL_OBJECT // 2
# Connections per S3 client: at least the sync's transfer concurrency.
MAX_CONNECTIONS = 64
# Existence checks: below this many keys HEAD each; above, list (a page ~ this many HEADs).
LIST_MIN_KEYS = 256
HEADS_PER_PAGE = 32


@hookimpl
def pollinator_storage(url: str) -> StorageLocation | None:
    scheme = urlsplit(url).scheme if "://" in url else ""
    if scheme == "s3":
        return s3_location(url)
    if scheme == "memory":
        return memory_location(url)
    if scheme in ("", "file"):
        return local_location(url)
    return None


def memory_location(url: str) -> StorageLocation:
    from fsspec.implementations.memory import MemoryFileSystem

    root = "/" + url.removeprefix("memory://").strip("/")
    return StorageLocation(MemoryFileSystem(), root, protocol="memory")


def local_location(url: str) -> StorageLocation:
    from fsspec.implementations.local import LocalFileSystem

    path = url.removeprefix("file://") if url.startswith("file://") else url
    root = os.path.abspath(os.path.expanduser(path))
    return LocalStorageLocation(LocalFileSystem(), root, protocol="file")


class S3Settings:
    """The official S3 variables, parsed once (AWS_S3_ENDPOINT is ``host:port`` or a URL)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        raw = env.get("AWS_S3_ENDPOINT", "").strip()
        self.tls = env.get("AWS_S3_TLS", "").strip().lower() in _TRUE
        if raw.startswith(("http://", "https://")):
            self.tls = raw.startswith("https://")
            raw = raw.split("://", 1)[1]
        raw = raw.rstrip("/")
        self.region = env.get("AWS_S3_REGION", "").strip()
        if raw:
            host, _, port = raw.rpartition(":") if ":" in raw else (raw, "", "")
            try:
                self.port = int(port) if port else (443 if self.tls else 80)
            except ValueError:
                raise UsageError(
                    f"AWS_S3_ENDPOINT={raw!r}: expected host:port (e.g. localhost:9000)"
                ) from None
            self.host = host
            self.endpoint_url: str | None = f"{'https' if self.tls else 'http'}://{raw}"
        else:  # AWS itself
            self.tls, self.port = True, 443
            self.host = f"s3.{self.region or 'us-east-1'}.amazonaws.com"
            self.endpoint_url = None
        self.access_key = env.get("AWS_S3_ACCESSKEY", "") or None
        self.secret_key = env.get("AWS_S3_SECRETKEY", "") or None
        self.skip_verify = env.get("AWS_S3_SKIPVERIFY", "").strip().lower() in _TRUE
        self.bucket = env.get("AWS_S3_BUCKET", "").strip()


def s3_location(url: str, env: Mapping[str, str] | None = None) -> StorageLocation:
    settings = S3Settings(os.environ if env is None else env)
    rest = url.removeprefix("s3://").strip("/")
    bucket, _, prefix = rest.partition("/")
    bucket = bucket or settings.bucket
    if not bucket:
        raise UsageError("s3:// storage needs a bucket: s3://BUCKET or AWS_S3_BUCKET")
    record = S3Object(
        server=settings.host,
        port=settings.port,
        tls=settings.tls,
        region=settings.region,
        bucket=bucket,
    )
    return S3StorageLocation(
        factory=lambda: _s3fs(settings),
        root=bucket,
        record=record,
        key_prefix=f"{prefix}/" if prefix else "",
        protocol="s3",
    )


def _s3fs(settings: S3Settings) -> AbstractFileSystem:
    import s3fs

    client_kwargs: dict[str, Any] = {"region_name": settings.region or "us-east-1"}
    if settings.endpoint_url:
        client_kwargs["endpoint_url"] = settings.endpoint_url
    if settings.skip_verify:
        client_kwargs["verify"] = False
    fs: AbstractFileSystem = s3fs.S3FileSystem(
        key=settings.access_key,
        secret=settings.secret_key,
        client_kwargs=client_kwargs,
        config_kwargs={
            "max_pool_connections": MAX_CONNECTIONS,
            # botocore >= 1.36 adds CRC checksums to every request by default, which many
            # S3-compatible servers reject and which costs CPU: objects are verified by
            # SHA-256 on download instead.
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        },
        skip_instance_cache=True,
        use_listings_cache=False,
    )
    return fs


class S3StorageLocation(StorageLocation):
    """S3 through s3fs: HEAD (not s3fs's HEAD-then-LIST) to test for an object, the bucket
    created on first write, multipart above :data:`MULTIPART_CHUNK` * 2."""

    def _prepare(self) -> None:
        try:
            if not self._head("head_bucket", Bucket=self.root):
                self.fs.call_s3("create_bucket", Bucket=self.root)
        except PermissionError as exc:
            raise InfraError(f"S3 refused access to bucket {self.root!r}: {exc}") from exc
        except OSError as exc:
            raise InfraError(f"S3 storage unreachable ({self.record.server}): {exc}") from exc

    def has_object(self, object_key: str) -> bool:
        return self._head("head_object", Bucket=self.root, Key=object_key)

    def _head(self, method: str, **kwargs: str) -> bool:
        try:
            self.fs.call_s3(method, **kwargs)
        except FileNotFoundError:
            return False
        return True

    def existing(self, object_keys: Collection[str]) -> set[str]:
        from fsspec.asyn import sync

        keys = set(object_keys)
        if not keys:
            return set()
        found: set[str] = sync(self.fs.loop, self._existing, keys)
        return found

    async def _existing(self, keys: set[str]) -> set[str]:
        # A HEAD per key is one request each (~1,000/s on Ceph); for many keys a listing is
        # far cheaper (1,000 keys a page), within a page budget worth the HEADs it replaces.
        # Content keys are uniform hex, so 16 ranges by first digit are listed in parallel.
        found: set[str] = set()
        undecided = keys
        if len(keys) >= LIST_MIN_KEYS:
            groups: dict[str, set[str]] = {}
            for key in keys:
                groups.setdefault(key[: len(self.key_prefix) + 1], set()).add(key)
            budget = max(1, len(keys) // (HEADS_PER_PAGE * len(groups)))
            results = await asyncio.gather(
                *(self._list_range(p, ks, budget) for p, ks in groups.items())
            )
            undecided = set()
            for listed, rest in results:
                found |= listed
                undecided |= rest
        limit = asyncio.Semaphore(MAX_CONNECTIONS // 2)

        async def head(key: str) -> str | None:
            async with limit:
                try:
                    await self.fs._call_s3("head_object", Bucket=self.root, Key=key)
                except FileNotFoundError:
                    return None
                return key

        found.update(k for k in await asyncio.gather(*map(head, undecided)) if k)
        return found

    async def _list_range(
        self, prefix: str, keys: set[str], pages: int
    ) -> tuple[set[str], set[str]]:
        """(keys seen listed, keys the page budget did not reach)."""
        listed: set[str] = set()
        first, top = min(keys), max(keys)
        kwargs: dict[str, Any] = {"Bucket": self.root, "Prefix": prefix, "StartAfter": first[:-1]}
        last = ""
        for _ in range(pages):
            page = await self.fs._call_s3("list_objects_v2", **kwargs)
            contents = page.get("Contents") or []
            listed.update(o["Key"] for o in contents)
            if contents:
                last = contents[-1]["Key"]
            if not page.get("IsTruncated") or last >= top:
                return keys & listed, set()
            kwargs = {
                "Bucket": self.root,
                "Prefix": prefix,
                "ContinuationToken": page["NextContinuationToken"],
            }
        return keys & listed, {k for k in keys if k > last}

    def put_file(self, object_key: str, local_path: str) -> None:
        self.fs.put_file(local_path, self.path(object_key), chunksize=MULTIPART_CHUNK)
