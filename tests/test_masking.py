"""Secret masking and the local-only target rule (pure logic)."""

from __future__ import annotations

import pytest

from loadstack.masking import MASK, Masker, mask_patterns, mask_url
from loadstack.safety import RemoteTargetError, check_target, is_local_host


def test_url_passwords_are_masked() -> None:
    assert mask_url("postgresql://app:hunter22@db:5432/x") == "postgresql://app:***@db:5432/x"
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert "s3cr3t" not in mask_patterns("connect amqp://guest:s3cr3t@rabbit:5672// failed")


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer abc.def.ghi-long-token",
        "{'authorization': 'Basic dXNlcjpwYXNz'}",
        "client_secret=topsecretvalue&grant_type=client_credentials",
        '"access_token": "abcdefgh12345"',
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ],
)
def test_secret_shapes_are_masked(text: str) -> None:
    masked = mask_patterns(text)
    assert MASK in masked
    for fragment in ("abc.def", "dXNlcjpwYXNz", "topsecretvalue", "abcdefgh12345", "dozjgNryP4J3"):
        assert fragment not in masked


def test_env_secrets_are_masked_literally_everywhere() -> None:
    masker = Masker.from_env(
        {
            "LOADSTACK_API_TOKEN": "tok-123456",
            "LOADSTACK_AMQP_URL": "amqp://app:Pw-0987@mq//",
            "LOADSTACK_POSTGRES_DSN": "postgresql://loadstack:loadstack@db/x",  # dev default user == password
            "HOME": "/root",
        }
    )
    text = masker("tok-123456 leaked in an error; Pw-0987 too; loadstack.progress stays readable")
    assert "tok-123456" not in text and "Pw-0987" not in text
    assert "loadstack.progress stays readable" in text
    env = masker.mask_env(
        {"LOADSTACK_API_TOKEN": "tok-123456", "LOADSTACK_AMQP_URL": "amqp://app:Pw-0987@mq//"}
    )
    assert env == {"LOADSTACK_API_TOKEN": MASK, "LOADSTACK_AMQP_URL": "amqp://app:***@mq//"}


def test_local_targets_only_unless_allowed() -> None:
    for host in ("127.0.0.1", "127.8.9.10", "localhost", "[::1]", "target", "postgres"):
        assert is_local_host(host.strip("[]")), host
    check_target("http://127.0.0.1:8000", allow_remote=False)
    check_target("postgresql://u@postgres:5432/db", allow_remote=False)
    with pytest.raises(RemoteTargetError, match="--allow-remote"):
        check_target("http://10.0.0.5", allow_remote=False)
    with pytest.raises(RemoteTargetError):
        check_target("https://example.com/api", allow_remote=False)
    check_target("https://example.com/api", allow_remote=True)
