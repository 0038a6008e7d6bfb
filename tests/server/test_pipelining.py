"""Clients that pipeline: many frames per packet, CONNECT included."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ferrymq.config import Settings
from ferrymq.protocol.stomp import Frame, StompParser, serialize_frame
from ferrymq.server.server import BrokerServer


@pytest.fixture
async def server() -> AsyncIterator[BrokerServer]:
    srv = BrokerServer(Settings(stomp="127.0.0.1:0", http="off", node_name="t", store="memory"))
    await srv.start()
    yield srv
    await srv.stop()


def frame(command: str, body: bytes = b"", **headers: str) -> bytes:
    fixed = {k.replace("_", "-"): v for k, v in headers.items()}
    return serialize_frame(Frame(command=command, headers=fixed, body=body), "1.2")


async def read_frames(reader: asyncio.StreamReader, n: int, timeout: float = 10) -> list[Frame]:
    parser = StompParser(version="1.2")
    frames: list[Frame] = []
    async with asyncio.timeout(timeout):
        while len(frames) < n:
            data = await reader.read(65536)
            assert data, f"closed after {len(frames)} frames"
            frames.extend(e for e in parser.feed(data) if isinstance(e, Frame))
    return frames


async def test_connect_send_subscribe_in_one_packet(server: BrokerServer) -> None:
    assert server.stomp_address is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.stomp_address.port)
    packet = b"".join(
        [
            frame("CONNECT", accept_version="1.2", host="h"),
            # Escaped per the version CONNECT negotiates, in the same packet.
            frame("SEND", b"x", destination="/queue/p", note="a:b"),
            frame("SUBSCRIBE", destination="/queue/p", id="s", ack="auto"),
            frame("DISCONNECT", receipt="bye"),
        ]
    )
    writer.write(packet)
    connected, message, receipt = await read_frames(reader, 3)
    assert connected.command == "CONNECTED" and connected.headers["version"] == "1.2"
    assert message.command == "MESSAGE" and message.headers["note"] == "a:b"
    assert receipt.command == "RECEIPT" and receipt.headers["receipt-id"] == "bye"
    async with asyncio.timeout(5):
        assert await reader.read() == b""  # closed after the DISCONNECT receipt
    writer.close()


async def test_ten_thousand_pipelined_sends_arrive_in_order(server: BrokerServer) -> None:
    assert server.stomp_address is not None
    port = server.stomp_address.port
    c_reader, c_writer = await asyncio.open_connection("127.0.0.1", port)
    c_writer.write(frame("CONNECT", accept_version="1.2", host="h"))
    c_writer.write(frame("SUBSCRIBE", destination="/queue/bulk", id="s", receipt="sub"))
    assert [f.command for f in await read_frames(c_reader, 2)] == ["CONNECTED", "RECEIPT"]
    _, p_writer = await asyncio.open_connection("127.0.0.1", port)
    n = 10_000
    p_writer.write(
        frame("CONNECT", accept_version="1.2", host="h")
        + b"".join(frame("SEND", b"%d" % i, destination="/queue/bulk") for i in range(n))
    )
    got = await read_frames(c_reader, n)
    assert [int(f.body) for f in got] == list(range(n))
    for w in (c_writer, p_writer):
        w.close()
