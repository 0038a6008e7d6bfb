"""`ferrymq` operator commands: users-file management and the admin CLI that
talks to a running broker's HTTP API."""

from ferrymq.ctl.main import COMMANDS, main

__all__ = ["COMMANDS", "main"]
