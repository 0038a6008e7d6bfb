"""negotiate_version and the public constants."""

from __future__ import annotations

import pytest

import ferrymq.protocol.stomp as stomp
from ferrymq.protocol.stomp import SUPPORTED_VERSIONS, negotiate_version


def test_supported_versions() -> None:
    assert SUPPORTED_VERSIONS == ("1.0", "1.1", "1.2")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "1.0"),
        ("1.0", "1.0"),
        ("1.1", "1.1"),
        ("1.2", "1.2"),
        ("1.0,1.1,1.2", "1.2"),
        ("1.2,1.0", "1.2"),
        ("1.0,1.1", "1.1"),
        ("1.0, 1.1", "1.1"),
        ("1.1,2.0", "1.1"),
        ("2.0", None),
        ("", None),
        ("1.3,2.1", None),
    ],
)
def test_negotiate_version(header: str | None, expected: str | None) -> None:
    assert negotiate_version(header) == expected


def test_public_api() -> None:
    assert sorted(stomp.__all__) == sorted(
        [
            "Frame",
            "HeartBeat",
            "ProtocolViolation",
            "Event",
            "Limits",
            "StompParser",
            "serialize_frame",
            "negotiate_version",
            "SUPPORTED_VERSIONS",
            "HEARTBEAT_BYTES",
        ]
    )
    for name in stomp.__all__:
        assert hasattr(stomp, name)
