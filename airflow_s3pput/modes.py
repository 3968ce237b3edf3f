"""Put modes: what to do with one file, given what the bucket already holds under its key.

Each mode is a small strategy with ``decide(local, remote) -> Decision``. ``remote`` is the
listed object (size and ETag) or ``None`` when the key is missing; ``local`` is the content we
would store (after gzip), whose ETag is only computed when a mode needs it.

Truth table (``-`` = not looked at):

=========  ================  ==============  ================  ==========================
mode       remote            size equal      ETag equal        decision
=========  ================  ==============  ================  ==========================
add        missing           -               -                 put (new)
add        present           -               -                 skip (exists)
stupid     - (never listed)  -               -                 put (always)
update     missing           -               -                 put (new)
update     present           no              -                 put (changed)
update     present           yes             no                put (changed)
update     present           yes             yes               skip (unchanged)
=========  ================  ==============  ================  ==========================

"ETag equal" is the MD5 of the bytes we would store, or for a multipart ETag the same value for
the part sizes other tools use too (``upload_body.Content.matches_etag``). Before putting a file
of the object's size for a differing ETag, the putter asks the digest record and the object's
checksum (``checksum_lookup``): an opaque ETag (SSE-KMS) of the same bytes is "unchanged" too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from airflow_s3pput.errors import UsageError


@dataclass(frozen=True, slots=True)
class RemoteObject:
    size: int
    etag: str  # without quotes
    #: LastModified, epoch seconds on the server's clock (``None``: not listed); no mode looks
    #: at it, the engine's count of files an earlier try landed does (``engine.landed_earlier``)
    last_modified: float | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    put: bool
    reason: str
    #: the object's checksum was asked for (``checksum_lookup``): the summary counts them
    looked_up: bool = False


PUT_NEW = Decision(True, "new")
PUT_CHANGED = Decision(True, "changed")
PUT_ALWAYS = Decision(True, "always")
SKIP_EXISTS = Decision(False, "exists")
SKIP_UNCHANGED = Decision(False, "unchanged")
#: the object's checksum is the file's, though its ETag is not
SKIP_SAME_CHECKSUM = Decision(False, "unchanged", looked_up=True)


class LocalContent(Protocol):
    @property
    def stored_size(self) -> int: ...

    def matches_etag(self, etag: str) -> bool: ...


@dataclass(frozen=True)
class PutMode:
    name: str
    #: whether a run must list the bucket for ``decide``
    needs_listing: bool
    decide: Callable[[LocalContent, RemoteObject | None], Decision]


def _add(local: LocalContent, remote: RemoteObject | None) -> Decision:
    return PUT_NEW if remote is None else SKIP_EXISTS


def _stupid(local: LocalContent, remote: RemoteObject | None) -> Decision:
    return PUT_ALWAYS


def _update(local: LocalContent, remote: RemoteObject | None) -> Decision:
    if remote is None:
        return PUT_NEW
    if remote.size != local.stored_size:
        return PUT_CHANGED
    return SKIP_UNCHANGED if local.matches_etag(remote.etag) else PUT_CHANGED


MODES = {
    mode.name: mode
    for mode in (
        PutMode("add", needs_listing=True, decide=_add),
        PutMode("stupid", needs_listing=False, decide=_stupid),
        PutMode("update", needs_listing=True, decide=_update),
    )
}


def get_mode(name: str) -> PutMode:
    try:
        return MODES[name]
    except KeyError:
        raise UsageError(
            f"invalid {{setting}} {name!r}: expected one of {', '.join(MODES)}", setting="put_mode"
        ) from None
