"""Bad input, as a user meets it, through the real CLI in subprocesses.

The rule under test: bad input gets one clear ``Error:`` paragraph and a non-zero exit (2 usage
or project, 3 infrastructure, 1 job failed, 130 interrupted), never a traceback; nothing is
half-written and no result is clobbered; no private key or S3 secret shows in any output, log
or process list. Servers are real: the embedded Colonies simulator, the project's local agent,
S3 and a Docker engine where a test needs them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from infra.components import DockerEngine, S3Server
from pollinator_simulator.embedded import EmbeddedSimulator
from sim_fixtures import SimColony, sim_colony, simulator  # noqa: F401  (pytest fixtures)

from pollinator_core.colonies.client import ColoniesClient
from pollinator_core.colonies.config import ClientConfig
from pollinator_core.colonies.models import ExecutorState, File, ProcessState, Reference, S3Object

POLLINATOR = str(Path(sys.executable).with_name("pollinator"))
SUBMITTED_PREFIX = "submitted process "
#: run a command without the capabilities that let root read any file (so chmod 000 counts)
NO_DAC = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


# --- helpers -------------------------------------------------------------------------------------


def user_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any Colonies, S3, Docker or Pollinator settings."""
    prefixes = ("COLONIES_", "AWS_S3_", "POLLINATOR_", "DOCKER_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["POLLINATOR_LOCAL_IDLE"] = "60"  # a leaked local agent still goes away
    env.update(extra)
    return env


def cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [POLLINATOR, *args],
        cwd=cwd,
        env=env if env is not None else user_env(),
        text=True,
        errors="replace",
        capture_output=True,
        timeout=timeout,
    )


def assert_error(done: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    """One ``Error:`` line, last on stderr, holding ``fragments``; exit ``code``; no traceback."""
    everything = done.stdout + done.stderr
    assert done.returncode == code, everything
    assert "Traceback" not in everything, everything
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr
    assert done.stderr.rstrip("\n").endswith(errors[0]), done.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def new_project(root: Path, env: dict[str, str] | None = None) -> Path:
    done = cli("new", str(root), env=env)
    assert done.returncode == 0, done.stderr
    return root


def edit_yaml(root: Path, old: str, new: str) -> None:
    path = root / "project.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def project_name(root: Path) -> str:
    for line in (root / "project.yaml").read_text().splitlines():
        if line.startswith("projectname:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no projectname")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def can_drop_read_rights() -> bool:
    return os.geteuid() != 0 or shutil.which("setpriv") is not None


def as_plain_user(args: list[str]) -> list[str]:
    """``args`` run without root's right to read anything (root in CI containers)."""
    return [*NO_DAC, *args] if os.geteuid() == 0 else args


def add_record(
    client: ColoniesClient,
    colony: str,
    label: str,
    name: str,
    data: bytes,
    obj: str,
    *,
    sha: str = "",
) -> None:
    """A file record as any colony member can write one (no checks on name or object key)."""
    client.add_file(
        File(
            colonyname=colony,
            label=label,
            name=name,
            size=len(data),
            checksum=sha,
            checksumalg="SHA256",
            ref=Reference(protocol="s3", s3object=S3Object(object=obj)),
        )
    )


# --- project.yaml and the project directory ------------------------------------------------------


BROKEN_YAML = [
    ("syntax", b"projectname: [a\n", "line 2: invalid YAML"),
    ("unknown key", b"projectname: abc\nfoo: 1\n", "unknown key 'foo'"),
    ("wrong type", b'projectname: abc\npriority: "x"\n', "priority must be a whole number"),
    ("section type", b"projectname: abc\nconditions: 5\n", "conditions must be a mapping"),
    ("top level list", b"- a\n- b\n", "The top level must be a mapping"),
    ("empty", b"", "is empty"),
    ("only comments", b"# nothing\n", "projectname"),
    ("not UTF-8", b"projectname: ab\xff\xfe\n", "is not UTF-8 text"),
    ("NUL byte", b"projectname: abc\n\x00\n", "control characters"),
    ("bad name", b"projectname: ../x\n", "projectname"),
    ("two documents", b"projectname: a\n---\nprojectname: b\n", "single document"),
    ("python tag", b"projectname: !!python/object:os.system x\n", "invalid YAML"),
    ("deep nesting", b"projectname: " + b"[" * 5000 + b"\n", "nested too deeply"),
]


@pytest.mark.parametrize(
    ("text", "fragment"), [c[1:] for c in BROKEN_YAML], ids=[c[0] for c in BROKEN_YAML]
)
def test_a_broken_project_yaml_is_one_error_with_exit_2(
    tmp_path: Path, text: bytes, fragment: str
) -> None:
    (tmp_path / "cfs" / "src").mkdir(parents=True)
    (tmp_path / "project.yaml").write_bytes(text)
    for args in (["run", "--dry-run"], ["run"], ["status"], ["sync"]):
        assert_error(cli("-C", str(tmp_path), *args), 2, fragment)
    assert not (tmp_path / ".pollinator").exists()  # nothing touched, no agent started


@pytest.mark.parametrize("kind", ["directory", "dangling link", "fifo"])
def test_a_project_yaml_that_is_not_a_file_is_named(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "proj" / "project.yaml"
    path.parent.mkdir()
    if kind == "directory":
        path.mkdir()
    elif kind == "dangling link":
        path.symlink_to("nowhere.yaml")
    else:
        os.mkfifo(path)
    # A project.yaml above it must not be taken instead of the broken one.
    (tmp_path / "project.yaml").write_text("projectname: parent\n")
    expected = {"directory": "is a directory", "dangling link": "a symbolic link to nothing"}
    fragment = expected.get(kind, "not a regular file")
    assert_error(cli("-C", str(path.parent), "run", "--dry-run"), 2, str(path), fragment)
    assert_error(cli("run", "--dry-run", cwd=path.parent), 2, str(path), fragment)


@pytest.mark.skipif(not can_drop_read_rights(), reason="needs setpriv to drop root's read rights")
def test_an_unreadable_project_yaml(tmp_path: Path) -> None:
    (tmp_path / "project.yaml").write_text("projectname: abc\n")
    (tmp_path / "project.yaml").chmod(0)
    done = subprocess.run(
        as_plain_user([POLLINATOR, "-C", str(tmp_path), "run", "--dry-run"]),
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert_error(done, 2, "Cannot read", "Permission denied")


def test_outside_any_project_and_bad_directories(tmp_path: Path) -> None:
    assert_error(cli("status", cwd=tmp_path), 2, "No project.yaml in", "pollinator new")
    assert_error(cli("run", cwd=tmp_path), 2, "No project.yaml in")
    missing = cli("-C", str(tmp_path / "missing"), "run")
    assert_error(missing, 2, "Invalid value for '-C'", "does not exist")
    (tmp_path / "file").write_text("x")
    assert_error(cli("-C", str(tmp_path / "file"), "run"), 2, "is a file")


def test_a_missing_source_file_stops_the_run_before_anything_starts(tmp_path: Path) -> None:
    root = new_project(tmp_path / "demo")
    edit_yaml(root, "source: main.py", "source: nope.py")
    assert_error(cli("run", "-f", cwd=root), 2, "environment.source is 'nope.py'", "cfs/src")
    shutil.rmtree(root / "cfs" / "src")
    assert_error(cli("run", cwd=root), 2, "cfs/src does not exist")
    assert not (root / ".pollinator" / "local").exists()  # no agent was started for it


def test_new_refuses_a_tree_it_would_half_make(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    (root / "cfs").mkdir(parents=True)
    (root / "cfs" / "src").write_text("a file where the src directory belongs")
    for args in (["new", str(root)], ["new", "--force", str(root)]):
        assert_error(cli(*args), 2, "cfs/src is a file where a directory belongs")
    assert sorted(p.name for p in root.rglob("*")) == ["cfs", "src"]  # nothing was written
    other = tmp_path / "other"
    (other / "project.yaml").mkdir(parents=True)
    assert_error(cli("new", str(other)), 2, "project.yaml exists and is not a file")


# --- Colonies and storage settings ---------------------------------------------------------------


def colony_env(sim: SimColony, **changes: str | None) -> dict[str, str]:
    env = user_env(**sim.keys.environment(sim.host, sim.port))
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return new_project(tmp_path / "demo")


COLONIES_CASES = {
    "host unset": ({"COLONIES_SERVER_HOST": None}, "COLONIES_SERVER_HOST is not set"),
    "colony unset": ({"COLONIES_COLONY_NAME": None}, "COLONIES_COLONY_NAME is not set"),
    "key unset": ({"COLONIES_PRVKEY": None}, "COLONIES_PRVKEY is not set"),
    "key not hex": ({"COLONIES_PRVKEY": "zz" * 32}, "COLONIES_PRVKEY is not a Colonies private"),
    "key too short": ({"COLONIES_PRVKEY": "abcd"}, "must be 64 hexadecimal characters"),
    "key not a member": ({"COLONIES_PRVKEY": "1" * 64}, "not a member"),
    "port not a number": ({"COLONIES_SERVER_PORT": "http"}, "must be a port number"),
    "closed port": ({"COLONIES_SERVER_PORT": "CLOSED"}, "connection refused"),
    "unresolvable host": ({"COLONIES_SERVER_HOST": "nope.invalid"}, "cannot be resolved"),
    "TLS to plain HTTP": ({"COLONIES_SERVER_TLS": "true"}, "COLONIES_SERVER_TLS=false"),
    "TLS not a flag": ({"COLONIES_SERVER_TLS": "maybe"}, "must be true or false"),
    "unknown colony": ({"COLONIES_COLONY_NAME": "nosuch"}, "nosuch"),
}


@pytest.mark.parametrize("case", list(COLONIES_CASES))
def test_colonies_settings_that_cannot_work_exit_3(
    sim_colony: SimColony,  # noqa: F811
    project: Path,
    case: str,
) -> None:
    """Through a command that only lists, and through run, which must submit nothing."""
    changes, fragment = COLONIES_CASES[case]
    if changes.get("COLONIES_SERVER_PORT") == "CLOSED":
        changes = {"COLONIES_SERVER_PORT": str(free_port())}
    store = f"file://{project.parent / 'store'}"  # storage works: the server is what fails
    env = colony_env(sim_colony, POLLINATOR_STORAGE=store, **changes)
    for args in (["executors", "--backend", "colonies"], ["run", "--backend", "colonies"]):
        done = cli(*args, cwd=project, env=env, timeout=90)
        message = assert_error(done, 3, fragment)
        assert "WARNING" not in done.stderr  # no retry chatter around the one paragraph
        for secret in (sim_colony.keys.prvkey, sim_colony.keys.colony_prvkey, "zz" * 32):
            assert secret not in done.stdout + done.stderr
        assert "1" * 64 not in message
    assert not (project / ".pollinator" / "runs").exists()


STORAGE_CASES = {
    "nothing set": ({}, "No file storage is configured"),
    "endpoint without bucket": ({"AWS_S3_ENDPOINT": "127.0.0.1:9"}, "AWS_S3_BUCKET is not"),
    "secret unset": (
        {"AWS_S3_BUCKET": "b", "AWS_S3_ACCESSKEY": "a"},
        "AWS_S3_SECRETKEY is not set",
    ),
    "TLS not a flag": (
        {
            "AWS_S3_BUCKET": "b",
            "AWS_S3_ACCESSKEY": "a",
            "AWS_S3_SECRETKEY": "s3cr3t-value",
            "AWS_S3_TLS": "ture",
        },
        "AWS_S3_TLS must be true or false",
    ),
    "endpoint port": (
        {
            "AWS_S3_BUCKET": "b",
            "AWS_S3_ACCESSKEY": "a",
            "AWS_S3_SECRETKEY": "s3cr3t-value",
            "AWS_S3_ENDPOINT": "h:x",
        },
        "expected host:port",
    ),
}


@pytest.mark.parametrize("case", list(STORAGE_CASES))
def test_missing_or_malformed_storage_settings_exit_3_before_submitting(
    sim_colony: SimColony,  # noqa: F811
    project: Path,
    case: str,
) -> None:
    settings, fragment = STORAGE_CASES[case]
    env = colony_env(sim_colony, **settings)
    done = cli("run", "--backend", "colonies", cwd=project, env=env)
    assert_error(done, 3, fragment)
    assert "s3cr3t-value" not in done.stdout + done.stderr
    member = ColoniesClient(ClientConfig.from_env(env))
    assert member.get_processes(sim_colony.colony, ProcessState.WAITING) == []  # none submitted
    # Commands that only talk to the server need no storage settings.
    listed = cli("executors", "--backend", "colonies", cwd=project, env=env)
    assert listed.returncode == 0 and "sim-executor" in listed.stdout, listed.stderr


def test_file_storage_that_cannot_be_written_exits_3(
    sim_colony: SimColony,  # noqa: F811
    project: Path,
) -> None:
    env = colony_env(sim_colony, POLLINATOR_STORAGE="file:///proc/no/such/store")
    done = cli("sync", "--backend", "colonies", cwd=project, env=env)
    assert_error(done, 3, "Cannot use file storage at /proc/no/such/store")


@pytest.mark.s3
def test_a_wrong_s3_secret_exits_3_and_is_never_shown(
    s3_server: S3Server,
    sim_colony: SimColony,  # noqa: F811
    project: Path,
) -> None:
    wrong = "wrong-" + hashlib.sha256(os.urandom(8)).hexdigest()[:20]
    env = colony_env(sim_colony, **{**s3_server.env(), "AWS_S3_SECRETKEY": wrong})
    (project / "cfs" / "data" / "fresh.txt").write_text(os.urandom(8).hex())
    done = cli("sync", "data", "--backend", "colonies", cwd=project, env=env)
    assert_error(done, 3, "S3 refused access", "AWS_S3_SECRETKEY")
    assert wrong not in done.stdout + done.stderr
    assert s3_server.secret_key not in done.stdout + done.stderr
    verbose = cli("-vv", "sync", "data", "--backend", "colonies", cwd=project, env=env)
    assert verbose.returncode == 3
    assert wrong not in verbose.stdout + verbose.stderr


# --- file names, symlinks and hostile file records -----------------------------------------------


@pytest.fixture
def file_store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    store.mkdir()
    return store


def test_odd_file_names_are_shown_on_one_line_or_skipped_with_a_reason(
    sim_colony: SimColony,  # noqa: F811
    project: Path,
    file_store: Path,
    tmp_path: Path,
) -> None:
    src = bytes(project / "cfs" / "src")
    for name in [
        b"two\nlines.txt",
        b"esc\x1b[31m.txt",
        b"back\\slash.txt",
        b"bad\xff.txt",
        b" sp .txt",
    ]:
        with open(src + b"/" + name, "wb") as f:
            f.write(b"x")
    (tmp_path / "outside.txt").write_text("outside")
    (project / "cfs" / "src" / "out_link").symlink_to(tmp_path / "outside.txt")
    (project / "cfs" / "src" / "in_link").symlink_to("../data/hello.txt")
    (project / "cfs" / "data" / "dangling").symlink_to("nowhere")
    (project / "cfs" / "data" / "loop").symlink_to(".")
    os.mkfifo(project / "cfs" / "data" / "fifo")
    env = colony_env(sim_colony, POLLINATOR_STORAGE=f"file://{file_store}")
    plan = cli("sync", "--dry-run", "--backend", "colonies", cwd=project, env=env)
    assert plan.returncode == 0, plan.stderr
    lines = plan.stdout.splitlines()
    assert "upload   new      cfs/src/two\\nlines.txt" in lines
    assert "upload   new      cfs/src/esc\\x1b[31m.txt" in lines
    assert "upload   new      cfs/src/ sp .txt" in lines
    assert "upload   new      cfs/src/in_link" in lines
    assert all(line.startswith(("upload ", "remove ", "download ")) for line in lines), lines
    assert "\x1b" not in plan.stdout + plan.stderr
    for skipped in [
        "skipped  cfs/src/back\\slash.txt: a backslash in its name",
        "skipped  cfs/src/bad\\udcff.txt: a name that is not valid UTF-8",
        "skipped  cfs/src/out_link: symlink pointing outside the project",
        "skipped  cfs/data/dangling: dangling symlink",
        "skipped  cfs/data/loop: symlink loop",
        "skipped  cfs/data/fifo: not a regular file",
    ]:
        assert skipped in plan.stderr.splitlines(), plan.stderr
    done = cli("sync", "--backend", "colonies", cwd=project, env=env)
    assert done.returncode == 0, done.stderr
    member = ColoniesClient(ClientConfig.from_env(env))
    label = f"/pollinator/{project_name(project)}/src"
    names = {f.name for f in member.get_files(sim_colony.colony, label)}
    assert {"two\nlines.txt", "in_link", "main.py"} <= names
    assert not names & {"out_link", "back\\slash.txt"}


@pytest.mark.skipif(not can_drop_read_rights(), reason="needs setpriv to drop root's read rights")
def test_an_unreadable_file_is_skipped_with_a_reason_not_a_traceback(
    sim_colony: SimColony,  # noqa: F811
    project: Path,
    file_store: Path,
) -> None:
    secret = project / "cfs" / "src" / "noread.py"
    secret.write_text("x = 1\n")
    secret.chmod(0)
    (project / "cfs" / "src" / "nodir").mkdir(mode=0)
    env = colony_env(sim_colony, POLLINATOR_STORAGE=f"file://{file_store}")
    done = subprocess.run(
        as_plain_user([POLLINATOR, "sync", "src", "--backend", "colonies"]),
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "skipped  cfs/src/noread.py: unreadable: Permission denied" in done.stderr
    assert "skipped  cfs/src/nodir: unreadable: Permission denied" in done.stderr
    assert "Traceback" not in done.stderr


def test_hostile_file_records_are_refused_and_write_nothing(
    sim_colony: SimColony,  # noqa: F811
    project: Path,
    file_store: Path,
    tmp_path: Path,
) -> None:
    env = colony_env(sim_colony, POLLINATOR_STORAGE=f"file://{file_store}")
    member = ColoniesClient(ClientConfig.from_env(env))
    colony, result = sim_colony.colony, f"/pollinator/{project_name(project)}/result"
    data = b"evil\n"
    (file_store / hashlib.sha256(data).hexdigest()).write_bytes(data)
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    climb = "../" * len(file_store.parts) + str(secret).lstrip("/")
    cases = [
        # (label, name, object, expected words)
        (f"{result}/run1", "../evil.txt", hashlib.sha256(data).hexdigest(), "refusing remote file"),
        (f"{result}/run1/../../x", "evil.txt", hashlib.sha256(data).hexdigest(), "'..'"),
        (f"{result}/run1", "stolen.txt", climb, "refusing object key"),
        (f"{result}/run1", "abs.txt", str(secret), "refusing object key"),
    ]
    for label, name, obj, words in cases:
        size_of = len(data) if "evil" in name else len(secret.read_bytes())
        add_record(member, colony, label, name, b"x" * size_of, obj)
        try:
            done = cli("sync", "result", "--backend", "colonies", cwd=project, env=env)
            assert_error(done, 2, words)
        finally:
            member.remove_file(colony, label=label, name=name)
    names = {p.name for p in tmp_path.rglob("*")}
    assert not names & {"evil.txt", "stolen.txt", "abs.txt", "x"}
    assert not [p for p in project.rglob("*") if p.is_file() and b"TOP SECRET" in p.read_bytes()]


def test_a_download_never_replaces_a_directory_link_or_needs_a_file_moved(
    sim_colony: SimColony,  # noqa: F811
    project: Path,
    file_store: Path,
) -> None:
    env = colony_env(sim_colony, POLLINATOR_STORAGE=f"file://{file_store}")
    member = ColoniesClient(ClientConfig.from_env(env))
    colony, result = sim_colony.colony, f"/pollinator/{project_name(project)}/result"
    data = b"remote\n"
    sha = hashlib.sha256(data).hexdigest()
    (file_store / sha).write_bytes(data)
    results = project / "cfs" / "result"
    (results / "run1").mkdir()
    (results / "latest").symlink_to("run1", target_is_directory=True)
    (results / "run2").mkdir()
    (results / "run2" / "d").write_text("mine")
    for label, name, words in [
        (result, "latest", "'latest': a directory of that name exists locally"),
        (f"{result}/run2/d", "x", "'run2/d/x': a file stands locally where its directory"),
    ]:
        add_record(member, colony, label, name, data, sha, sha=sha)
        try:
            assert_error(
                cli("sync", "result", "--backend", "colonies", cwd=project, env=env), 2, words
            )
        finally:
            member.remove_file(colony, label=label, name=name)
    assert os.readlink(results / "latest") == "run1"
    assert (results / "run2" / "d").read_text() == "mine"


# --- Ctrl-C during a large upload ----------------------------------------------------------------


def test_ctrl_c_during_sync_up_leaves_nothing_half_written_and_the_next_sync_resumes(
    sim_colony: SimColony,  # noqa: F811
    project: Path,
    file_store: Path,
) -> None:
    data = project / "cfs" / "data" / "many"
    data.mkdir()
    for i in range(1500):
        (data / f"f{i:04d}.bin").write_bytes(os.urandom(2048))
    env = colony_env(sim_colony, POLLINATOR_STORAGE=f"file://{file_store}")
    proc = subprocess.Popen(
        [POLLINATOR, "sync", "data", "--backend", "colonies"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while len(os.listdir(file_store)) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err.strip().endswith("Interrupted.") and "Traceback" not in err
    index = project / ".pollinator" / "sync" / "data.json"
    if index.exists():
        json.loads(index.read_text())  # whole, never torn
    leftovers = [p for p in project.rglob("*") if ".tmp" in p.name or ".pollinator-" in p.name]
    assert leftovers == []
    for stored in file_store.iterdir():  # an object under a content key is whole
        if len(stored.name) == 64:
            assert hashlib.sha256(stored.read_bytes()).hexdigest() == stored.name
    resumed = cli("sync", "data", "--backend", "colonies", cwd=project, env=env)
    assert resumed.returncode == 0, resumed.stderr
    again = cli("sync", "--dry-run", "data", "--backend", "colonies", cwd=project, env=env)
    assert again.returncode == 0 and again.stdout == "", again.stdout
    member = ColoniesClient(ClientConfig.from_env(env))
    label = f"/pollinator/{project_name(project)}/data/many"
    records = member.get_files(sim_colony.colony, label)
    assert len(records) == 1500
    for record in records:
        assert record.checksum == hashlib.sha256((data / record.name).read_bytes()).hexdigest()
        assert (file_store / record.s3filename).is_file()


def test_runs_on_another_server_are_listed_and_named_not_a_crash(
    sim_colony: SimColony,  # noqa: F811
    project: Path,
    file_store: Path,
) -> None:
    env = colony_env(sim_colony, POLLINATOR_STORAGE=f"file://{file_store}")
    done = cli("run", "--backend", "colonies", cwd=project, env=env)
    assert done.returncode == 0, done.stderr
    run_id = submitted(done)
    with EmbeddedSimulator() as other:  # say, a dev server restarted without --db
        keys = other.bootstrap("test")
        elsewhere = colony_env(sim_colony, **keys.environment(other.host, other.port))
        elsewhere["POLLINATOR_STORAGE"] = f"file://{file_store}"
        listed = cli("ps", "--json", cwd=project, env=elsewhere)
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)
        assert [(r["id"], r["state"], r["reason"]) for r in rows] == [
            (run_id, "UNKNOWN", "not on the server")
        ]
        for args in (["status"], ["logs"], ["cancel", run_id[:8]], ["results"]):
            done = cli(*args, cwd=project, env=elsewhere)
            assert_error(
                done,
                2,
                f"Process {run_id[:12]} is not on the Colonies server at {other.host}:{other.port}",
                f"it was submitted to {sim_colony.host}:{sim_colony.port}",
            )


# --- executors -----------------------------------------------------------------------------------


def executor_names(sim: SimColony) -> set[str]:
    """The executors registered now (a removed one stays listed as UNREGISTERED, as on the
    official server)."""
    member = ColoniesClient(ClientConfig(host=sim.host, port=sim.port, prvkey=sim.keys.prvkey))
    executors = member.get_executors(sim.colony)
    return {e.executorname for e in executors if e.state is not ExecutorState.UNREGISTERED}


def test_an_executor_with_bad_settings_fails_before_it_registers(
    sim_colony: SimColony,  # noqa: F811
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_text("x")
    env = colony_env(sim_colony, POLLINATOR_STORAGE=f"file://{tmp_path / 'store'}")
    start = ["executor", "start", "--name", "qa", "--runtime", "process"]
    done = cli(*start, "--fs-dir", str(tmp_path / "a-file"), env=env)
    assert_error(done, 2, "is not a directory")
    done = cli(*start, "--fs-dir", str(tmp_path / "a-file" / "sub"), env=env)
    assert_error(done, 2, "cannot be used")
    no_store = colony_env(sim_colony)
    done = cli(*start, "--fs-dir", str(tmp_path / "fs"), env=no_store)
    assert_error(done, 3, "No file storage is configured")
    assert executor_names(sim_colony) == {"sim-executor"}  # nothing left registered


def test_a_second_executor_under_the_same_name_stops_the_first_with_a_reason(
    sim_colony: SimColony,  # noqa: F811
    tmp_path: Path,
) -> None:
    env = colony_env(sim_colony, POLLINATOR_STORAGE=f"file://{tmp_path / 'store'}")
    start = [POLLINATOR, "executor", "start", "--name", "twin", "--runtime", "process"]
    first = subprocess.Popen(
        [*start, "--fs-dir", str(tmp_path / "a"), "--grace", "1"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    second: subprocess.Popen[str] | None = None
    try:
        assert first.stderr is not None
        assert "serving colony" in first.stderr.readline()
        second = subprocess.Popen(
            [*start, "--fs-dir", str(tmp_path / "b"), "--grace", "1"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert second.stderr is not None
        assert "serving colony" in second.stderr.readline()
        _, err = first.communicate(timeout=40)
        assert first.returncode == 3, err
        assert "Give each executor its own --name" in err.splitlines()[-1]
        assert "Traceback" not in err
        assert "twin" in executor_names(sim_colony)  # the second one's record was left alone
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=40)
        assert second.returncode == 0, err
        assert executor_names(sim_colony) == {"sim-executor"}  # it removed its own record
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


# --- the local backend: jobs, runs and their IDs, secrets ----------------------------------------


ODD_OUTPUT = r"""
import sys
sys.stdout.buffer.write(b"bad \xff\xfe bytes\n")
sys.stdout.buffer.write(b"x" * 100000 + b"\n")
sys.stdout.write("tail-without-newline")
"""

FAILING = """
def f():
    raise ValueError("boom")
print("before")
f()
"""


@attrs.frozen
class LocalRuns:
    root: Path
    odd: subprocess.CompletedProcess[str]
    failed: subprocess.CompletedProcess[str]
    odd_id: str


def submitted(done: subprocess.CompletedProcess[str]) -> str:
    for line in done.stderr.splitlines():
        if SUBMITTED_PREFIX in line:
            return line.split(SUBMITTED_PREFIX, 1)[1].strip()
    raise AssertionError(done.stderr)


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuns]:
    root = new_project(tmp_path_factory.mktemp("local") / "demo")
    try:
        (root / "cfs" / "src" / "main.py").write_text(ODD_OUTPUT)
        odd = cli("run", "-f", "--runtime", "process", cwd=root, timeout=120)
        (root / "cfs" / "src" / "main.py").write_text(FAILING)
        failed = cli("run", "-f", "--runtime", "process", cwd=root, timeout=120)
        yield LocalRuns(root, odd, failed, submitted(odd))
    finally:
        cli("executor", "stop", cwd=root)


def test_a_failing_job_exits_1_and_shows_its_traceback(local_runs: LocalRuns) -> None:
    done = local_runs.failed
    assert done.returncode == 1, done.stderr
    assert "before" in done.stdout and "Traceback (most recent call last)" in done.stdout
    assert "ValueError: boom" in done.stdout
    assert "FAILED: exit code 1" in done.stderr.splitlines()[-1]


def test_odd_job_output_arrives_whole(local_runs: LocalRuns) -> None:
    done = local_runs.odd
    assert done.returncode == 0, done.stderr
    assert "bad \ufffd\ufffd bytes\n" in done.stdout
    assert "\n" + "x" * 100000 + "\n" in done.stdout
    assert done.stdout.rstrip("\n").endswith("tail-without-newline")
    logs = cli("logs", local_runs.odd_id[:10], cwd=local_runs.root)
    assert logs.returncode == 0 and logs.stdout == done.stdout


def test_run_ids_that_match_nothing_or_several(local_runs: LocalRuns) -> None:
    root = local_runs.root
    assert_error(cli("logs", "ffffffff", cwd=root), 2, "No run of this project has an ID")
    assert_error(cli("status", "../../etc", cwd=root), 2, "No run of this project has an ID")
    assert_error(cli("results", "", cwd=root), 2, "matches several runs")
    done = cli("cancel", local_runs.odd_id[:8], cwd=root)
    assert done.returncode == 0 and "already ended (SUCCESS)" in done.stderr, done.stderr


def test_commands_before_any_run(tmp_path: Path) -> None:
    root = new_project(tmp_path / "fresh")
    for command in ("logs", "status", "results"):
        assert_error(cli(command, cwd=root), 2, "This project has no runs yet")
    assert_error(cli("logs", "-f", cwd=root), 2, "This project has no runs yet")
    assert not (root / ".pollinator" / "local").exists()


def test_results_into_a_place_taken_by_a_file(local_runs: LocalRuns) -> None:
    target = local_runs.root / "cfs" / "result" / local_runs.odd_id
    aside = target.with_name("aside")
    target.rename(aside)
    try:
        target.write_text("my own file")
        done = cli("results", local_runs.odd_id[:8], cwd=local_runs.root)
        assert_error(done, 2, "a file stands where that directory", "Move it aside")
        assert target.read_text() == "my own file"
    finally:
        target.unlink()
        aside.rename(target)


def agent_client(root: Path) -> ColoniesClient:
    info = json.loads((root / ".pollinator" / "local" / "agent.json").read_text())
    keys = json.loads((root / ".pollinator" / "local" / "keys.json").read_text())
    return ColoniesClient(
        ClientConfig(host="127.0.0.1", port=info["port"], colony_name="local", prvkey=keys["user"])
    )


def test_results_refuse_a_record_that_climbs_out(local_runs: LocalRuns) -> None:
    root, pid = local_runs.root, local_runs.odd_id
    client = agent_client(root)
    label = f"/pollinator/{project_name(root)}/result/{pid}"
    data = b"evil\n"
    sha = hashlib.sha256(data).hexdigest()
    (root / ".pollinator" / "local" / "storage" / sha).write_bytes(data)
    add_record(client, "local", label, "../evil.txt", data, sha, sha=sha)
    try:
        for args in (["results", pid[:8]], ["sync", "result"]):
            assert_error(cli(*args, cwd=root), 2, "refusing remote file '../evil.txt'")
    finally:
        client.remove_file("local", label=label, name="../evil.txt")
    assert not (root / "cfs" / "result" / "evil.txt").exists()


def test_no_private_key_in_logs_outputs_or_the_process_list(local_runs: LocalRuns) -> None:
    local = local_runs.root / ".pollinator" / "local"
    keys = json.loads((local / "keys.json").read_text())
    assert (local / "keys.json").stat().st_mode & 0o077 == 0
    secrets = [k.encode() for k in keys.values()]
    for path in local_runs.root.rglob("*"):
        if path.is_file() and path.name != "keys.json":
            content = path.read_bytes()
            assert not [s for s in secrets if s in content], path
    outputs = (local_runs.odd.stdout + local_runs.odd.stderr + local_runs.failed.stderr).encode()
    assert not [s for s in secrets if s in outputs]
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, timeout=10).stdout
    assert not [s for s in secrets if s in listing]


# --- Docker --------------------------------------------------------------------------------------


def test_run_with_no_docker_engine_exits_3_and_says_what_to_do(tmp_path: Path) -> None:
    root = new_project(tmp_path / "demo")
    env = user_env(DOCKER_HOST="unix:///nonexistent.sock")
    try:
        done = cli("run", "-f", "--runtime", "docker", cwd=root, env=env)
        assert_error(done, 3, "no Docker engine at unix:///nonexistent.sock", "--runtime process")
    finally:
        cli("executor", "stop", cwd=root, env=env)


@pytest.mark.docker
def test_docker_output_keeps_a_last_line_without_newline(docker_engine: DockerEngine) -> None:
    from pollinator_local_docker.docker_runtime import DockerRuntime

    from pollinator_core.execution.job import Job

    backend = DockerRuntime.connect(kill_grace=1.0)
    try:
        job = Job(
            process_id="badinput-" + os.urandom(4).hex(),
            image=docker_engine.image,
            command="printf 'first\\n'; sleep 0.3; printf 'last, no newline'",
        )
        handle = backend.submit(job)
        try:
            output = b"".join(c for c in backend.logs(handle) if isinstance(c, bytes))
        finally:
            backend.cleanup(handle)
    finally:
        backend.close()
    assert output == b"first\nlast, no newline"


@pytest.mark.docker
def test_an_image_that_is_absent_and_cannot_be_pulled_fails_the_job_clearly(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    root = new_project(tmp_path / "demo")
    edit_yaml(root, "docker: python:3.12-rc-bookworm", "docker: localhost:1/absent/image:none")
    try:
        done = cli("run", "-f", "--runtime", "docker", cwd=root, timeout=120)
    finally:
        cli("executor", "stop", cwd=root)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    last = done.stderr.splitlines()[-1]
    assert (
        "FAILED: infrastructure failure (image 'localhost:1/absent/image:none' is not on this "
        "Docker engine"
    ) in last
    assert "--runtime process" in last
