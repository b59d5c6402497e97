"""The Colonies model round-trips the protocol's exact JSON and decodes Go-style."""

from __future__ import annotations

import json

import pytest

from pollinator_core.colonies.models import (
    Executor,
    ExecutorState,
    File,
    FunctionSpec,
    Log,
    ModelError,
    Process,
    ProcessState,
    Snapshot,
    dumps,
    from_dict,
    from_list,
    to_dict,
)

# A process as the official server serialises it (spec shape from the original Pollinator).
SERVER_PROCESS = {
    "processid": "a" * 64,
    "initiatorid": "b" * 64,
    "initiatorname": "alice",
    "assignedexecutorid": "",
    "isassigned": False,
    "state": 1,
    "prioritytime": 1700000000000000000,
    "submissiontime": "2026-11-25T07:00:00.123456789Z",
    "starttime": "0001-01-01T00:00:00Z",
    "endtime": "0001-01-01T00:00:00Z",
    "waitdeadline": "0001-01-01T00:00:00Z",
    "execdeadline": "0001-01-01T00:00:00Z",
    "retries": 0,
    "attributes": None,
    "spec": {
        "nodename": "",
        "funcname": "execute",
        "args": [],
        "kwargs": {"args": ["/cfs/main.py"], "cmd": "python3", "rebuild-image": False},
        "priority": 5,
        "maxwaittime": -1,
        "maxexectime": 630,
        "maxretries": 3,
        "conditions": {
            "colonyname": "dev",
            "executornames": None,
            "executortype": "container-executor",
            "dependencies": [],
            "nodes": 1,
            "cpu": "1000m",
            "processes": 0,
            "processespernode": 1,
            "mem": "1000Mi",
            "storage": "",
            "gpu": {"name": "", "mem": "", "count": 0, "nodecount": 0},
            "walltime": 600,
        },
        "label": "demo",
        "fs": {
            "mount": "/cfs",
            "snapshots": [
                {
                    "snapshotid": "s1",
                    "label": "/pollinator/demo/src",
                    "dir": "/pollinator/demo/s1/src",
                    "keepfiles": True,
                    "keepsnapshot": True,
                }
            ],
            "dirs": [
                {
                    "label": "/pollinator/demo/data",
                    "dir": "/pollinator/demo/data",
                    "keepfiles": True,
                    "onconflicts": {
                        "onstart": {"keeplocal": False},
                        "onclose": {"keeplocal": False},
                    },
                }
            ],
        },
        "env": {"PROJECT_DIR": "/cfs/pollinator/demo"},
    },
    "waitforparents": False,
    "parents": None,
    "children": None,
    "processgraphid": "",
    "in": None,
    "out": ["done", 3],
    "errors": None,
}


def test_process_decodes_server_json_with_nulls() -> None:
    p = from_dict(Process, SERVER_PROCESS)
    assert p.state is ProcessState.RUNNING
    assert p.attributes == [] and p.parents == [] and p.errors == [] and p.in_ == []
    assert p.out == ["done", 3]
    assert p.spec.conditions.executornames == []
    assert p.spec.fs.snapshots[0].keepsnapshot is True
    assert p.spec.fs.dirs[0].onconflicts.onstart.keeplocal is False
    assert p.spec.kwargs["rebuild-image"] is False


def test_process_round_trips_exact_field_names() -> None:
    encoded = to_dict(from_dict(Process, SERVER_PROCESS))
    assert set(encoded) == set(SERVER_PROCESS)
    assert set(encoded["spec"]) == set(SERVER_PROCESS["spec"])  # type: ignore[arg-type]
    assert encoded["in"] == [] and "in_" not in encoded

    # nulls become the zero value; everything else is the same, at every depth
    def without_nulls(a: object, b: object) -> None:
        if isinstance(b, dict):
            assert isinstance(a, dict)
            for key, value in b.items():
                if value is not None:
                    without_nulls(a[key], value)
        else:
            assert a == b

    without_nulls(encoded, SERVER_PROCESS)
    assert encoded["spec"]["conditions"]["executornames"] == []


def test_go_style_decoding_is_case_insensitive_and_ignores_unknown_keys() -> None:
    spec = from_dict(
        FunctionSpec,
        {"FuncName": "execute", "MaxRetries": 2, "channels": ["x"], "Conditions": {"CPU": "5m"}},
    )
    assert spec.funcname == "execute" and spec.maxretries == 2 and spec.conditions.cpu == "5m"


def test_map_keys_keep_their_case() -> None:
    spec = from_dict(FunctionSpec, {"env": {"Path_Like": "x"}, "kwargs": {"Docker-Image": "i"}})
    assert spec.env == {"Path_Like": "x"} and spec.kwargs == {"Docker-Image": "i"}


def test_enums_stay_typed_and_encode_as_ints() -> None:
    ex = from_dict(Executor, {"executorname": "e", "state": 1})
    assert ex.state is ExecutorState.APPROVED
    assert json.loads(dumps(ex))["state"] == 1


def test_lists_of_models_and_null_lists() -> None:
    logs = from_list(Log, [{"message": "hi\n", "timestamp": 1700000000123456789}])
    assert logs[0].timestamp == 1700000000123456789
    assert from_list(Snapshot, None) == []


def test_file_record_round_trip() -> None:
    record = {
        "fileid": "f",
        "colonyname": "dev",
        "label": "/pollinator/demo/src",
        "name": "main.py",
        "size": 12,
        "sequencenr": 7,
        "checksum": "ab" * 32,
        "checksumalg": "SHA256",
        "ref": {
            "protocol": "s3",
            "s3object": {
                "server": "127.0.0.1",
                "port": 7480,
                "tls": False,
                "accesskey": "",
                "secretkey": "",
                "region": "",
                "encryptionkey": "",
                "encryptionalg": "",
                "object": "ab" * 32,
                "bucket": "b",
            },
        },
        "added": "2026-11-25T07:00:00Z",
    }
    assert to_dict(from_dict(File, record)) == record


@pytest.mark.parametrize("bad", [[], "x", 3])
def test_non_object_is_a_type_error(bad: object) -> None:
    with pytest.raises(ModelError, match="expected a JSON object"):
        from_dict(Process, bad)


def test_container_where_a_string_belongs_is_refused() -> None:
    with pytest.raises(ModelError, match=r"expected str @ \$\.message"):
        from_dict(Log, {"message": {"nested": 1}})
