"""Setting a simulator up for use: the keys of a development stack and the colony they own.

``bootstrap`` writes straight into the simulator's state (on its event-loop thread, before or
while it serves) and is idempotent: run it again with the same keys and nothing changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pollinator_core.colonies.crypto import generate_private_key, id_from_private_key
from pollinator_core.colonies.models import ExecutorState

from .colony_handlers import executor_doc
from .server import Simulator
from .store import Doc
from .wire import ApiError

MEMBER_NAME = "pollinator"


@dataclass(frozen=True)
class DevKeys:
    """Keys of a bootstrapped colony. ``prvkey`` belongs to a member (a user) of the colony."""

    server_prvkey: str
    colony_name: str
    colony_prvkey: str
    prvkey: str

    @property
    def server_id(self) -> str:
        return id_from_private_key(self.server_prvkey)

    @property
    def colony_id(self) -> str:
        return id_from_private_key(self.colony_prvkey)

    @property
    def member_id(self) -> str:
        return id_from_private_key(self.prvkey)

    @classmethod
    def generate(cls, colony_name: str = "dev") -> DevKeys:
        return cls(
            generate_private_key(), colony_name, generate_private_key(), generate_private_key()
        )

    def environment(self, host: str, port: int) -> dict[str, str]:
        """The variables the official tools (and Pollinator) read to reach this colony."""
        return {
            "COLONIES_SERVER_HOST": host,
            "COLONIES_SERVER_PORT": str(port),
            "COLONIES_SERVER_TLS": "false",
            "COLONIES_SERVER_ID": self.server_id,
            "COLONIES_SERVER_PRVKEY": self.server_prvkey,
            "COLONIES_COLONY_NAME": self.colony_name,
            "COLONIES_COLONY_ID": self.colony_id,
            "COLONIES_COLONY_PRVKEY": self.colony_prvkey,
            "COLONIES_PRVKEY": self.prvkey,
        }

    def export_lines(self, host: str, port: int) -> list[str]:
        return [f"export {k}={v}" for k, v in self.environment(host, port).items()]


ENV_NAMES = ("COLONIES_COLONY_NAME", "COLONIES_COLONY_PRVKEY", "COLONIES_PRVKEY")


def keys_from_env(env: Mapping[str, str]) -> DevKeys | None:
    """DevKeys from COLONIES_SERVER_PRVKEY, COLONIES_COLONY_NAME, COLONIES_COLONY_PRVKEY and
    COLONIES_PRVKEY; None when none of them is set; ValueError when only some are."""
    names = ("COLONIES_SERVER_PRVKEY", *ENV_NAMES)
    present = [n for n in names if env.get(n)]
    if not present:
        return None
    missing = [n for n in names if not env.get(n)]
    if missing:
        raise ValueError(
            "set all of "
            + ", ".join(names)
            + " or none of them (missing: "
            + ", ".join(missing)
            + ")"
        )
    return DevKeys(
        env["COLONIES_SERVER_PRVKEY"],
        env["COLONIES_COLONY_NAME"],
        env["COLONIES_COLONY_PRVKEY"],
        env["COLONIES_PRVKEY"],
    )


def bootstrap(sim: Simulator, keys: DevKeys, member_name: str = MEMBER_NAME) -> None:
    """Create the colony (owned by the colony key) and make ``keys.prvkey`` a member of it as a
    user. Must run on the simulator's event-loop thread (or before it serves)."""
    state = sim.state
    colony = state.colonies.get(keys.colony_name)
    if colony is None:
        state.save_colony({"colonyid": keys.colony_id, "name": keys.colony_name})
    elif colony["colonyid"] != keys.colony_id:
        raise ApiError(
            400, f"A Colony with name <{keys.colony_name}> already exists with another key"
        )
    member = keys.member_id
    executor = state.executor_by_id.get(member)
    is_executor = executor is not None and executor["colonyname"] == keys.colony_name
    if not is_executor and state.user_by_id(keys.colony_name, member) is None:
        name = member_name
        if (keys.colony_name, name) in state.users:
            name = f"{member_name}-{member[:8]}"
        state.save_user(
            {
                "colonyname": keys.colony_name,
                "userid": member,
                "name": name,
                "email": "",
                "phone": "",
            }
        )
    state.commit()


def register_executor(
    sim: Simulator,
    colony_name: str,
    prvkey: str,
    name: str,
    executortype: str,
    *,
    approved: bool = True,
) -> Doc:
    """Register (and by default approve) an executor signing with ``prvkey``, as the colony
    owner would through addexecutormsg + approveexecutormsg. Idempotent for the same key."""
    state = sim.state
    executor_id = id_from_private_key(prvkey)
    doc = state.executors.get((colony_name, name))
    if doc is not None and doc["executorid"] != executor_id:
        raise ApiError(400, f"Executor with name <{name}> in Colony <{colony_name}> already exists")
    if doc is None:
        doc = executor_doc(executor_id, executortype, name, colony_name)
    if approved:
        doc["state"] = ExecutorState.APPROVED
    state.save_executor(doc)
    state.commit()
    return doc
