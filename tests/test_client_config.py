"""ClientConfig: the official COLONIES_* variables, validation, and keys kept secret."""

from __future__ import annotations

import pytest

from pollinator_core.colonies.config import ClientConfig, ConfigError
from pollinator_core.errors import InfraError

KEY = "ddf7f7791208083b6a9ed975a72684f6406a269cfa36f1b1c32045c0a71fff05"
COLONY_KEY = "ba949fa134981372d6da62b6a56f336ab4d843b22c02a4257dcf7d0d73097514"
ENV = {
    "COLONIES_SERVER_HOST": "colonies.example.org",
    "COLONIES_SERVER_PORT": "443",
    "COLONIES_SERVER_TLS": "true",
    "COLONIES_COLONY_NAME": "dev",
    "COLONIES_PRVKEY": KEY,
    "COLONIES_COLONY_PRVKEY": COLONY_KEY,
}


def test_from_env_reads_the_official_variables() -> None:
    config = ClientConfig.from_env(ENV)
    assert (config.host, config.port, config.tls, config.insecure) == (
        "colonies.example.org",
        443,
        True,
        False,
    )
    assert (config.colony_name, config.prvkey, config.colony_prvkey) == ("dev", KEY, COLONY_KEY)
    assert config.base_url == "https://colonies.example.org:443"
    assert config.ca_file is None


def test_defaults_and_alternative_names() -> None:
    config = ClientConfig.from_env(
        {"COLONIES_SERVER_HOST": "::1", "COLONIES_TLS": "TRUE", "COLONIES_SKIP_TLS_VERIFY": "1"}
    )
    assert (config.port, config.tls, config.insecure) == (50080, True, True)
    assert config.address == "[::1]:50080"
    assert config.prvkey == "" and config.colony_name == ""
    config = ClientConfig.from_env(
        {"COLONIES_SERVER_HOST": "h", "COLONIES_SERVER_HTTP_PORT": "8080", "COLONIES_TLS": "false"}
    )
    assert (config.port, config.tls) == (8080, False)
    # COLONIES_SERVER_TLS wins over the older COLONIES_TLS.
    env = {"COLONIES_SERVER_HOST": "h", "COLONIES_SERVER_TLS": "false", "COLONIES_TLS": "true"}
    assert ClientConfig.from_env(env).tls is False
    assert ClientConfig.from_env({**env, "COLONIES_CA_FILE": "/ca.pem"}).ca_file == "/ca.pem"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"COLONIES_SERVER_HOST": ""}, "COLONIES_SERVER_HOST is not set"),
        ({"COLONIES_SERVER_PORT": "fifty"}, "COLONIES_SERVER_PORT must be a port number"),
        ({"COLONIES_SERVER_PORT": "70000"}, "port must be within 1-65535"),
        ({"COLONIES_SERVER_TLS": "maybe"}, "COLONIES_SERVER_TLS must be true or false"),
        ({"COLONIES_SKIP_TLS_VERIFY": "y"}, "COLONIES_SKIP_TLS_VERIFY must be true or false"),
        ({"COLONIES_SERVER_HOST": "http://h/"}, "is not a Colonies server host"),
        ({"COLONIES_PRVKEY": KEY[:-1]}, "COLONIES_PRVKEY is not a Colonies private key"),
        ({"COLONIES_COLONY_PRVKEY": KEY + "00"}, "COLONIES_COLONY_PRVKEY is not a Colonies"),
        ({"COLONIES_PRVKEY": "x" * 64}, "64 hexadecimal characters"),
    ],
)
def test_bad_environment_is_a_clear_config_error(change: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        ClientConfig.from_env({**ENV, **change})
    text = str(info.value)
    assert message in text and "\n" not in text
    assert KEY[:40] not in text and COLONY_KEY[:40] not in text
    assert isinstance(info.value, InfraError) and info.value.exit_code == 3


def test_constructor_validates_too() -> None:
    with pytest.raises(ConfigError, match="timeout must be positive"):
        ClientConfig("h", timeout=0)
    with pytest.raises(ConfigError, match="retries must be 0 or more"):
        ClientConfig("h", retries=-1)
    with pytest.raises(ConfigError, match="prvkey is not a Colonies private key"):
        ClientConfig("h", prvkey="nope")
    with pytest.raises(ConfigError, match="not a Colonies server host"):
        ClientConfig("")


def test_keys_are_out_of_repr_and_equality() -> None:
    config = ClientConfig.from_env(ENV)
    assert KEY not in repr(config) and COLONY_KEY not in repr(config)
    assert "colonies.example.org" in repr(config)
    assert config == ClientConfig.from_env({**ENV, "COLONIES_PRVKEY": COLONY_KEY})
    with pytest.raises(AttributeError):
        config.host = "other"  # type: ignore[misc]
