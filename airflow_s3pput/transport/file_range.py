"""A range of an open file as a readable stream, read straight into the reader's buffer.

The CRT reads a part's body from it with ``preadv`` into its socket buffers as the connection
takes the bytes (``crt_stream``), so a part on the wire is never a copy of the part in memory.
"""

from __future__ import annotations

import io
import os

from airflow_s3pput.errors import FileChanged


class FileRange(io.RawIOBase):
    def __init__(self, fd: int, offset: int, length: int) -> None:
        super().__init__()
        self.fd = fd
        self.offset = offset
        self.length = length
        self.position = 0

    def __len__(self) -> int:
        return self.length

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, position: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.length}[whence]
        self.position = min(max(base + position, 0), self.length)
        return self.position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        wanted = min(len(buffer), self.length - self.position)
        if wanted <= 0:
            return 0
        with memoryview(buffer) as view:
            got = os.preadv(self.fd, [view[:wanted]], self.offset + self.position)
        if got == 0:
            # Fewer bytes than the part's Content-MD5 covers: the server would refuse the part.
            raise FileChanged(f"file shrank while it was uploaded (at byte {self.offset + self.position})")
        self.position += got
        return got
