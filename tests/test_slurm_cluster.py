"""The Slurm plugin end to end on the real cluster (tests/infra/slurm_up.sh): Slurm 22.05 with
slurmdbd, Apptainer 1.4, one node with 2 CPUs, so at most two jobs run at once.

Through the user's commands: ``pollinator run --backend slurm`` (one local agent for the
module) and, against the simulator, ``pollinator executor start --type slurm`` with ``run
--backend colonies``. Each test bounds its jobs; the walltime test relies on the wrapper's own
timer (seconds), not on Slurm's minute-grained limit.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from infra.components import DockerEngine, SlurmCluster
from sim_fixtures import SimColony, sim_colony, simulator  # noqa: F401  (pytest fixtures)
from test_run_local import POLLINATOR, LocalProject, Output, submitted_id

from pollinator_core.api import external_name
from pollinator_core.colonies.client import ColoniesClient
from pollinator_core.colonies.config import ClientConfig
from pollinator_core.colonies.models import Process, ProcessState
from pollinator_core.runs.agent import AgentDir

pytestmark = pytest.mark.slurm

SLURM_JOB = re.compile(r"submitted as Slurm job (\d+)")
#: secrets the executor holds that no file it writes may contain
SECRETS = {
    "AWS_S3_SECRETKEY": "s3-secret-" + uuid.uuid4().hex,
    "AWS_SECRET_ACCESS_KEY": "aws-secret-" + uuid.uuid4().hex,
    "SITE_API_TOKEN": "site-token-" + uuid.uuid4().hex,  # not Pollinator's, kept out all the same
    "APPTAINER_DOCKER_PASSWORD": "registry-password-" + uuid.uuid4().hex,
}


def batch_environment(cluster: SlurmCluster, job_id: str) -> dict[str, str]:
    """The environment slurmctld keeps for a live batch job (what its batch shell starts with),
    read from its StateSaveLocation."""
    conf = cluster.slurm_conf.read_text()
    state = Path(re.findall(r"^StateSaveLocation=(\S+)", conf, re.MULTILINE)[-1])
    [saved] = state.glob(f"hash.*/job.{job_id}/environment")
    # A count (4 bytes) then NUL-terminated NAME=value strings.
    entries = saved.read_bytes()[4:].split(b"\0")
    return dict(e.decode().split("=", 1) for e in entries if b"=" in e)


def colonies_env(sim: SimColony, store: Path) -> dict[str, str]:
    """The environment of a command that talks to the simulator, its files in ``store``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLONIES_")}
    env.update(sim.keys.environment(sim.host, sim.port))
    env["POLLINATOR_STORAGE"] = f"file://{store}"
    return env


def slurm_section(cluster: SlurmCluster, image_dir: Path) -> str:
    return (
        "slurm:\n"
        f"  partition: {cluster.partition}\n"
        "  grace: 3\n"
        "  poll_interval: 1\n"
        "  poll_max_interval: 10\n"
        f"  image_dir: {image_dir}\n"
    )


class SlurmProject(LocalProject):
    """A project made by `pollinator new`, run with --backend slurm on the test SIF."""

    def __init__(self, root: Path, cluster: SlurmCluster, image: str, image_dir: Path) -> None:
        super().__init__(root, "process", image)
        self.env["POLLINATOR_LOCAL_IDLE"] = "300"
        path = root / "project.yaml"
        self.pristine = path.read_text() + slurm_section(cluster, image_dir)
        self.configure()

    def configure(self, main: str | None = None, **changes: str) -> None:
        """project.yaml as made, with ``key: value`` lines changed (a top-level key that
        `pollinator new` writes as a comment is added); cfs/src/main.py."""
        text = self.pristine
        for key, value in changes.items():
            text, count = re.subn(rf"(?m)^(\s*){key}: .*$", rf"\g<1>{key}: {value}", text)
            if not count:
                text += f"{key}: {value}\n"
        (self.root / "project.yaml").write_text(text)
        if main is not None:
            self.write_main(main)

    def run_args(self, *extra: str) -> list[str]:
        return ["run", "--follow", "--backend", "slurm", *extra]


@pytest.fixture(scope="module")
def project(
    slurm_cluster: SlurmCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SlurmProject]:
    base = tmp_path_factory.mktemp("slurm-e2e")
    made = SlurmProject(base / "demo", slurm_cluster, str(slurm_cluster.test_sif), base / "sif")
    yield made
    made.cli("executor", "stop", "--backend", "slurm")


@pytest.fixture
def fresh(project: SlurmProject) -> Iterator[SlurmProject]:
    """The module's project, reset to what `pollinator new` made; a test that fails leaves
    no job of it in the queue for the next one to wait behind."""
    project.configure()
    project.write_main(DEFAULT_MAIN)
    yield project
    listed = subprocess.run(
        ["squeue", "-h", "-o", "%i|%Z"], capture_output=True, text=True, timeout=60
    ).stdout  # fmt: skip
    ours = [
        job
        for job, _, workdir in (line.partition("|") for line in listed.splitlines())
        if workdir.startswith(str(project.root))
    ]
    if ours:
        subprocess.run(["scancel", *ours], timeout=60, check=False)


DEFAULT_MAIN = (Path(__file__).parents[1] / "pollinator_core/project/templates/main.py").read_text()

SLEEPER = """\
import os, sys, time
print('started', flush=True)
result = os.path.join(os.environ['PROJECT_DIR'], 'result')
os.makedirs(result, exist_ok=True)
open(os.path.join(result, 'partial.txt'), 'w').write('written before the end')
time.sleep(float(os.environ.get('SLEEP', '300')))
print('finished', flush=True)
sys.exit(int(os.environ.get('EXIT', '0')))
"""


def slurm_job(text: str) -> str:
    found = SLURM_JOB.search(text)
    assert found, text
    return found.group(1)


def slurm_state(job: str) -> str:
    """The job's final state, from sacct when accounting runs, else from scontrol."""
    deadline = time.monotonic() + 60
    while True:
        row = subprocess.run(
            ["sacct", "-X", "-n", "-P", "-j", job, "-o", "State,End"],
            capture_output=True, text=True, timeout=60,
        ).stdout.strip()  # fmt: skip
        state, _, end = row.partition("|")
        if not row:
            out = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True,
                                 text=True, timeout=60).stdout  # fmt: skip
            state = re.search(r"JobState=(\S+)", out).group(1) if "JobState=" in out else ""  # type: ignore[union-attr]
            end = re.search(r"EndTime=(\S+)", out).group(1) if "EndTime=" in out else ""  # type: ignore[union-attr]
        if state and end != "Unknown" and state.split()[0] not in ("PENDING", "RUNNING"):
            return state
        assert time.monotonic() < deadline, f"job {job} is still {state or 'unknown'}"
        time.sleep(0.5)


def in_queue(job: str) -> bool:
    out = subprocess.run(
        ["squeue", "-h", "-j", job, "-t", "PENDING,RUNNING,CONFIGURING,SUSPENDED", "-o", "%T"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return bool(out.stdout.strip())


def leaves_the_queue(job: str, timeout: float = 60) -> bool:
    """The server says CANCELLED at once; the executor stops the job within its grace."""
    deadline = time.monotonic() + timeout
    while in_queue(job):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def submissions(pid: str) -> list[str]:
    """Every Slurm job ever submitted for process ``pid`` (by its deterministic name)."""
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", f"--name={external_name(pid)}", "-S", "now-1day",
         "-o", "JobIDRaw"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return out.stdout.split()


# --- the must-shows through `pollinator run --backend slurm` -----------------------------------


def test_the_example_runs_on_slurm_and_its_result_comes_back(fresh: SlurmProject) -> None:
    done = fresh.cli(*fresh.run_args(), timeout=240)
    assert done.returncode == 0, done.stderr + done.stdout
    pid = submitted_id(done.stderr)
    assert "data/hello.txt says: Hello world!" in done.stdout
    assert (fresh.root / "cfs/result" / pid / "result.txt").read_text().startswith("Hello world!")
    assert f"results: cfs/result/{pid}/ (1 new file)" in done.stderr
    assert "jobs run as Slurm batch jobs" in done.stderr
    assert slurm_state(slurm_job(done.stdout)) == "COMPLETED"


def test_a_failing_job_exits_1_with_its_exit_code_and_log_tail(fresh: SlurmProject) -> None:
    fresh.write_main("import sys\nprint('about to fail', flush=True)\nsys.exit(3)\n")
    done = fresh.cli(*fresh.run_args(), timeout=240)
    assert done.returncode == 1
    assert "about to fail" in done.stdout
    assert "FAILED: exit code 3" in done.stderr
    shown = fresh.cli("status")
    assert "about to fail" in shown.stdout + shown.stderr  # the tail, in the process's errors
    assert slurm_state(slurm_job(done.stdout)) == "FAILED"


def test_a_memory_hog_ends_out_of_memory(fresh: SlurmProject) -> None:
    # 256 MiB, not less: under a smaller limit the SIF's own pages thrash for a minute.
    fresh.configure(
        "print('eating', flush=True)\nhog = [bytearray(10**7) for _ in range(1000)]\n",
        mem="256Mi",
    )
    done = fresh.cli(*fresh.run_args(), timeout=240)
    assert done.returncode == 1, done.stderr
    assert "eating" in done.stdout
    assert "FAILED: out of memory (killed for going over --mem on localhost)" in done.stderr
    status = json.loads(fresh.cli("status", "--json").stdout)
    assert any('"reason": "oom"' in line for line in status["errors"])


def test_walltime_stops_the_job_and_its_partial_result_comes_back(fresh: SlurmProject) -> None:
    fresh.configure(SLEEPER, walltime="5")
    started = time.monotonic()
    done = fresh.cli(*fresh.run_args(), timeout=240)
    assert done.returncode == 1, done.stderr
    pid = submitted_id(done.stderr)
    assert "started" in done.stdout and "finished" not in done.stdout
    assert "pollinator: walltime of 5 s reached: stopping the job" in done.stdout
    assert "FAILED: walltime exceeded; exit code 143, killed by SIGTERM" in done.stderr
    partial = fresh.root / "cfs/result" / pid / "partial.txt"
    assert partial.read_text() == "written before the end"
    assert time.monotonic() - started < 60  # the wrapper's timer, not Slurm's minutes


def test_processes_per_node_2_gives_two_ranked_streams(fresh: SlurmProject) -> None:
    main = (
        "import os\n"
        "print(f\"rank {os.environ['RANK']} of {os.environ['WORLD_SIZE']}, local "
        "{os.environ['LOCAL_RANK']}, master {os.environ['MASTER_ADDR']}\", flush=True)\n"
    )
    fresh.configure(main, processesPerNode="2", cpu="500m")
    done = fresh.cli(*fresh.run_args(), timeout=240)
    assert done.returncode == 0, done.stderr
    lines = sorted(line for line in done.stdout.splitlines() if ": rank " in line)
    assert lines == [
        "0: rank 0 of 2, local 0, master localhost",
        "1: rank 1 of 2, local 1, master localhost",
    ]


def agent_process(project: SlurmProject, pid: str) -> Process:
    """The process as the project's local agent (its simulator) has it."""
    where = AgentDir(project.root / ".pollinator" / "slurm")
    info = where.info()
    assert info is not None
    config = ClientConfig(host="127.0.0.1", port=info.port, prvkey=where.keys().user)
    client = ColoniesClient(config)
    try:
        return client.get_process(pid)
    finally:
        client.close()


def blocker(cluster: SlurmCluster, seconds: int) -> str:
    """A job that takes the node's two CPUs for ``seconds``."""
    done = subprocess.run(
        ["sbatch", "--parsable", f"--partition={cluster.partition}", "--cpus-per-task=2",
         "--mem=100M", "--time=2", "--output=/dev/null", "--job-name=pollinator-test-blocker",
         f"--wrap=sleep {seconds}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def wait_running(job: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True,
                               text=True, timeout=60).stdout.strip()  # fmt: skip
        if state == "RUNNING":
            return
        time.sleep(0.3)
    raise AssertionError(f"job {job} did not start in {timeout} s")


def test_a_job_queued_longer_than_its_walltime_is_neither_requeued_nor_duplicated(
    fresh: SlurmProject, slurm_cluster: SlurmCluster
) -> None:
    """walltime 3 s, 20 s in Slurm's queue: the server's deadline (walltime + maxqueuetime)
    covers the wait, so the process is not requeued, and the job is submitted once."""
    fresh.configure("print('ran after waiting', flush=True)\n", walltime="3")
    block = blocker(slurm_cluster, 20)
    try:
        wait_running(block)
        started = time.monotonic()
        done = fresh.cli(*fresh.run_args(), timeout=240)
        waited = time.monotonic() - started
    finally:
        subprocess.run(["scancel", block], timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    pid = submitted_id(done.stderr)
    assert "pollinator: pending: waiting for free resources" in done.stdout
    assert "ran after waiting" in done.stdout
    assert waited > 10
    assert len(submissions(pid)) == 1
    process = agent_process(fresh, pid)
    assert (process.state, process.retries) == (ProcessState.SUCCESS, 0)


def test_cancel_a_running_and_a_pending_job(fresh: SlurmProject) -> None:
    """The first job takes the node's two CPUs; the second waits behind it."""
    fresh.configure(SLEEPER, cpu="2")
    running = fresh.start(*fresh.run_args())
    running.wait_for("started", timeout=120)
    queued = fresh.start(*fresh.run_args())
    queued.wait_for("pollinator: pending: ", timeout=120)
    first, second = (submitted_id("".join(o.err)) for o in (running, queued))

    assert fresh.cli("cancel", second[:12]).returncode == 0
    code, out, err = queued.finish(timeout=120)
    assert code == 1 and f"process {second[:12]} CANCELLED" in err
    pending_job = slurm_job(out)
    assert leaves_the_queue(pending_job)
    assert slurm_state(pending_job).startswith("CANCELLED")
    assert "started" not in out

    # The server marks the process CANCELLED at once; the executor then stops the Slurm job
    # (TERM, the grace, KILL) and uploads what it wrote.
    assert fresh.cli("cancel", first[:12]).returncode == 0
    code, out, err = running.finish(timeout=120)
    assert code == 1 and f"process {first[:12]} CANCELLED" in err
    running_job = slurm_job(out)
    assert leaves_the_queue(running_job)
    assert slurm_state(running_job) == "FAILED"  # its wrapper stopped it: exit code 143
    partial = fresh.root / "cfs/result" / first / "partial.txt"
    deadline = time.monotonic() + 60
    while not partial.is_file():
        assert time.monotonic() < deadline, "the partial result never came"
        time.sleep(1)
        fresh.cli("results", first[:12])
    assert "finished" not in out


def test_a_cancel_right_after_submission_leaves_no_job_behind(fresh: SlurmProject) -> None:
    """The cancel reaches the executor while it stages files or runs sbatch: whatever it
    submitted is stopped too."""
    fresh.configure(SLEEPER)
    run = fresh.start(*fresh.run_args())
    pid = run.wait_for(r"submitted process ([0-9a-f]{64})", stderr=True).group(1)
    assert fresh.cli("cancel", pid[:12]).returncode == 0
    code, _, err = run.finish(timeout=120)
    assert code == 1 and "CANCELLED" in err
    name = external_name(pid)
    deadline = time.monotonic() + 60
    while True:
        queued = subprocess.run(
            ["squeue", "-h", f"--name={name}", "-t", "PENDING,RUNNING,CONFIGURING", "-o", "%i"],
            capture_output=True, text=True, timeout=60,
        ).stdout.split()  # fmt: skip
        if not queued:
            break
        assert time.monotonic() < deadline, f"jobs {queued} of a cancelled process still queued"
        time.sleep(1)
    assert len(submissions(pid)) <= 1


def test_an_image_that_cannot_be_had_fails_with_the_converters_words(
    fresh: SlurmProject,
) -> None:
    fresh.configure(**{"docker": "pollinator-no-such-image:1"})
    done = fresh.cli(*fresh.run_args(), timeout=240)
    assert done.returncode == 1
    assert "converting image 'pollinator-no-such-image:1' (docker://pollinator-no-such-image:1)" \
        " to a SIF failed" in done.stderr  # fmt: skip
    assert "FATAL" in done.stderr  # Apptainer's own message follows


def test_settings_slurm_refuses_stop_the_executor_with_slurms_words(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLONIES_", "POLLINATOR_"))}
    env.update(COLONIES_SERVER_HOST="127.0.0.1", COLONIES_SERVER_PORT="1",
               COLONIES_COLONY_NAME="c", COLONIES_PRVKEY="0" * 64,
               POLLINATOR_STORAGE=f"file://{tmp_path / 'store'}")  # fmt: skip
    done = subprocess.run(
        [POLLINATOR, "executor", "start", "--type", "slurm", "--fs-dir", str(tmp_path),
         "-s", "partition=pollinator-no-such-partition"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Slurm refuses this executor's settings: invalid partition specified: " \
        "pollinator-no-such-partition" in done.stderr  # fmt: skip
    assert "Traceback" not in done.stderr


def test_slurmdbd_stopped_mid_run_the_true_exit_code_is_reported(
    fresh: SlurmProject, slurm_cluster: SlurmCluster
) -> None:
    if not slurm_cluster.accounting:
        pytest.skip("the cluster runs without accounting (slurm_up.sh --no-dbd)")
    fresh.configure(SLEEPER, env="{SLEEP: '6', EXIT: '7'}")
    run = fresh.start(*fresh.run_args())
    try:
        run.wait_for("started", timeout=120)
        slurm_cluster.stop_dbd()
        code, out, err = run.finish(timeout=120)
    finally:
        slurm_cluster.start_dbd()
    assert code == 1, err
    assert "finished" in out
    assert "FAILED: exit code 7" in err


def test_slurmctld_restarted_mid_run_the_job_goes_on(
    fresh: SlurmProject, slurm_cluster: SlurmCluster
) -> None:
    fresh.configure(SLEEPER, env="{SLEEP: '8'}")
    run = fresh.start(*fresh.run_args())
    run.wait_for("started", timeout=120)
    slurm_cluster.restart_ctld()
    code, out, err = run.finish(timeout=120)
    assert code == 0, err
    assert "finished" in out
    assert slurm_state(slurm_job(out)) == "COMPLETED"


# --- a colonies-backend executor: `pollinator executor start --type slurm` ----------------------


StartExecutor = Callable[..., Output]


@pytest.fixture
def slurm_executor(
    sim_colony: SimColony,  # noqa: F811
    slurm_cluster: SlurmCluster,
    tmp_path: Path,
) -> Iterator[StartExecutor]:
    daemons: list[Output] = []

    def start() -> Output:
        env = {**colonies_env(sim_colony, tmp_path / "store"), **SECRETS}
        proc = subprocess.Popen(
            [POLLINATOR, "executor", "start", "--type", "slurm", "--name", "hpc", "--max-jobs",
             "4", "--fs-dir", str(tmp_path / "fs"), "-s", f"partition={slurm_cluster.partition}",
             "-s", "grace=3", "-s", "poll_interval=1", "-s", "poll_max_interval=10"],
            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        daemon = Output(proc)
        daemon.wait_for("serving colony", stderr=True, timeout=60)
        daemons.append(daemon)
        return daemon

    yield start
    for daemon in daemons:
        if daemon.proc.poll() is None:
            daemon.proc.send_signal(signal.SIGTERM)
        daemon.finish()


def scan_for_secrets(where: Path, secrets: list[str]) -> list[Path]:
    """Files under ``where`` holding any of ``secrets``."""
    found = []
    for path in where.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if any(s.encode() in data for s in secrets):
                found.append(path)
    return found


def test_a_colonies_executor_runs_the_example_and_adopts_its_job_after_sigkill(
    slurm_executor: StartExecutor,
    sim_colony: SimColony,  # noqa: F811
    slurm_cluster: SlurmCluster,
    tmp_path: Path,
) -> None:
    daemon = slurm_executor()
    project = LocalProject(tmp_path / "demo", "process", str(slurm_cluster.test_sif))
    project.env = {**colonies_env(sim_colony, tmp_path / "store"), **SECRETS}
    done = project.cli("run", "--backend", "colonies", "--follow", timeout=240)
    assert done.returncode == 0, done.stderr
    pid = submitted_id(done.stderr)
    assert "running on hpc" in done.stderr
    assert (project.root / "cfs/result" / pid / "result.txt").read_text().startswith("Hello")

    # The job prints its environment, then is left to an executor that is SIGKILLed.
    project.edit_yaml("# env:", "env:\n  SLEEP: '10'\n  EXIT: '5'\n# was env:")
    project.write_main("import os\nprint(sorted(os.environ.items()), flush=True)\n" + SLEEPER)
    run = project.start("run", "--backend", "colonies", "--follow")
    run.wait_for("started", timeout=120)
    secrets = [*SECRETS.values(), *(v for k, v in sim_colony.env().items() if "PRVKEY" in k)]
    written = list((tmp_path / "fs").rglob(".pollinator-slurm/*"))
    assert {p.name for p in written} >= {"job.sh", "task.sh", "container.sh", "env.sh", "cmd.sh"}
    assert scan_for_secrets(tmp_path / "fs", secrets) == []
    # The batch shell's environment: what it needs to find srun and Apptainer, nothing else.
    [job_id] = SLURM_JOB.findall("".join(run.out))
    batch = batch_environment(slurm_cluster, job_id)
    assert "PATH" in batch and not [s for s in secrets if s in "\n".join(batch.values())]
    assert not [k for k in batch if k.startswith(("COLONIES_", "AWS_", "POLLINATOR_", "SITE_"))]
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.finish()
    # The job ends while no executor watches it; the next one closes it with its outcome.
    job = [p for p in (tmp_path / "fs").rglob(".pollinator-slurm/output.log")]
    assert len(job) == 1
    deadline = time.monotonic() + 60
    while not (job[0].parent / "exit.json").is_file():
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.5)
    again = slurm_executor()
    again.wait_for("took back 1 running process", stderr=True, timeout=60)
    code, out, err = run.finish(timeout=180)
    sleeper = submitted_id(err)
    assert code == 1, err
    assert "executor hpc re-attached to job" in out
    assert out.count("started") == 1 and "finished" in out
    assert "FAILED: exit code 5" in err
    assert len(submissions(sleeper)) == 1
    assert not [s for s in secrets if s in out]
    assert scan_for_secrets(tmp_path / "store", secrets) == []


# --- images -----------------------------------------------------------------------------------


def tiny_image(engine: DockerEngine, name: str) -> None:
    """An image with just /bin/sh (the host's dash and its libraries): quick to convert."""
    files = ["/bin/sh", "/bin/dash", "/lib64/ld-linux-x86-64.so.2"]
    libs = subprocess.run(["ldd", "/bin/dash"], capture_output=True, text=True, check=True)
    files += re.findall(r"=> (/\S+)", libs.stdout)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in files:
            tar.add(os.path.realpath(path), arcname=path.lstrip("/"))
        for empty in ("tmp", "proc", "dev", "sys", "etc"):
            info = tarfile.TarInfo(empty)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if empty == "tmp" else 0o755
            tar.addfile(info)
    repository, tag = name.rsplit(":", 1)
    engine.client.api.import_image_from_data(buffer.getvalue(), repository=repository, tag=tag)


@pytest.mark.docker
def test_two_concurrent_jobs_on_one_new_image_convert_it_once(
    slurm_cluster: SlurmCluster, docker_engine: DockerEngine, tmp_path: Path
) -> None:
    name = f"localhost/pollinator-tiny-{uuid.uuid4().hex[:8]}:test"
    tiny_image(docker_engine, name)
    image_dir = tmp_path / "sif"
    made = SlurmProject(tmp_path / "demo", slurm_cluster, name, image_dir)
    try:
        made.pristine = made.pristine.replace("cmd: python3", "cmd: echo from the tiny image")
        made.configure(source='""', cpu="500m")
        runs = [made.start(*made.run_args()) for _ in range(2)]
        results = [run.finish(timeout=240) for run in runs]
        made.configure(source='""', cpu="500m", rebuildImage="true")
        again = made.cli(*made.run_args(), timeout=240)
        assert again.returncode == 0, again.stderr
        rebuilt = again.stdout
    finally:
        made.cli("executor", "stop", "--backend", "slurm")
        docker_engine.client.images.remove(name, force=True)
    outputs = "".join(out for _, out, _ in results)
    for code, out, err in results:
        assert code == 0, err + out
        assert "from the tiny image" in out
    assert outputs.count(f": converting docker-daemon:{name} to ") == 1
    assert len(list(image_dir.glob("*.sif"))) == 1
    assert rebuilt.count(f": converting docker-daemon:{name} to ") == 1  # rebuildImage: true
