"""Signatures, authorisation and secrecy: what the simulator refuses, with the official wording."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from sim_fixtures import RawRpc, RpcError, SimColony, sim_colony, simulator  # noqa: F401

from pollinator_core.colonies.crypto import generate_private_key, sign

pytestmark = pytest.mark.timeout(60)

_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _spec(colony: str) -> dict[str, object]:
    return {"conditions": {"colonyname": colony, "executortype": "container-executor"}}


def _refused(raw: RawRpc, body: bytes, status: int, message: str) -> None:
    reply = raw.send(body)
    assert (reply.status, reply.error, reply.payload_type) == (status, True, "error")
    assert reply.payload == {"status": status, "message": message}


def _submit_body(colony: str, prvkey: str | None) -> bytes:
    return RawRpc.envelope({"msgtype": "submitfuncspecmsg", "spec": _spec(colony)}, prvkey)


def test_unsigned_request(sim_colony: SimColony) -> None:  # noqa: F811
    _refused(sim_colony.raw, _submit_body(sim_colony.colony, None), 403, "Invalid signature length")


def test_tampered_payload_recovers_a_stranger(sim_colony: SimColony) -> None:  # noqa: F811
    envelope = json.loads(_submit_body(sim_colony.colony, sim_colony.keys.prvkey))
    msg = json.loads(base64.b64decode(envelope["payload"]))
    msg["spec"]["priority"] = 10  # change what was signed, keep the signature
    envelope["payload"] = base64.b64encode(json.dumps(msg).encode()).decode()
    _refused(
        sim_colony.raw,
        json.dumps(envelope).encode(),
        403,
        f"Access denied, not a member of Colony with name <{sim_colony.colony}>",
    )


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        ("zz" * 65, "encoding/hex: invalid byte: U+007A 'z'"),
        ("0" * 129, "encoding/hex: odd length hex string"),
        ("00" * 64, "Invalid signature length"),
        ("00" * 65, "Failed to recover public key: invalid signature"),
    ],
)
def test_malformed_signatures(sim_colony: SimColony, signature: str, message: str) -> None:  # noqa: F811
    envelope = json.loads(_submit_body(sim_colony.colony, sim_colony.keys.prvkey))
    envelope["signature"] = signature
    _refused(sim_colony.raw, json.dumps(envelope).encode(), 403, message)


def test_high_s_signature_is_refused(sim_colony: SimColony) -> None:  # noqa: F811
    envelope = json.loads(_submit_body(sim_colony.colony, sim_colony.keys.prvkey))
    raw = bytes.fromhex(envelope["signature"])
    s = _N - int.from_bytes(raw[32:64], "big")  # the malleable twin of a valid signature
    envelope["signature"] = (raw[:32] + s.to_bytes(32, "big") + bytes([raw[64] ^ 1])).hex()
    _refused(
        sim_colony.raw,
        json.dumps(envelope).encode(),
        403,
        "Failed verify signature: Signature s value is over half the order",
    )


def test_foreign_keys(sim_colony: SimColony) -> None:  # noqa: F811
    c, raw = sim_colony.colony, sim_colony.raw
    stranger = generate_private_key()
    not_member = f"Access denied, not a member of Colony with name <{c}>"
    _refused(raw, _submit_body(c, stranger), 403, not_member)
    # The colony owner is not a member either.
    _refused(raw, _submit_body(c, sim_colony.keys.colony_prvkey), 403, not_member)
    colonies = RawRpc.envelope({"msgtype": "getcoloniesmsg"}, sim_colony.keys.colony_prvkey)
    _refused(raw, colonies, 403, "Access denied, not server owner")
    approve = RawRpc.envelope(
        {"msgtype": "approveexecutormsg", "colonyname": c, "executorname": "sim-executor"},
        sim_colony.keys.prvkey,
    )
    _refused(raw, approve, 403, "Access denied, not colony owner")


def test_pending_executor_cannot_assign(sim_colony: SimColony) -> None:  # noqa: F811
    pending = sim_colony.add_executor("newcomer", approved=False)
    sim_colony.rpc(sim_colony.keys.prvkey, "submitfuncspecmsg", spec=_spec(sim_colony.colony))
    with pytest.raises(RpcError) as err:
        sim_colony.rpc(pending, "assignprocessmsg", colonyname=sim_colony.colony, timeout=-1)
    assert err.value.status == 403
    assert err.value.message == (
        f"Access denied, not a member of Colony with name <{sim_colony.colony}>"
    )


def test_only_the_assigned_executor_may_close_or_log(sim_colony: SimColony) -> None:  # noqa: F811
    c, user = sim_colony.colony, sim_colony.keys.prvkey
    other = sim_colony.add_executor("other")
    sim_colony.rpc(user, "submitfuncspecmsg", spec=_spec(c))
    process = sim_colony.rpc(
        sim_colony.executor_prvkey, "assignprocessmsg", colonyname=c, timeout=5
    )
    pid = process["processid"]
    refusals = {
        "closesuccessfulmsg": "Failed to close process as successful, not allowed to close "
        "process as successful",
        "closefailedmsg": "Failed to close process as failed, not allowed to close process as "
        "failed",
        "addlogmsg": "Failed to add log, not allowed to add log, only the assigned Executor may "
        "att logs",
        "setoutputmsg": "Failed to close process as successful, not allowed to close process as "
        "successful",
    }
    for intruder in (other, user):
        for msgtype, message in refusals.items():
            with pytest.raises(RpcError) as err:
                sim_colony.rpc(intruder, msgtype, processid=pid, message="x", out=[], errors=[])
            assert (err.value.status, err.value.message) == (403, message)
        with pytest.raises(RpcError, match="only executor with id") as err:
            sim_colony.rpc(
                intruder, "addattributemsg", attribute={"targetid": pid, "key": "k", "value": "v"}
            )
    assert sim_colony.rpc(user, "getlogsmsg", colonyname=c, processid=pid, count=10) is None
    sim_colony.rpc(sim_colony.executor_prvkey, "closesuccessfulmsg", processid=pid, out=[])
    assert sim_colony.rpc(user, "getprocessmsg", processid=pid)["state"] == 2


def test_other_colonies_are_out_of_reach(sim_colony: SimColony) -> None:  # noqa: F811
    other = sim_colony.sim.bootstrap("elsewhere")
    mine = sim_colony.rpc(
        sim_colony.keys.prvkey, "submitfuncspecmsg", spec=_spec(sim_colony.colony)
    )
    with pytest.raises(RpcError, match="not a member of Colony with name <test>"):
        sim_colony.rpc(other.prvkey, "getprocessmsg", processid=mine["processid"])
    with pytest.raises(RpcError, match="not a member"):
        sim_colony.rpc(
            other.prvkey, "getprocessesmsg", colonyname=sim_colony.colony, count=10, state=0
        )


def test_no_private_key_leaks(
    sim_colony: SimColony,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Run every kind of call, failures included, and look for any key in replies and logs."""
    caplog.set_level(logging.DEBUG)
    c, keys, exe = sim_colony.colony, sim_colony.keys, sim_colony.executor_prvkey
    secrets = [keys.server_prvkey, keys.colony_prvkey, keys.prvkey, exe]
    replies: list[bytes] = []

    def call(prvkey: str | None, msg: dict[str, object]) -> None:
        replies.append(sim_colony.raw.send(RawRpc.envelope(msg, prvkey)).raw)

    call(keys.prvkey, {"msgtype": "submitfuncspecmsg", "spec": _spec(c)})
    call(exe, {"msgtype": "assignprocessmsg", "colonyname": c, "timeout": 5})
    pid = json.loads(base64.b64decode(json.loads(replies[-1])["payload"]))["processid"]
    call(exe, {"msgtype": "addlogmsg", "processid": pid, "message": "hello"})
    call(keys.prvkey, {"msgtype": "getlogsmsg", "colonyname": c, "processid": pid, "count": 5})
    call(exe, {"msgtype": "closesuccessfulmsg", "processid": pid, "out": []})
    call(keys.server_prvkey, {"msgtype": "getcoloniesmsg"})
    call(keys.server_prvkey, {"msgtype": "getstatisticsmsg"})
    call(keys.colony_prvkey, {"msgtype": "getexecutorsmsg", "colonyname": c})  # refused
    call(None, {"msgtype": "getprocessmsg", "processid": pid})  # unsigned
    call(generate_private_key(), {"msgtype": "nosuchmsg"})
    bad = json.loads(RawRpc.envelope({"msgtype": "getcolonymsg"}, keys.prvkey))
    bad["signature"] = sign("something else", keys.prvkey)
    replies.append(sim_colony.raw.send(json.dumps(bad).encode()).raw)
    text = b"\n".join(replies).decode() + "\n".join(r.getMessage() for r in caplog.records)
    decoded = "\n".join(
        base64.b64decode(json.loads(r)["payload"]).decode(errors="replace") for r in replies
    )
    for secret in secrets:
        assert secret not in text and secret not in decoded
