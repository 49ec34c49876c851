"""Logins for a shared deployment: a credentials file of users, scrypt-hashed passwords and roles.

The file (TOML, named by the deployment settings' ``[auth] credentials``) holds one table per user:

    [users.dr_carol]
    role = "admin"  # "admin" may choose the model; "annotator" reviews and records verdicts
    password = "scrypt$16384$8$1$<salt>$<hash>"

Write it with ``python -m lrclr add-user FILE NAME --role admin --password-stdin`` (the password is
read from standard input, so it stays out of the shell history; nothing is ever prompted for).
Passwords are never stored, only scrypt hashes (RFC 7914, 16 MB of memory per check), and checks
take the same time whether or not the name exists.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path

from lrclr.deployment.settings import read_small_toml
from lrclr.errors import LRCLRError

ROLES = ("admin", "annotator")
ADMIN = "admin"
# Names are recorded with verdicts and shown on the Quality page: plain, short and unambiguous.
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_MAX_PASSWORD_CHARS = 1024


class CredentialsError(LRCLRError):
    """The credentials file cannot be read or holds an invalid entry."""


@dataclass(frozen=True)
class User:
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, **_SCRYPT, dklen=32)
    encode = lambda raw: base64.b64encode(raw).decode("ascii")  # noqa: E731
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${encode(salt)}${encode(digest)}"


def verify_password(stored: str, password: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt" or int(n) > 2**20 or int(r) > 64 or int(p) > 16:
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt, validate=True),
                                n=int(n), r=int(r), p=int(p), dklen=len(expected), maxmem=2**27)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# Checked against when the name is unknown, so that the answer takes as long as for a real user.
_UNKNOWN_USER_HASH = hash_password("", salt=b"\0" * 16)


@dataclass(frozen=True)
class Credentials:
    path: Path
    users: dict[str, tuple[str, str]]  # name -> (role, password hash)

    @classmethod
    def load(cls, path: str | Path) -> "Credentials":
        path = Path(path)
        data = read_small_toml(path, "The credentials file", CredentialsError)
        users = {}
        for name, entry in (data.get("users") or {}).items():
            if not USER_NAME.fullmatch(name) or not isinstance(entry, dict) or entry.get("role") not in ROLES \
                    or not isinstance(entry.get("password"), str):
                raise CredentialsError(f"{path}: user {name!r} needs a plain name, a role ({', '.join(ROLES)}) "
                                       f"and a password hash")
            users[name] = (entry["role"], entry["password"])
        return cls(path, users)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if the name and password match, else None (the same time either way)."""
        role, stored = self.users.get(name.strip(), ("", _UNKNOWN_USER_HASH))
        matches = verify_password(stored, password[:_MAX_PASSWORD_CHARS])
        return User(name.strip(), role) if matches and role else None


def add_user(path: str | Path, name: str, role: str, password: str) -> None:
    """Add a user to the credentials file, or replace their role and password (file created if new)."""
    if not USER_NAME.fullmatch(name):
        raise CredentialsError(f"{name!r}: a user name is 1-64 letters, digits, '.', '_' or '-', starting with "
                               f"a letter or digit")
    if role not in ROLES:
        raise CredentialsError(f"role must be one of {', '.join(ROLES)}")
    if not 8 <= len(password) <= _MAX_PASSWORD_CHARS:
        raise CredentialsError("a password has 8 to 1024 characters")
    path = Path(path)
    users = Credentials.load(path).users if path.exists() else {}
    users[name] = (role, hash_password(password))
    lines = ["# LRCLR Review users: written by `python -m lrclr add-user`; passwords are scrypt hashes.", ""]
    for user, (user_role, stored) in sorted(users.items()):
        lines += [f'[users."{user}"]', f'role = "{user_role}"', f'password = "{stored}"', ""]
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("\n".join(lines), encoding="utf-8")
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
