"""What the admin port's handlers share: the broker server and the rate sampler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from ferrymq.admin.sampler import Sampler

if TYPE_CHECKING:
    from ferrymq.server.server import BrokerServer

__all__ = ["STATE_KEY", "AdminState", "state"]


@dataclass
class AdminState:
    server: BrokerServer
    sampler: Sampler


STATE_KEY = web.AppKey("ferrymq", AdminState)


def state(request: web.Request) -> AdminState:
    return request.app[STATE_KEY]
