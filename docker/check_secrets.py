"""Refuse to start the compose stack with a missing, placeholder or unusable secret.

Run by the ``check-secrets`` service of docker/docker-compose.yml, which Postgres, SeaweedFS and
(through them) every Airflow service wait for: compose's own ``${VAR:?}`` only refuses an empty
value, so a docker/.env copied from .env.example without editing would otherwise start a stack
whose passwords everybody knows.

    python /opt/s3pput/docker/check_secrets.py POSTGRES_PASSWORD S3_SECRET_KEY ...

Each named environment variable must be set, must not be a placeholder (``change-me`` and the
like), must be at least 12 characters long, and may hold only letters, digits, ``-`` and ``_``
(the values end up in URLs and in a JSON connection). Problems are printed one a line, naming the
variable and never its value; the exit status is 1 if there is any.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence

MIN_LENGTH = 12
PLACEHOLDERS = frozenset(
    {"change-me", "changeme", "change_me", "changeit", "secret", "password", "admin", "airflow", "example"}
)
_ALLOWED = re.compile(r"[A-Za-z0-9_-]+")


def problems(names: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """One sentence per unusable secret; empty when every one is fine."""
    found = []
    for name in names:
        value = env.get(name, "")
        if not value:
            found.append(f"{name} is not set: give it a random value in docker/.env")
        elif value.lower() in PLACEHOLDERS or "change-me" in value.lower():
            found.append(f"{name} is still a placeholder: replace it in docker/.env")
        elif len(value) < MIN_LENGTH:
            found.append(f"{name} is shorter than {MIN_LENGTH} characters")
        elif not _ALLOWED.fullmatch(value):
            found.append(f"{name} may hold only letters, digits, '-' and '_'")
    return found


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    names = list(sys.argv[1:] if argv is None else argv)
    if not names:
        print("check_secrets: name the variables to check", file=sys.stderr)
        return 2
    found = problems(names, os.environ if env is None else env)
    for problem in found:
        print(f"check_secrets: {problem}", file=sys.stderr)
    if found:
        print(
            'check_secrets: a random value: python3 -c "import secrets; print(secrets.token_urlsafe(32))"',
            file=sys.stderr,
        )
        return 1
    print(f"check_secrets: ok ({len(names)} secrets)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
