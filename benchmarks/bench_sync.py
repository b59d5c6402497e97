"""CFS sync against rclone, side by side, on a generated tree of 10,000 files in 1,000 directories.

    python benchmarks/bench_sync.py [--files 10000] [--dirs 1000] [--cold-runs 3] [--runs 5]
                                    [--json FILE]

Needs the test S3 server (``bash tests/infra/s3_up.sh``; its env file, or AWS_S3_* in the
environment) and rclone (Debian package). The simulator runs as its own process, as a user
would run it. Every push is a fresh process (interpreter start and imports included, as for
rclone), timed from the outside:

- ours: src mirrored to the simulator's file records + content-addressed objects on S3;
- rclone: ``rclone sync --fast-list --checksum --transfers 16 --checkers 16`` to the same server,
  configured through RCLONE_CONFIG_* variables (no config file, no secret on the command line).

Cases: cold push (a new bucket each run), unchanged push, one-file-changed push; and our
unchanged push with a local-directory store. The tools alternate run by run; medians of the
runs, with min and max. Our pushes run with bytecode cached, as an installed package has it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim_process import simulator_process

Sample = tuple[float, dict[str, int]]  # seconds, what moved
RCLONE_FLAGS = ["--fast-list", "--checksum", "--transfers", "16", "--checkers", "16"]
S3_ENV_FILE = Path(os.environ.get("POLLINATOR_TEST_S3_ENV", "/tmp/pollinator-ci/s3.env"))

# One push of our sync in a fresh interpreter; prints what moved as JSON.
RUNNER = """
import json, sys
from pathlib import Path
from pollinator_core.colonies.client import ColoniesClient
from pollinator_core.colonies.config import ClientConfig
from pollinator_core.plugins.manager import open_storage
from pollinator_core.sync import Mode, sync_tree
tree, label, index, url = sys.argv[1:5]
config = ClientConfig.from_env()
report = sync_tree(ColoniesClient(config), config.colony_name, Path(tree), label,
                   open_storage(url or None), Mode.MIRROR, index_path=Path(index))
done = report.done
print(json.dumps({"files_up": len(done.uploaded) if done else 0,
                  "bytes_up": done.bytes_up if done else 0}))
"""


def generate(root: Path, files: int, dirs: int, seed: int = 7) -> int:
    """``files`` files of 0-14 kB (7 kB mean) spread over ``dirs`` leaf directories."""
    rng = random.Random(seed)
    total = 0
    for i in range(files):
        d = i % dirs
        path = root / f"d{d // 10:03d}" / f"s{d % 10}" / f"f{i:05d}.dat"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = rng.randbytes(rng.randrange(14_000))
        path.write_bytes(data)
        total += len(data)
    return total


def s3_env() -> dict[str, str]:
    if os.environ.get("AWS_S3_ENDPOINT"):
        return {k: v for k, v in os.environ.items() if k.startswith("AWS_S3_")}
    if not S3_ENV_FILE.is_file():
        sys.exit(f"no S3 server: run `bash tests/infra/s3_up.sh` (no {S3_ENV_FILE})")
    env = {}
    for line in S3_ENV_FILE.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def boto(s3: dict[str, str]) -> Any:
    import boto3  # type: ignore[import-untyped]

    return boto3.client(
        "s3",
        endpoint_url=f"http://{s3['AWS_S3_ENDPOINT']}",
        aws_access_key_id=s3["AWS_S3_ACCESSKEY"],
        aws_secret_access_key=s3["AWS_S3_SECRETKEY"],
        region_name=s3.get("AWS_S3_REGION") or "us-east-1",
    )


def drop_bucket(s3: dict[str, str], bucket: str) -> None:
    client = boto(s3)
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        client.delete_bucket(Bucket=bucket)
    except client.exceptions.NoSuchBucket:
        pass


@dataclass
class Target:
    """Where one tool pushes: a bucket (and, for ours, a label and an index)."""

    bucket: str
    label: str
    index: Path

    @classmethod
    def fresh(cls, work: Path) -> Target:
        tag = uuid.uuid4().hex[:10]
        return cls(f"bench-sync-{tag}", f"/pollinator/bench-{tag}/src", work / f"index-{tag}")


class Pushers:
    def __init__(self, tree: Path, work: Path, colonies: dict[str, str], s3: dict[str, str]):
        self.tree, self.work = tree, work
        # Bytecode cached (outside the repository), as an installed package has it.
        python = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        python["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        self.ours_env = {**python, **colonies, **s3}
        modules = (
            "pollinator_core.sync",
            "pollinator_core.builtin.storage",
            "pollinator_core.storage.s3",
        )
        warm = "import " + ", ".join(modules)
        subprocess.run([sys.executable, "-c", warm], env=self.ours_env, check=True)
        # rclone 1.60 refuses a CA bundle on a plain-http endpoint; the endpoint here is http.
        rclone_env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        self.rclone_env = {
            **rclone_env,
            "RCLONE_CONFIG_BENCH_TYPE": "s3",
            "RCLONE_CONFIG_BENCH_PROVIDER": "Ceph",
            "RCLONE_CONFIG_BENCH_ENDPOINT": f"http://{s3['AWS_S3_ENDPOINT']}",
            "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": s3["AWS_S3_ACCESSKEY"],
            "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": s3["AWS_S3_SECRETKEY"],
            "RCLONE_CONFIG_BENCH_REGION": s3.get("AWS_S3_REGION") or "us-east-1",
        }

    def ours(self, target: Target, url: str = "") -> Sample:
        env = {**self.ours_env, "AWS_S3_BUCKET": target.bucket}
        cmd = [sys.executable, "-c", RUNNER, str(self.tree), target.label, str(target.index), url]
        started = time.perf_counter()
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
        return time.perf_counter() - started, json.loads(out)

    def rclone(self, target: Target) -> Sample:
        cmd = ["rclone", "sync", "-q", *RCLONE_FLAGS, str(self.tree), f"bench:{target.bucket}/src"]
        started = time.perf_counter()
        subprocess.run(cmd, env=self.rclone_env, check=True)
        return time.perf_counter() - started, {}


def touch_one(tree: Path, n: int) -> None:
    """Change one file's content, keeping its size."""
    path = min(tree.rglob("*.dat"))
    data = bytearray(path.read_bytes() or b"\0")
    data[0] = n % 256
    path.write_bytes(bytes(data))


def summary(samples: list[Sample]) -> dict[str, Any]:
    times = [t for t, _ in samples]
    return {
        "median": statistics.median(times),
        "min": min(times),
        "max": max(times),
        "runs": len(times),
        "moved": samples[-1][1],
    }


def run(args: argparse.Namespace, s3: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Each case alternates the tools run by run, so load from elsewhere hits both alike."""
    samples: dict[str, list[Sample]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp,
        simulator_process() as (colonies, _),
    ):
        work = Path(tmp)
        tree = work / "src"
        nbytes = generate(tree, args.files, args.dirs)
        print(f"tree: {args.files} files in {args.dirs} directories, {nbytes / 1e6:.1f} MB")
        p = Pushers(tree, work, colonies, s3)
        targets: dict[str, Target] = {}
        tools: dict[str, Callable[[Target], Sample]] = {"ours": p.ours, "rclone": p.rclone}

        def case(name: str, tool: str, sample: Sample) -> None:
            samples.setdefault(f"{name}, {tool}", []).append(sample)

        try:
            for _ in range(args.cold_runs):
                for tool, push in tools.items():
                    if tool in targets:
                        drop_bucket(s3, targets[tool].bucket)
                    targets[tool] = Target.fresh(work)
                    case("cold push", tool, push(targets[tool]))
            for _ in range(args.runs):
                for tool, push in tools.items():
                    case("unchanged push", tool, push(targets[tool]))
            for i in range(args.runs):
                touch_one(tree, i)
                for tool, push in tools.items():
                    case("one file changed", tool, push(targets[tool]))
            local, store = Target.fresh(work), f"file://{work / 'store'}"
            p.ours(local, store)
            for _ in range(args.runs):
                case("unchanged push", "ours, local-directory store", p.ours(local, store))
        finally:
            for target in targets.values():
                drop_bucket(s3, target.bucket)
    return {name: summary(runs) for name, runs in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--dirs", type=int, default=1_000)
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if shutil.which("rclone") is None:
        sys.exit("rclone is not installed (apt-get install rclone)")
    results = run(args, s3_env())
    width = max(map(len, results))
    print(f"{'case':<{width}}  median    min      max   moved")
    for name, r in sorted(results.items()):
        moved = ", ".join(f"{k}={v}" for k, v in r["moved"].items())
        print(f"{name:<{width}}  {r['median']:6.2f} s {r['min']:6.2f} s {r['max']:6.2f} s  {moved}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
