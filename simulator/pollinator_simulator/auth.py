"""Who signed a request, and what that signer may do.

The server trusts nothing but the ID recovered from the signature. The checks and their error
messages follow the official server's validator: server owner, colony owner, and colony members
(approved executors, or users, who need no approval). The colony owner is not a member.
"""

from __future__ import annotations

from pollinator_core.colonies import crypto
from pollinator_core.colonies.models import ExecutorState

from .store import State
from .wire import ApiError

_HEX = frozenset("0123456789abcdefABCDEF")


def _hex_error(signature: str) -> str:
    """Go's hex.DecodeString error for text that is not an even number of hex digits."""
    for ch in signature:
        if ch not in _HEX:
            return f"encoding/hex: invalid byte: U+{ord(ch):04X} {ch!r}"
    return "encoding/hex: odd length hex string"


def recover_signer(payload: str, signature: str) -> str:
    """The signer's ID, or a 403 worded like the official server's signature errors."""
    if len(signature) % 2 or not _HEX.issuperset(signature):
        raise ApiError(403, _hex_error(signature))
    if len(signature) != 130:
        raise ApiError(403, "Invalid signature length")
    try:
        return crypto.recover_id(payload, signature)
    except crypto.CryptoError as err:
        if "high s" in str(err):
            raise ApiError(
                403, "Failed verify signature: Signature s value is over half the order"
            ) from None
        raise ApiError(403, "Failed to recover public key: invalid signature") from None


class Authorizer:
    def __init__(self, state: State, server_id: str) -> None:
        self.state = state
        self.server_id = server_id

    def require_server_owner(self, signer: str) -> None:
        if signer != self.server_id:
            raise ApiError(403, "Access denied, not server owner")

    def require_colony_owner(self, signer: str, colony_name: str) -> None:
        if colony_name == "":
            raise ApiError(403, "Empty Colony name")
        colony = self.state.colonies.get(colony_name)
        if colony is None:
            raise ApiError(403, f"Colony with name <{colony_name}> does not exists")
        if signer != colony["colonyid"]:
            raise ApiError(403, "Access denied, not colony owner")

    def require_member(self, signer: str, colony_name: str, *, approved: bool = True) -> None:
        """An executor of the colony (approved, unless ``approved`` is False) or a user of it.
        As in the official server, a failed executor check is reported through the user check."""
        colony = self.state.colonies.get(colony_name)
        if colony is None:
            raise ApiError(403, f"Colony with name <{colony_name}> does not exists")
        executor = self.state.executor_by_id.get(signer)
        if (
            executor is not None
            and executor["colonyname"] == colony_name
            and (not approved or executor["state"] == ExecutorState.APPROVED)
        ):
            return
        if self.state.user_by_id(colony_name, signer) is None:
            raise ApiError(403, f"Access denied, not a member of Colony with name <{colony_name}>")
