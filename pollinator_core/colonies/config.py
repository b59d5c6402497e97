"""Where the Colonies server is and who we sign as, read from the official environment variables.

The names are the ones the official CLI, executors and pycolonies read, so one shell setup
serves every tool: COLONIES_SERVER_HOST, COLONIES_SERVER_PORT (or COLONIES_SERVER_HTTP_PORT),
COLONIES_SERVER_TLS (or COLONIES_TLS), COLONIES_COLONY_NAME, COLONIES_PRVKEY,
COLONIES_COLONY_PRVKEY. COLONIES_SKIP_TLS_VERIFY mirrors the CLI's ``--skip-tls-verify``;
COLONIES_CA_FILE (ours) names a PEM bundle to trust instead of the system store.

Private keys are secrets: no repr, comparison or error message ever shows one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import attrs

from pollinator_core.errors import InfraError

DEFAULT_PORT = 50080
DEFAULT_TIMEOUT = 30.0
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


class ConfigError(InfraError):
    """The Colonies connection settings are missing or malformed (exit 3: misconfigured)."""


def check_private_key(value: str, what: str) -> None:
    """Refuse a malformed key, naming ``what`` (a variable or option) but never the value."""
    if not _HEX_KEY.fullmatch(value):
        raise ConfigError(
            f"{what} is not a Colonies private key: it must be 64 hexadecimal characters "
            "(32 bytes), as printed by `colonies security generate`."
        )


def _optional_key(what: str) -> Any:
    def check(_: Any, __: attrs.Attribute[Any], value: str) -> None:
        if value:
            check_private_key(value, what)

    return check


def _check_host(_: Any, __: attrs.Attribute[Any], value: str) -> None:
    if not value or any(c.isspace() or c in "/?#@" for c in value):
        raise ConfigError(f"{value!r} is not a Colonies server host name or address.")


def _check_port(_: Any, __: attrs.Attribute[Any], value: int) -> None:
    if not 0 < value < 65536:
        raise ConfigError(f"The Colonies server port must be within 1-65535, not {value}.")


def _check_timeout(_: Any, __: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ConfigError(f"The Colonies client timeout must be positive, not {value}.")


def _check_retries(_: Any, __: attrs.Attribute[Any], value: int) -> None:
    if value < 0:
        raise ConfigError(f"The number of connection retries must be 0 or more, not {value}.")


@attrs.frozen
class ClientConfig:
    """How to reach one Colonies server.

    ``insecure`` skips TLS certificate verification (an explicit choice, never a fallback);
    ``ca_file`` trusts a private CA instead. ``timeout`` bounds connecting and each reply
    (a long-polling assign adds its own wait on top). ``retries`` is how many times a call
    that is safe to repeat is retried when the connection itself fails.
    """

    host: str = attrs.field(validator=_check_host)
    port: int = attrs.field(default=DEFAULT_PORT, validator=_check_port)
    tls: bool = False
    insecure: bool = False
    ca_file: str | None = None
    timeout: float = attrs.field(default=DEFAULT_TIMEOUT, validator=_check_timeout)
    retries: int = attrs.field(default=3, validator=_check_retries)
    colony_name: str = ""
    prvkey: str = attrs.field(default="", repr=False, eq=False, validator=_optional_key("prvkey"))
    colony_prvkey: str = attrs.field(
        default="", repr=False, eq=False, validator=_optional_key("colony_prvkey")
    )

    @property
    def address(self) -> str:
        """``host:port`` for messages (brackets around an IPv6 literal)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClientConfig:
        """Read the official COLONIES_* variables; ConfigError names what is missing or wrong."""
        env = os.environ if environ is None else environ
        host = env.get("COLONIES_SERVER_HOST", "").strip()
        if not host:
            raise ConfigError(
                "COLONIES_SERVER_HOST is not set, so there is no Colonies server to talk to. "
                "Export COLONIES_SERVER_HOST, COLONIES_SERVER_PORT, COLONIES_SERVER_TLS, "
                "COLONIES_COLONY_NAME and COLONIES_PRVKEY as for the official colonies CLI."
            )
        port_var = next(
            (v for v in ("COLONIES_SERVER_PORT", "COLONIES_SERVER_HTTP_PORT") if env.get(v)),
            None,
        )
        port = DEFAULT_PORT
        if port_var is not None:
            try:
                port = int(env[port_var])
            except ValueError:
                raise ConfigError(
                    f"{port_var} must be a port number such as 50080, not {env[port_var]!r}."
                ) from None
        tls_var = next((v for v in ("COLONIES_SERVER_TLS", "COLONIES_TLS") if v in env), None)
        keys = {v: env.get(v, "").strip() for v in ("COLONIES_PRVKEY", "COLONIES_COLONY_PRVKEY")}
        for variable, value in keys.items():
            if value:
                check_private_key(value, variable)
        return cls(
            host=host,
            port=port,
            tls=_flag(env, tls_var),
            insecure=_flag(env, "COLONIES_SKIP_TLS_VERIFY"),
            ca_file=env.get("COLONIES_CA_FILE") or None,
            colony_name=env.get("COLONIES_COLONY_NAME", "").strip(),
            prvkey=keys["COLONIES_PRVKEY"],
            colony_prvkey=keys["COLONIES_COLONY_PRVKEY"],
        )


def _flag(env: Mapping[str, str], variable: str | None) -> bool:
    if variable is None or variable not in env:
        return False
    value = env[variable].strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{variable} must be true or false, not {env[variable]!r}.")
