"""Users, passwords and per-destination permissions, shared by STOMP and HTTP."""

from ferrymq.auth.authenticator import Authenticator
from ferrymq.auth.passwords import hash_password, verify_password
from ferrymq.auth.permissions import ACTIONS, covers
from ferrymq.auth.users import ROLES, User, UsersFile, load_users, save_users

__all__ = [
    "ACTIONS",
    "ROLES",
    "Authenticator",
    "User",
    "UsersFile",
    "covers",
    "hash_password",
    "load_users",
    "save_users",
    "verify_password",
]
