"""The built-in storage plugin: S3 (the official AWS_S3_* variables), local directories, memory.

Registered in the ``pollinator`` entry-point group like any third-party plugin. s3fs is
imported only when an S3 location first moves a large object.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from pollinator_core.api import (
    SMALL_OBJECT,
    InfraError,
    LocalStorageLocation,
    S3Object,
    StorageLocation,
    hookimpl,
)

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from pollinator_core.api import SignedS3

T = TypeVar("T")
R = TypeVar("R")

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


def _flag(env: Mapping[str, str], name: str) -> bool:
    """A true/false variable; a typo (``AWS_S3_TLS=ture``) is an error, not silently false."""
    value = env.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InfraError(f"{name} must be true or false, not {env[name]!r}.")


# Parts of a multipart upload; s3fs switches to multipart at twice this size.
MULTIPART_CHUNK = SMALL_OBJECT // 2
# Connections per S3 client: at least the sync's transfer concurrency.
MAX_CONNECTIONS = 64
# Existence checks: below this many keys HEAD each; above, list (a page ~ this many HEADs).
LIST_MIN_KEYS = 256
HEADS_PER_PAGE = 32


@hookimpl
def pollinator_storage_schemes() -> list[str]:
    return ["s3", "file", "memory", "a local path"]


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
        self.tls = _flag(env, "AWS_S3_TLS")
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
                raise InfraError(
                    f"AWS_S3_ENDPOINT={raw!r}: expected host:port (e.g. localhost:9000)."
                ) from None
            self.host = host
            self.endpoint_url: str | None = f"{'https' if self.tls else 'http'}://{raw}"
        else:  # AWS itself
            self.tls, self.port = True, 443
            self.host = f"s3.{self.region or 'us-east-1'}.amazonaws.com"
            self.endpoint_url = None
        self.access_key = env.get("AWS_S3_ACCESSKEY", "") or None
        self.secret_key = env.get("AWS_S3_SECRETKEY", "") or None
        self.skip_verify = _flag(env, "AWS_S3_SKIPVERIFY")
        self.bucket = env.get("AWS_S3_BUCKET", "").strip()


def s3_location(url: str, env: Mapping[str, str] | None = None) -> StorageLocation:
    settings = S3Settings(os.environ if env is None else env)
    rest = url.removeprefix("s3://").strip("/")
    bucket, _, prefix = rest.partition("/")
    bucket = bucket or settings.bucket
    if not bucket:
        raise InfraError("s3:// storage needs a bucket: s3://BUCKET or AWS_S3_BUCKET.")
    if not (settings.access_key and settings.secret_key):
        missing = [
            name
            for name, value in (
                ("AWS_S3_ACCESSKEY", settings.access_key),
                ("AWS_S3_SECRETKEY", settings.secret_key),
            )
            if not value
        ]
        raise InfraError(
            f"S3 storage needs AWS_S3_ACCESSKEY and AWS_S3_SECRETKEY (as the official tools "
            f"do); {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set."
        )
    record = S3Object(
        server=settings.host,
        port=settings.port,
        tls=settings.tls,
        region=settings.region,
        bucket=bucket,
    )
    return S3StorageLocation(settings, bucket, f"{prefix}/" if prefix else "", record)


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
    """S3: ``fs`` is s3fs, used for large objects (multipart uploads, parallel ranged
    downloads); the many small requests of a sync go through :class:`SignedS3`. Neither is
    created before the first transfer. The bucket is created on the first write."""

    def __init__(self, settings: S3Settings, bucket: str, key_prefix: str, record: S3Object):
        super().__init__(
            factory=lambda: _s3fs(settings),
            root=bucket,
            record=record,
            key_prefix=key_prefix,
            protocol="s3",
        )
        self._settings = settings
        self._signed: SignedS3 | None = None

    @property
    def requests(self) -> SignedS3:
        if self._signed is None:
            from pollinator_core.api import SignedS3

            s = self._settings
            assert s.access_key and s.secret_key
            self._signed = SignedS3(
                s.endpoint_url or f"https://{s.host}",
                s.access_key,
                s.secret_key,
                s.region or "us-east-1",
                verify=not s.skip_verify,
            )
        return self._signed

    def _prepare(self) -> None:
        try:
            if not self.requests.head(self.root):
                self.requests.create_bucket(self.root)
        except PermissionError as exc:
            raise InfraError(
                f"S3 refused access to bucket {self.root!r}: {exc}. Check AWS_S3_ACCESSKEY and "
                "AWS_S3_SECRETKEY (and that this key may use the bucket)."
            ) from exc
        except OSError as exc:
            hint = ""
            if "WRONG_VERSION_NUMBER" in str(exc) or "wrong version number" in str(exc):
                hint = " The endpoint does not speak TLS: set AWS_S3_TLS=false if it is plain HTTP."
            raise InfraError(f"S3 storage at {self.record.server} failed: {exc}.{hint}") from exc

    def has_object(self, object_key: str) -> bool:
        return self.requests.head(self.root, object_key)

    def put_bytes(self, object_key: str, data: bytes) -> None:
        self.requests.put(self.root, object_key, data)

    def get_bytes(self, object_key: str) -> bytes:
        return self.requests.get(self.root, object_key)

    def put_file(self, object_key: str, local_path: str) -> None:
        self.fs.put_file(local_path, self.path(object_key), chunksize=MULTIPART_CHUNK)

    def existing(self, object_keys: Collection[str]) -> set[str]:
        # A HEAD per key is one request each; for many keys a listing is far cheaper (1,000
        # keys a page), within a page budget worth the HEADs it replaces. Content keys are
        # uniform hex, so 16 ranges by first digit are listed in parallel.
        keys = set(object_keys)
        undecided = keys
        found: set[str] = set()
        if len(keys) >= LIST_MIN_KEYS:
            groups: dict[str, set[str]] = {}
            for key in keys:
                groups.setdefault(key[: len(self.key_prefix) + 1], set()).add(key)
            budget = max(1, len(keys) // (HEADS_PER_PAGE * len(groups)))
            undecided = set()
            for listed, rest in _pmap(
                lambda item: self._list_range(item[0], item[1], budget), groups.items()
            ):
                found |= listed
                undecided |= rest
        ordered = list(undecided)
        present = _pmap(self.has_object, ordered)
        found.update(k for k, there in zip(ordered, present, strict=True) if there)
        return found

    def _list_range(self, prefix: str, keys: set[str], pages: int) -> tuple[set[str], set[str]]:
        """(keys seen listed, keys beyond what the page budget reached)."""
        listed: set[str] = set()
        start, top, last, token = min(keys)[:-1], max(keys), "", ""
        for _ in range(pages):
            page, token = self.requests.list_page(self.root, prefix, start_after=start, token=token)
            listed.update(page)
            last = page[-1] if page else last
            if not token or last >= top:
                return keys & listed, set()
        return keys & listed, {k for k in keys if k > last}


def _pmap(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    todo = list(items)
    if len(todo) <= 1:
        return [fn(x) for x in todo]
    with ThreadPoolExecutor(max_workers=min(len(todo), MAX_CONNECTIONS // 2)) as pool:
        return list(pool.map(fn, todo))
