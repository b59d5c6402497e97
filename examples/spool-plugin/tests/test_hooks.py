"""The plugin's hooks alone, through the kit's plugin manager with nothing else registered."""

from __future__ import annotations

import pollinator_spool.plugin
import pytest

from pollinator_core.api import Job, Mount, UsageError
from pollinator_core.testing import only_plugins


def test_registers_its_executor_type_and_settings() -> None:
    hooks = only_plugins(spool=pollinator_spool.plugin)
    assert list(hooks.executor_types()) == ["spool"]
    assert list(hooks.backends()) == ["spool"]
    settings = hooks.settings()["spool"].load(options={"dir": "/srv/spool"})
    assert settings.dir == "/srv/spool"


def test_a_misspelt_setting_is_refused_with_a_suggestion() -> None:
    section = only_plugins(spool=pollinator_spool.plugin).settings()["spool"]
    with pytest.raises(UsageError, match=r"unknown setting 'heartbeat' of spool\. Did you mean"):
        section.load(options={"heartbeat": "5"})


def test_render_shows_the_job_files_with_host_paths_and_no_user_text_in_the_wrapper() -> None:
    kind = only_plugins(spool=pollinator_spool.plugin).executor_types()["spool"]
    settings = pollinator_spool.plugin.SpoolSettings(dir="/srv/spool")
    job = Job(
        "p1",
        "",
        "python3 /cfs/p/src/main.py '$(reboot)'",
        env={"PROJECT_DIR": "/cfs/p"},
        mounts=(Mount("/data/exec/p1", "/cfs"),),
        workdir="/cfs/p/src",
    )
    assert kind.render is not None
    files = kind.render(settings, job)
    where = f"/srv/spool/jobs/{job.name}"
    assert sorted(files) == [f"{where}/command.sh", f"{where}/job.json", f"{where}/wrapper.sh"]
    assert files[f"{where}/command.sh"] == "python3 /data/exec/p1/p/src/main.py '$(reboot)'\n"
    assert '"PROJECT_DIR": "/data/exec/p1/p"' in files[f"{where}/job.json"]
    assert '"workdir": "/data/exec/p1/p/src"' in files[f"{where}/job.json"]
    assert "reboot" not in files[f"{where}/wrapper.sh"]
