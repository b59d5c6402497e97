"""Where CFS file bytes live: an fsspec filesystem plus the non-secret half of a file record.

Objects are content-addressed: the key is the SHA-256 of the bytes, stored at ``<root>/<key>``
(``<root>/<prefix><key>`` for ``s3://bucket/prefix``). A file record's ``ref.s3object.object`` holds
that key relative to ``root`` (the bucket for S3), exactly where pycolonies and the official
executors look, so any of them can fetch what Pollinator wrote. Credentials stay in the
environment; a record never carries them.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING

from pollinator_core.colonies.models import Reference, S3Object
from pollinator_core.errors import InfraError, UsageError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

# Files up to this size travel as one request from memory; larger ones stream (S3: multipart).
SMALL_OBJECT = 16 * 2**20


class StorageLocation:
    """An fsspec filesystem ``fs`` and the ``root`` path under which objects live.

    ``fs`` may be given directly or as a zero-argument ``factory``: a sync that finds nothing
    to transfer then never imports or connects to the storage backend (s3fs costs ~0.3 s).
    ``record`` is the template of the ``s3object`` written into file records (server, port,
    tls, region, bucket; keys always empty). Subclasses adapt writes to a backend.
    """

    def __init__(
        self,
        fs: AbstractFileSystem | None = None,
        root: str = "",
        *,
        factory: Callable[[], AbstractFileSystem] | None = None,
        record: S3Object | None = None,
        key_prefix: str = "",
        protocol: str = "",
    ) -> None:
        if fs is None and factory is None:
            raise ValueError("StorageLocation needs fs or factory")
        self._fs = fs
        self._factory = factory
        self._fs_lock = threading.Lock()
        self._prepare_lock = threading.Lock()
        self._prepared = False
        self.root = root.rstrip("/")
        self.key_prefix = key_prefix
        self.record = record if record is not None else S3Object()
        self.protocol = protocol or (_protocol_of(fs) if fs is not None else "")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(protocol={self.protocol!r}, root={self.root!r})"

    @property
    def fs(self) -> AbstractFileSystem:
        if self._fs is None:
            with self._fs_lock:
                if self._fs is None:
                    assert self._factory is not None
                    self._fs = self._factory()
        return self._fs

    # --- keys and records ----------------------------------------------------------------

    def object_key(self, sha256: str) -> str:
        """The record's ``object`` for content with this digest."""
        return self.key_prefix + sha256

    def path(self, object_key: str) -> str:
        """The fsspec path of the object a record names (relative to our own root, as the
        official executors resolve it with their own bucket)."""
        check_object_key(object_key)
        return f"{self.root}/{object_key}" if self.root else object_key

    def reference(self, object_key: str) -> Reference:
        s3 = S3Object(
            server=self.record.server,
            port=self.record.port,
            tls=self.record.tls,
            region=self.record.region,
            bucket=self.record.bucket,
            object=object_key,
        )
        return Reference(protocol=self.protocol or "s3", s3object=s3)

    # --- operations the sync uses; subclasses specialise them ------------------------------

    def prepare_write(self) -> None:
        """Make the root writable (create the bucket or directory) once per location."""
        if self._prepared:
            return
        with self._prepare_lock:
            if not self._prepared:
                self._prepare()
                self._prepared = True

    def _prepare(self) -> None:
        if self.root:
            try:
                self.fs.makedirs(self.root, exist_ok=True)
            except OSError as exc:
                raise InfraError(
                    f"Cannot use {self.protocol or 'the'} storage at {self.root}: "
                    f"{exc.strerror or exc}. Check the storage URL (POLLINATOR_STORAGE, "
                    "--storage) and that it is writable."
                ) from exc

    def has_object(self, object_key: str) -> bool:
        return bool(self.fs.exists(self.path(object_key)))

    def existing(self, object_keys: Collection[str]) -> set[str]:
        """Which of these objects exist: one batch, so a backend may list instead of probing."""
        return {k for k in object_keys if self.has_object(k)}

    def put_bytes(self, object_key: str, data: bytes) -> None:
        self.fs.pipe_file(self.path(object_key), data)

    def put_file(self, object_key: str, local_path: str) -> None:
        self.fs.put_file(local_path, self.path(object_key))

    def get_bytes(self, object_key: str) -> bytes:
        return bytes(self.fs.cat_file(self.path(object_key)))

    def remove(self, object_key: str) -> None:
        self.fs.rm_file(self.path(object_key))

    def get_file(self, object_key: str, local_path: str) -> None:
        self.fs.get_file(self.path(object_key), local_path)


class LocalStorageLocation(StorageLocation):
    """A local directory store: writes land in a temporary name, then are renamed, so an
    interrupted write never leaves a truncated object under a content key."""

    def has_object(self, object_key: str) -> bool:
        return os.path.isfile(self.path(object_key))

    def put_bytes(self, object_key: str, data: bytes) -> None:
        target = self.path(object_key)
        tmp = f"{target}.tmp-{uuid.uuid4().hex[:12]}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def put_file(self, object_key: str, local_path: str) -> None:
        with open(local_path, "rb") as f:
            self.put_bytes(object_key, f.read())

    def get_bytes(self, object_key: str) -> bytes:
        with open(self.path(object_key), "rb") as f:
            return f.read()


def check_object_key(object_key: str) -> None:
    """Refuse an object key that could reach outside the store's root or bucket.

    Keys come from file records, which anyone in the colony can write: ``../`` (a path a local
    store would follow, a URL path that HTTP clients collapse into another bucket), an
    absolute path, a backslash or a NUL byte never name an object of this store.
    """
    parts = object_key.split("/")
    if (
        not object_key
        or object_key.startswith("/")
        or any(part in ("", ".", "..") for part in parts)
        or "\\" in object_key
        or "\x00" in object_key
    ):
        raise UsageError(
            f"refusing object key {object_key!r} of a remote file record: it could name a "
            "file outside the storage; the record was not written by Pollinator or an "
            "official Colonies tool."
        )


def _protocol_of(fs: AbstractFileSystem) -> str:
    proto = fs.protocol
    return str(proto[0] if isinstance(proto, tuple | list) else proto)


def storage_url_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """``$POLLINATOR_STORAGE`` when set, else ``s3://<AWS_S3_BUCKET>`` when the official S3
    variables are set, else None.

    The URL carries no secrets; the S3 plugin reads endpoint and credentials from the
    environment when it opens the location.
    """
    env = os.environ if env is None else env
    explicit = env.get("POLLINATOR_STORAGE", "").strip()
    if explicit:
        return explicit
    bucket = env.get("AWS_S3_BUCKET", "").strip()
    if not bucket:
        if env.get("AWS_S3_ENDPOINT"):
            raise InfraError(
                "AWS_S3_ENDPOINT is set but AWS_S3_BUCKET is not: set the bucket that holds "
                "the project's files (it is created if missing)."
            )
        return None
    return f"s3://{bucket}"
