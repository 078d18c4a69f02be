"""Where the journal keeps the bulky part of its entries (``sandbox.recorder``): unlinked
temporary files, appended to and read back by offset."""

from __future__ import annotations

import os
import tempfile
import weakref


def _close_all(files: dict[int, tuple[int, int]]) -> None:
    for fd, _ in files.values():
        os.close(fd)
    files.clear()


class SpillFiles:
    """Append-only temporary files for the bulky part of entries (headers and bodies), so
    memory holds only the small fields: 100,000 journaled 1 KiB requests cost megabytes, not
    hundreds. Writes are buffered (a system call per 64 KiB, not per request); a new file
    starts every ``segment`` bytes; a file whose entries were all evicted is closed. The files
    are unlinked at once, so nothing is left on disk."""

    FLUSH = 64 * 1024

    def __init__(self, segment: int) -> None:
        self.segment = segment
        self.files: dict[int, tuple[int, int]] = {}  # index -> (descriptor, bytes written)
        self.current = -1
        self.buffer = bytearray()  # the current file's tail, not written yet
        weakref.finalize(self, _close_all, self.files)

    def _flush(self) -> None:
        if self.buffer:
            fd, written = self.files[self.current]
            os.pwrite(fd, self.buffer, written)
            self.files[self.current] = (fd, written + len(self.buffer))
            self.buffer.clear()

    def write(self, data: bytes) -> tuple[int, int]:
        written = self.files[self.current][1] if self.current in self.files else self.segment
        if written + len(self.buffer) >= self.segment:
            if self.current in self.files:
                self._flush()
            fd, path = tempfile.mkstemp(prefix="chekt-journal-")
            os.unlink(path)
            self.current += 1
            self.files[self.current] = (fd, 0)
            written = 0
        offset = written + len(self.buffer)
        self.buffer += data
        if len(self.buffer) >= self.FLUSH:
            self._flush()
        return self.current, offset

    def read(self, index: int, offset: int, length: int) -> bytes:
        fd, written = self.files[index]
        if index == self.current and offset >= written:
            start = offset - written
            return bytes(self.buffer[start : start + length])
        return os.pread(fd, length, offset)

    def release_before(self, index: int) -> None:
        files = self.files  # oldest first: the indexes are made in increasing order
        while files:
            oldest = next(iter(files))
            if oldest >= index:
                return
            os.close(files.pop(oldest)[0])

    def close(self) -> None:
        _close_all(self.files)
        self.buffer.clear()
        self.current = -1
