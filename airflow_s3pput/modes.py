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

Where ``update`` would put a file of the object's size for a differing ETag, the putter first
asks the digest record and then the object's checksum (``checksum_lookup``): an opaque ETag
(SSE-KMS) of the same bytes is "unchanged" too.

``update`` compares the remote ETag with the MD5 of the bytes we would store, or, for a
multipart ETag (``md5-of-part-md5s-N``), with the same value computed locally for the part
sizes that give N parts: ours and those of aws cli, boto3, the AWS CRT, s5cmd and rclone at
their defaults first, then whole-MiB and exact guesses (``upload_body.Content.matches_etag``,
``etag.candidate_part_size_sets``), so objects uploaded by those tools are recognised too.
ETags that are not MD5 based (SSE-KMS, SSE-C) never match here.
"""

from __future__ import annotations

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


class PutMode(Protocol):
    name: str
    needs_listing: bool

    def decide(self, local: LocalContent, remote: RemoteObject | None) -> Decision: ...


class AddMode:
    name = "add"
    needs_listing = True

    def decide(self, local: LocalContent, remote: RemoteObject | None) -> Decision:
        return PUT_NEW if remote is None else SKIP_EXISTS


class StupidMode:
    name = "stupid"
    needs_listing = False

    def decide(self, local: LocalContent, remote: RemoteObject | None) -> Decision:
        return PUT_ALWAYS


class UpdateMode:
    name = "update"
    needs_listing = True

    def decide(self, local: LocalContent, remote: RemoteObject | None) -> Decision:
        if remote is None:
            return PUT_NEW
        if remote.size != local.stored_size:
            return PUT_CHANGED
        return SKIP_UNCHANGED if local.matches_etag(remote.etag) else PUT_CHANGED


MODES: dict[str, PutMode] = {m.name: m for m in (AddMode(), StupidMode(), UpdateMode())}


def get_mode(name: str) -> PutMode:
    try:
        return MODES[name]
    except KeyError:
        raise UsageError(
            f"invalid {{setting}} {name!r}: expected one of {', '.join(MODES)}", setting="put_mode"
        ) from None
