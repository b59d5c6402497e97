"""A job's image as a SIF file in the image directory, converted once and shared.

What ``environment.docker`` may name:

- a SIF file (``/shared/images/tool.sif``): used as it is;
- ``docker-archive:/path/image.tar``: a ``docker save`` tarball, converted;
- ``docker-daemon:name:tag``: an image of the local Docker engine, converted;
- ``docker://ref``, ``oras://ref``: pulled from a registry the site reaches;
- a plain name (``python:3.12``): per the ``image_source`` setting, from the local engine when
  it has the image (``auto``), else from a registry.

The SIF's file name carries the image's digest where one is known (the engine's image id, the
archive's config digest, a ``@sha256:`` reference), so a changed image under the same tag is a
new file and a queued job never finds its image replaced under it; other references are keyed
by name, and ``rebuildImage`` converts them again. One conversion per file: a lock file
(``flock``) serialises converters on this host, the SIF is written to a temporary name and
renamed into place, so a job sees a whole SIF or none; a second job waiting for the same image
takes the finished file. Conversions run on the executor's node, never on compute nodes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import subprocess
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from pollinator_core.api import JobFailed, scrubbed

log = logging.getLogger("pollinator.slurm")

#: seconds one conversion may take
CONVERT_TIMEOUT = 3600.0
#: lines of the converter's output kept for an error message
ERROR_TAIL = 12
_SCHEMES = ("docker://", "oras://", "docker-daemon:", "docker-archive:")
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")


@attrs.frozen
class Source:
    """Where a SIF comes from: ``ref`` for the converter, ``key`` that names the file."""

    ref: str
    name: str
    key: str
    digest_known: bool


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.")[-80:] or "image"


def _name_key(ref: str) -> str:
    return "name-" + hashlib.sha256(ref.encode()).hexdigest()[:12]


def sif_name(source: Source) -> str:
    return f"{_slug(source.name)}-{source.key}.sif"


def planned_source(image: str, image_source: str) -> Source:
    """The source of ``image`` without asking anything (for a dry run): plain names as the
    setting says, keyed by name."""
    ref = _explicit(image) or (
        f"docker-daemon:{image}" if image_source == "docker-daemon" else f"docker://{image}"
    )
    return _by_reference(ref)


def _explicit(image: str) -> str | None:
    return image if image.startswith(_SCHEMES) else None


def _by_reference(ref: str) -> Source:
    name = ref.split(":", 1)[1].lstrip("/") if ":" in ref else ref
    digest = _DIGEST.search(ref)
    if digest:
        return Source(ref, name.split("@")[0], digest.group(1)[:16], True)
    return Source(ref, name, _name_key(ref), False)


class ImageCache:
    """SIFs in ``directory``, made with ``command`` (apptainer or singularity)."""

    def __init__(self, directory: Path, command: str, image_source: str) -> None:
        self.directory = directory
        self.command = command
        self.image_source = image_source
        #: conversions this cache ran (benchmarks and tests count them)
        self.conversions = 0
        self._count = threading.Lock()

    def sif(self, image: str, *, rebuild: bool, say: Callable[[str], None]) -> Path:
        """The SIF for ``image``, converted first if need be; ``say`` gets progress lines.
        JobFailed when it cannot be had, with the converter's own words."""
        if not image:
            raise JobFailed("the job names no image (kwargs 'docker-image' is empty)")
        if image.endswith(".sif") and not image.startswith(_SCHEMES):
            path = Path(image).expanduser()
            if not path.is_absolute() or not path.is_file():
                raise JobFailed(
                    f"image {image!r} names a SIF file, but there is no such file (give its "
                    "absolute path, on a filesystem the compute nodes share)"
                )
            return path
        source = self._resolve(image)
        target = self.directory / sif_name(source)
        if target.is_file() and not rebuild:
            return target
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JobFailed(f"the image directory {self.directory} cannot be made: {exc}") from None
        with self._locked(target):
            if target.is_file() and not rebuild:
                say(f"image {image}: converted by another job meanwhile: {target.name}")
                return target
            self._convert(image, source, target, say)
        return target

    def _resolve(self, image: str) -> Source:
        explicit = _explicit(image)
        if explicit is None and self.image_source != "docker":
            engine_id = _engine_image_id(image)
            if engine_id is not None:
                return Source(f"docker-daemon:{image}", image, engine_id[:16], True)
            if self.image_source == "docker-daemon":
                raise JobFailed(
                    f"image {image!r} is not on the local Docker engine (slurm.image_source is "
                    "docker-daemon); load or build it there, or name a SIF file"
                )
        ref = explicit or f"docker://{image}"
        if ref.startswith("docker-daemon:"):
            engine_id = _engine_image_id(ref.removeprefix("docker-daemon:"))
            if engine_id is not None:
                return Source(ref, ref.removeprefix("docker-daemon:"), engine_id[:16], True)
        if ref.startswith("docker-archive:"):
            path = Path(ref.removeprefix("docker-archive:")).expanduser()
            digest = _archive_digest(path)
            return Source(f"docker-archive:{path}", path.stem, digest[:16], True)
        return _by_reference(ref)

    @contextlib.contextmanager
    def _locked(self, target: Path) -> Iterator[None]:
        lock = target.with_name(f".{target.name}.lock")
        with open(lock, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("waiting for the conversion of %s by another job", target.name)
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _convert(
        self, image: str, source: Source, target: Path, say: Callable[[str], None]
    ) -> None:
        temporary = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        argv = [self.command, "build", "--force", str(temporary), source.ref]
        say(f"image {image}: converting {source.ref} to {target.name}")
        with self._count:
            self.conversions += 1
        started = time.monotonic()
        tail: list[str] = []
        try:
            with subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                env=scrubbed(os.environ),
            ) as proc:
                timer = threading.Timer(CONVERT_TIMEOUT, proc.kill)
                timer.start()
                try:
                    assert proc.stdout is not None
                    for raw in proc.stdout:
                        line = raw.rstrip()
                        if line:
                            tail = [*tail[-(ERROR_TAIL - 1) :], line]
                            say(f"image {image}: {line}")
                    code = proc.wait()
                finally:
                    timer.cancel()
        except FileNotFoundError:
            raise JobFailed(
                f"{self.command} is not on this executor's PATH: it converts images to SIFs "
                "(install Apptainer here, or name a SIF file as the image)"
            ) from None
        if code != 0 or not temporary.is_file():
            temporary.unlink(missing_ok=True)
            why = "\n".join(tail) or f"exit code {code}"
            raise JobFailed(f"converting image {image!r} ({source.ref}) to a SIF failed:\n{why}")
        temporary.chmod(0o644)
        os.replace(temporary, target)
        say(f"image {image}: ready in {time.monotonic() - started:.1f} s")


def _engine_image_id(name: str) -> str | None:
    """The local Docker engine's id (hex) of image ``name``; None without an engine or image."""
    try:
        import docker
        import docker.errors
    except ImportError:
        return None
    try:
        client = docker.from_env(timeout=10)
    except docker.errors.DockerException:
        return None
    try:
        found = _DIGEST.search(str(client.images.get(name).id))
        return found.group(1) if found else None
    except docker.errors.DockerException:
        return None
    finally:
        client.close()


def _archive_digest(path: Path) -> str:
    """The image's config digest from a ``docker save`` tarball's manifest (hex)."""
    try:
        with tarfile.open(path) as archive:
            member = archive.extractfile("manifest.json")
            manifest: Any = json.loads(member.read()) if member else None
    except (OSError, tarfile.TarError, KeyError, ValueError) as exc:
        raise JobFailed(f"image archive {str(path)!r} cannot be read: {exc}") from None
    try:
        config = str(manifest[0]["Config"])
    except (TypeError, KeyError, IndexError):
        raise JobFailed(f"image archive {str(path)!r} has no image manifest") from None
    found = re.search(r"([0-9a-f]{64})", config)
    if not found:
        raise JobFailed(f"image archive {str(path)!r}: no digest in its manifest ({config})")
    return found.group(1)
