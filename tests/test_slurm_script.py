"""The Slurm plugin without a cluster: the files a job is made of (golden files, hostile
inputs read back by a real ``sh``), the settings' checks, host lists, and what Slurm's answers
mean. The cluster itself: tests/test_slurm_cluster.py.

Regenerate the golden files after an intended change with
``POLLINATOR_REGEN_GOLDEN=1 pytest tests/test_slurm_script.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pollinator_slurm import commands, images, nodelist, script, states
from pollinator_slurm.plugin import render
from pollinator_slurm.settings import SECTION, SlurmSettings, check_option

from pollinator_core.api import Job, JobFailed, JobState, Reason, UsageError
from pollinator_core.colonies.models import Conditions, Fs, FunctionSpec, Gpu, Process
from pollinator_core.executor.translate import job_from_process

GOLDEN = Path(__file__).parent / "golden" / "slurm"
REGEN_ENV = "POLLINATOR_REGEN_GOLDEN"
PID = "0123456789abcdef" * 4
#: every character a shell might take for syntax, and some it might mangle
HOSTILE = 'it\'s "quoted" $HOME `id` $(id) ; rm -rf / & | > < \\ \n second line ünïcødé ✓ *'


def process(cmd: str, args: list[object], **conditions: object) -> Process:
    given: dict[str, object] = {"cpu": "1000m", "mem": "1000Mi", "nodes": 1, "processespernode": 1}
    given.update(conditions)
    spec = FunctionSpec(
        funcname="execute",
        kwargs={
            "cmd": cmd,
            "args": args,
            "docker-image": "/shared/images/tool.sif",
            "init-cmd": "",
            "walltime": 600,
        },
        maxexectime=4200,
        conditions=Conditions(executortype="container-executor", walltime=4200, **given),  # type: ignore[arg-type]
        fs=Fs(mount="/cfs"),
        env={"PROJECT_DIR": "/cfs/pollinator/demo/snap"},
    )
    return Process(processid=PID, spec=spec)


def plain_job() -> Job:
    return job_from_process(process("python3", ["/cfs/src/main.py"]), Path("/shared/fs/p/a1"))


def hostile_job() -> Job:
    proc = process("printf '%s|' \"$GREETING\"", [HOSTILE, "$PROJECT_DIR", 7, {"a": 1}])
    proc.spec.kwargs["init-cmd"] = "export GREETING='hé; `x`'"
    proc.spec.env.update({"HOSTILE": HOSTILE, "EMPTY": "", "UNICODE": "ünï ✓"})
    return job_from_process(proc, Path("/shared/fs dir/ünï cødé/p/a1"))


def multinode_job() -> Job:
    gpu = Gpu(name="a100", count=2)
    args: list[object] = ["-m", "torch.distributed.run", "train.py"]
    proc = process("python3", args, nodes=2, processespernode=4, gpu=gpu, cpu="2500m", mem="4Gi")
    return job_from_process(proc, Path("/shared/fs/p/a1"))


SITE = SlurmSettings(
    partition="gpu",
    account="proj-123",
    qos="normal",
    reservation="maint_2",
    sbatch_options=("--constraint=a100&ib", "--exclusive", "--mail-type=END"),
    modules=("apptainer/1.4", "cuda"),
    requeue=True,
    grace=45.5,
    container="singularity",
    gpu_vendor="amd",
    image_dir="/shared/images",
)


def bare_job() -> Job:
    """As pycolonies submits one: no fs section, no walltime."""
    proc = process("echo", ["hi"])
    proc.spec.fs = Fs()
    proc.spec.kwargs.pop("walltime")
    proc.spec.conditions.walltime = 0
    return job_from_process(proc, Path("/shared/fs/p/a1"))


CASES = {
    "plain": (plain_job, SlurmSettings(image_dir="/shared/images")),
    "hostile": (hostile_job, SlurmSettings(image_dir="/shared/images")),
    "multinode": (multinode_job, SITE),
    "gpus_per_node": (multinode_job, SlurmSettings(gpu_style="gpus-per-node")),
    "no_fs": (bare_job, SlurmSettings(job_dir="/shared/jobs", image_dir="/shared/images")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_files(case: str) -> None:
    make, settings = CASES[case]
    rendered = render(settings, make())
    folder = GOLDEN / case
    if os.environ.get(REGEN_ENV):
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in rendered.items():
            (folder / name).write_text(text, encoding="utf-8")
    expected = {p.name: p.read_text(encoding="utf-8") for p in folder.glob("*")}
    assert rendered == expected, (
        f"the rendered job differs from {folder}. If the change is intended, regenerate with "
        f"{REGEN_ENV}=1 pytest tests/test_slurm_script.py and review the diff."
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_script_is_valid_sh(case: str, tmp_path: Path) -> None:
    make, settings = CASES[case]
    for name, text in render(settings, make()).items():
        if name.endswith(".sh"):
            (tmp_path / name).write_text(text, encoding="utf-8")
            done = subprocess.run(["sh", "-n", tmp_path / name], capture_output=True, text=True)
            assert done.returncode == 0, f"{case}/{name}: {done.stderr}"


def test_the_job_name_and_comment_find_the_job_again() -> None:
    job = plain_job()
    text = render(SlurmSettings(), job)["job.sh"]
    assert f'#SBATCH --job-name="{job.name}"' in text
    assert f'#SBATCH --comment="{PID}"' in text
    assert job.name == render(SlurmSettings(), plain_job())["job.sh"].split('"')[1]


def test_hostile_values_come_out_of_sh_byte_for_byte(tmp_path: Path) -> None:
    """The environment and the command as a real sh reads them (what container.sh does)."""
    job = hostile_job()
    rendered = script.render(job, SlurmSettings(), script.JobFiles(tmp_path), "/x.sif")
    for name in ("env.sh", "cmd.sh"):
        (tmp_path / name).write_text(rendered[name], encoding="utf-8")
    dump = "import json, os; print(json.dumps(dict(os.environ)))"
    env = subprocess.run(
        ["sh", "-c", f'. "$1"; exec python3 -c {json.dumps(dump)}', "sh", tmp_path / "env.sh"],
        env={"PATH": os.environ["PATH"]}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    seen = json.loads(env.stdout)
    assert seen["HOSTILE"] == HOSTILE
    assert seen["UNICODE"] == "ünï ✓" and seen["EMPTY"] == ""
    assert seen["PROJECT_DIR"] == "/cfs/pollinator/demo/snap"
    run = subprocess.run(
        ["sh", tmp_path / "cmd.sh"], capture_output=True, text=True, check=True,
        env={"PATH": os.environ["PATH"], "PROJECT_DIR": "/p"},
    )  # fmt: skip
    # init-cmd's export reaches the command; every argument arrives as written.
    assert run.stdout == f'hé; `x`|{HOSTILE}|$PROJECT_DIR|7|{{"a": 1}}|'


def test_arguments_stay_single_arguments_through_the_command_file(tmp_path: Path) -> None:
    proc = process("python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))'", [HOSTILE, ""])
    job = job_from_process(proc, tmp_path)
    (tmp_path / "cmd.sh").write_text(script.command_file(job), encoding="utf-8")
    done = subprocess.run(["sh", tmp_path / "cmd.sh"], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == [HOSTILE, ""]


def test_a_big_value_travels_in_the_file_and_too_big_a_one_is_refused(tmp_path: Path) -> None:
    big = "x" * 120_000 + HOSTILE
    proc = process("true", [])
    proc.spec.env["BIG"] = big
    job = job_from_process(proc, tmp_path)
    text = script.env_file(job)
    (tmp_path / "env.sh").write_text(text, encoding="utf-8")
    done = subprocess.run(
        ["sh", "-c", '. "$1"; exec python3 -c "import os; print(len(os.environ[\'BIG\']))"',
         "sh", tmp_path / "env.sh"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert int(done.stdout) == len(big)
    # Every command line stays short, whatever the environment holds.
    rendered = script.render(job, SlurmSettings(), script.JobFiles(tmp_path), "/x.sif")
    assert all(
        len(line) < 4096 for n, t in rendered.items() if n != "env.sh" for line in t.split("\n")
    )

    proc.spec.env["BIG"] = "y" * 300_000
    with pytest.raises(JobFailed, match=r"BIG is 300005 bytes; Linux starts no program"):
        script.env_file(job_from_process(proc, tmp_path))
    proc.spec.env.update({f"V{i}": "z" * 100_000 for i in range(12)})
    proc.spec.env.pop("BIG")
    with pytest.raises(JobFailed, match=r"the job's environment is \d+ bytes"):
        script.env_file(job_from_process(proc, tmp_path))


def test_executor_secrets_never_reach_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {
        "COLONIES_PRVKEY": "colonies-private-key-value",
        "COLONIES_COLONY_PRVKEY": "colony-owner-key-value",
        "AWS_S3_SECRETKEY": "s3-secret-value",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-value",
        "EXECUTOR_PRVKEY": "executor-key-value",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    proc = process("env", [])
    proc.spec.env.update(secrets)  # even a spec that asks for them does not get them
    rendered = render(SlurmSettings(), job_from_process(proc, Path("/shared/fs/p/a1")))
    everything = "\n".join(rendered.values())
    assert not [v for v in secrets.values() if v in everything]
    assert "COLONIES_PROCESS_ID" in rendered["env.sh"]


def test_the_batch_shell_gets_only_what_finds_srun_and_apptainer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """sbatch's environment is the batch job's (--export=ALL): an allowlist of the executor's,
    never a key, a token or a variable that steers Slurm; the other commands keep the rest."""
    for name in list(os.environ):
        monkeypatch.delenv(name)
    kept = {
        "PATH": "/opt/apptainer/bin:/usr/bin:/bin",
        "HOME": "/home/u",
        "LC_ALL": "C.UTF-8",
        "SLURM_CONF": "/etc/slurm/slurm.conf",
        "MODULEPATH": "/etc/modules",
        "APPTAINER_CACHEDIR": "/scratch/cache",
    }
    dropped = {
        "COLONIES_PRVKEY": "k",
        "AWS_S3_SECRETKEY": "s",
        "SITE_API_TOKEN": "t",
        "APPTAINER_DOCKER_PASSWORD": "p",
        "SINGULARITY_AUTH_TOKEN": "a",
        "SBATCH_PARTITION": "other",
        "SLURM_JOB_ID": "12",
        "PYTHONPATH": "/somewhere",
    }
    for name, value in {**kept, **dropped}.items():
        monkeypatch.setenv(name, value)
    assert commands.command_env("sbatch") == kept
    others = commands.command_env("squeue")
    assert others["PYTHONPATH"] == "/somewhere" and others["SLURM_TIME_FORMAT"] == "standard"
    assert not {"COLONIES_PRVKEY", "AWS_S3_SECRETKEY", "SBATCH_PARTITION", "SLURM_JOB_ID"} & set(
        others
    )


def test_time_limit_leaves_the_walltime_to_the_wrapper() -> None:
    # Slurm's --time: walltime + grace, whole minutes, plus one; the pre-signal lands after it.
    assert script.time_limit(600, 30) == 12
    assert script.time_limit(5, 30) == 2
    assert script.time_limit(3600, 0.5) == 62
    for walltime in (1, 59, 60, 61, 600, 7200):
        limit = script.time_limit(walltime, 30) * 60
        assert limit - script.signal_lead(30) - 30 >= walltime  # Slurm signals up to 30 s early


def test_paths_apptainer_or_slurm_cannot_take_are_refused() -> None:
    for where in ("/shared/a,b", "/shared/a:b", '/shared/a"b', "/shared/100%"):
        job = job_from_process(process("true", []), Path(where) / "p")
        with pytest.raises(JobFailed, match=r"--fs-dir"):
            render(SlurmSettings(), job)


@pytest.mark.parametrize(
    ("option", "error"),
    [
        ("--constraint=a100", None),
        ("--exclusive", None),
        ("--time=10", r"comes from the job's conditions"),
        ("--partition=x", r"use the partition setting"),
        ("--output=/tmp/x", r"Pollinator sets it"),
        ("--gres=gpu:1", r"gpu_style"),
        ("--constraint", r"needs a value"),
        ("--constraint=a b", r"no spaces"),
        ("--constraint=$(id)", r"no spaces, quotes or \$"),
        ('--mail-user="x"', r"quotes"),
        ("-C a100", r"long form"),
        ("--frobnicate=1", r"not an sbatch option Pollinator passes through. Allowed: "),
    ],
)
def test_extra_sbatch_options_are_checked(option: str, error: str | None) -> None:
    if error is None:
        assert check_option(option) == option
    else:
        with pytest.raises(ValueError, match=error):
            check_option(option)


def test_settings_load_strictly_from_every_source() -> None:
    loaded = SECTION.load(
        None,
        {"partition": "gpu", "modules": "gcc/12,apptainer", "grace": "10"},
        env={"POLLINATOR_SLURM_SBATCH_OPTIONS": "--constraint=a100 --exclusive"},
    )
    assert (loaded.partition, loaded.modules, loaded.grace) == (
        "gpu",
        ("gcc/12", "apptainer"),
        10.0,
    )
    assert loaded.sbatch_options == ("--constraint=a100", "--exclusive")
    bad = {
        "partition": ("gpu; rm", r"not a partition"),
        "modules": ("gcc 12", r"not a module name"),
        "grace": ("0", r"more than 0 seconds"),
        "sbatch_options": ("--time=5", r"comes from the job's conditions"),
        "gpu_style": ("gpus", r"must be one of gres, gpus-per-node"),
        "partiton": ("x", r"Did you mean 'partition'"),
    }
    for key, (value, error) in bad.items():
        with pytest.raises(UsageError, match=error):
            SECTION.load(None, {key: value}, env={})


def test_gpu_names_are_checked() -> None:
    proc = process("true", [], gpu=Gpu(name="a100;x", count=1))
    with pytest.raises(JobFailed, match="not a GPU model name"):
        render(SlurmSettings(), job_from_process(proc, Path("/shared/p")))


# --- host lists --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hostlist", "hosts"),
    [
        ("localhost", ["localhost"]),
        ("n[1-3]", ["n1", "n2", "n3"]),
        ("n[08-11]", ["n08", "n09", "n10", "n11"]),
        ("n[8-11]", ["n8", "n9", "n10", "n11"]),
        ("gpu[001-002,010],cpu7", ["gpu001", "gpu002", "gpu010", "cpu7"]),
        ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
        ("a[1,3-4]-ib,b-[09-10]x", ["a1-ib", "a3-ib", "a4-ib", "b-09x", "b-10x"]),
        ("", []),
    ],
)
def test_host_lists_expand_as_slurm_does(hostlist: str, hosts: list[str]) -> None:
    assert nodelist.expand(hostlist) == hosts


@pytest.mark.slurm
def test_host_lists_agree_with_scontrol() -> None:
    """Slurm's own expansion (scontrol needs no controller for this)."""
    hostlist = "gpu[001-003,010],cpu7,x[1-2]y[08-09],n[8-11],r[1-2]n[1-2]"
    done = subprocess.run(
        ["scontrol", "show", "hostnames", hostlist], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert nodelist.expand(hostlist) == done.stdout.split()


@pytest.mark.parametrize("bad", ["n[1-", "n1]", "n[a-b]", "n[5-3]", "n[[1]]", "n[1-999999999]"])
def test_malformed_host_lists_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        nodelist.expand(bad)


# --- what Slurm's answers mean ----------------------------------------------------------------


def test_squeue_lines_become_live_states_and_sentences() -> None:
    out = (
        "11|PENDING|Resources|\n"
        "12|PENDING|QOSMaxJobsPerUserLimit|\n"
        "13|RUNNING|None|node[01-02]\n"
        "14|COMPLETING|None|node01\n"
        "15|OUT_OF_MEMORY|OutOfMemory|node01\n"
        "16|REQUEUE_HOLD|launch failed requeued held|\n"
    )
    entries = states.parse_squeue(out)
    seen = {k: e.scheduler_job() for k, e in entries.items()}
    assert seen["11"].state is JobState.PENDING
    assert seen["11"].waiting == "waiting for free resources (CPUs, memory, GPUs or nodes) " \
        "(Slurm: Resources)"  # fmt: skip
    assert seen["12"].waiting == "a limit of its QOS is reached (Slurm: QOSMaxJobsPerUserLimit)"
    assert seen["13"].state is seen["14"].state is JobState.RUNNING
    assert states.node_names(entries["13"].nodes) == ["node01", "node02"]
    assert seen["15"].state is JobState.ENDED
    assert seen["16"].waiting.startswith("requeue hold; its launch failed")


# As Slurm 22.05 prints them (tests/infra/test_components.py lists what each way of ending gives).
SACCT = """\
21|COMPLETED|0:0|2026-12-03T11:13:13|n1
21.batch|COMPLETED|0:0|2026-12-03T11:13:13|n1
22|FAILED|1:0|2026-12-03T11:13:09|n1
22.batch|FAILED|1:0|2026-12-03T11:13:09|n1
22.0|OUT_OF_MEMORY|0:125|2026-12-03T11:13:09|n1
23|TIMEOUT|0:0|2026-12-03T10:58:25|n1
24|CANCELLED by 0|0:0|2026-12-03T11:02:53|None assigned
25|NODE_FAIL|0:0|2026-12-03T11:02:53|n[1-2]
26|FAILED|72:0|2026-12-03T11:09:53|n1
27|RUNNING|0:0|Unknown|n1
28|FAILED|3:0|Unknown|n1
"""


def test_sacct_records_become_terminations() -> None:
    verdicts = states.parse_sacct(SACCT)
    assert verdicts["21"].succeeded
    assert verdicts["22"].reason is Reason.OOM  # the step's OOM, though the batch exited 1
    assert "step 22.0 State=OUT_OF_MEMORY" in verdicts["22"].evidence[0]
    assert verdicts["23"].reason is Reason.WALLTIME and verdicts["23"].exit_code is None
    assert verdicts["24"].reason is Reason.CANCELLED
    assert verdicts["24"].detail == "cancelled in Slurm (by 0)"
    assert verdicts["25"].reason is Reason.NODE_FAILURE
    assert verdicts["26"].exit_code == 72  # sacct's word (200 modulo 128): scontrol has better
    assert "27" not in verdicts and "28" not in verdicts  # no End yet: not final


def test_scontrol_records_carry_the_exact_exit_code() -> None:
    line = (
        "JobId=78 JobName=x UserId=root(0) JobState=FAILED Reason=NonZeroExitCode "
        "Dependency=(null) ExitCode=200:0 RunTime=00:00:01 EndTime=2026-12-03T11:09:53 "
        "NodeList=localhost WorkDir=/tmp/a b/JobState=RUNNING"
    )
    found = states.parse_scontrol(line)
    assert found is not None and found.exit_code == 200 and found.reason is Reason.EXIT
    timeout = states.parse_scontrol("JobId=9 JobState=TIMEOUT ExitCode=0:15 EndTime=2026-12-03T1")
    assert timeout is not None and timeout.reason is Reason.WALLTIME
    running = "JobId=9 JobState=RUNNING ExitCode=0:0 EndTime=2026-12-03T11:20:00"
    assert states.parse_scontrol(running) is None


# --- image references -------------------------------------------------------------------------


def test_sif_names_carry_the_digest_when_one_is_known() -> None:
    by_digest = images.planned_source("docker://ghcr.io/x/y@sha256:" + "ab" * 32, "auto")
    assert images.sif_name(by_digest) == "ghcr.io_x_y-abababababababab.sif"
    by_name = images.planned_source("python:3.12", "auto")
    assert by_name.ref == "docker://python:3.12" and not by_name.digest_known
    assert images.sif_name(by_name).startswith("python_3.12-name-")
    daemon = images.planned_source("python:3.12", "docker-daemon")
    assert daemon.ref == "docker-daemon:python:3.12"


def test_a_missing_sif_file_is_a_clear_failure(tmp_path: Path) -> None:
    cache = images.ImageCache(tmp_path, "apptainer", "auto")
    with pytest.raises(JobFailed, match="no such file"):
        cache.sif(str(tmp_path / "absent.sif"), rebuild=False, say=print)
    present = tmp_path / "tool.sif"
    present.write_bytes(b"SIF")
    assert cache.sif(str(present), rebuild=False, say=print) == present
    assert cache.conversions == 0


def test_the_dry_run_prints_the_sbatch_command_and_every_file(tmp_path: Path) -> None:
    made = subprocess.run(
        [str(Path(sys.executable).with_name("pollinator")), "new", str(tmp_path / "demo")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert made.returncode == 0
    done = subprocess.run(
        [str(Path(sys.executable).with_name("pollinator")), "run", "--dry-run", "--backend",
         "slurm", "-s", "slurm.partition=gpu", "--json"],
        cwd=tmp_path / "demo", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rendered = json.loads(done.stdout)["rendered"]
    assert list(rendered) == ["sbatch", "job.sh", "task.sh", "container.sh", "env.sh", "cmd.sh"]
    assert '#SBATCH --partition="gpu"' in rendered["job.sh"]
    assert '#SBATCH --time="12"' in rendered["job.sh"]  # walltime 600 s + grace 30 s
    assert not (tmp_path / "demo" / ".pollinator").exists()  # nothing started, nothing written
