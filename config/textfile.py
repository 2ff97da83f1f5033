"""Reading an artifact or dataset file as text, safely: the checks before any parsing.

Every file promptci reads goes through :func:`read_checked`: a plain file (a FIFO would
block, ``/dev/zero`` never ends), at most 1 MiB, UTF-8 text (a UTF-16 file is named as
such, not called binary), not empty. Each refusal is one :class:`LoadError` problem.
"""

from __future__ import annotations

import stat
from pathlib import Path

from config.problems import Problem

MAX_FILE_BYTES = 1024 * 1024

__all__ = ["MAX_FILE_BYTES", "LoadError", "read_checked", "read_text"]


class LoadError(Exception):
    """Raised when a file cannot be turned into data; carries one or more problems."""

    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(p.format() for p in problems))
        self.problems = problems


def read_text(path: Path, display: str, max_bytes: int = MAX_FILE_BYTES) -> str:
    """Return the file's text, or raise LoadError if it is too big, empty, binary or not UTF-8."""
    return read_checked(path, display, max_bytes)[1]


def read_checked(path: Path, display: str, max_bytes: int = MAX_FILE_BYTES) -> tuple[bytes, str]:
    """Return (bytes, text) of the file, read once; raise LoadError if too big, empty, binary or not UTF-8.

    Callers that hash a file use these bytes, so the hash describes exactly the text that was parsed.
    """
    try:
        st = path.stat()
    except OSError as exc:
        raise LoadError([Problem(display, 1, 1, "", f"cannot read file: {exc.strerror}")]) from exc
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block, /dev/zero never ends: neither is an artifact
        raise LoadError([Problem(display, 1, 1, "", f"not a regular file ({_file_kind(st.st_mode)}); "
                                                    "artifacts and datasets must be plain files")])
    if st.st_size > max_bytes:
        raise LoadError([Problem(display, 1, 1, "", f"file is {st.st_size} bytes; the limit is {max_bytes}")])
    try:
        with path.open("rb") as fh:
            raw = fh.read(max_bytes + 1)  # bounded, in case the file grew since stat
    except OSError as exc:
        raise LoadError([Problem(display, 1, 1, "", f"cannot read file: {exc.strerror}")]) from exc
    if len(raw) > max_bytes:
        raise LoadError([Problem(display, 1, 1, "", f"file is over the limit of {max_bytes} bytes")])
    utf16 = _utf16_name(raw)
    if utf16:
        raise LoadError([Problem(display, 1, 1, "", f"file is encoded as {utf16}; save it as UTF-8")])
    if b"\x00" in raw[:8192]:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise LoadError([Problem(display, line, 1, "", "binary file (contains NUL bytes); "
                                                       "artifacts are UTF-8 text")])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise LoadError([Problem(display, line, col, "", "file is not valid UTF-8 "
                                                         f"(byte 0x{raw[exc.start]:02x}); save it as UTF-8")]) from exc
    if not text.strip():
        raise LoadError([Problem(display, 1, 1, "", "empty file")])
    return raw, text


def _file_kind(mode: int) -> str:
    """Return a word for a non-regular file's type (for the "not a regular file" message)."""
    for test, word in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return word
    return "a special file"


def _utf16_name(raw: bytes) -> str | None:
    """Return "UTF-16 LE"/"UTF-16 BE" (or UTF-32) when the bytes are plainly such text, else None.

    A byte-order mark says so outright; without one, ASCII text in UTF-16 has a NUL in
    every other byte, which is what a user who saved "Unicode" in an editor gets.
    """
    for bom, name, codec in ((b"\xff\xfe\x00\x00", "UTF-32 LE", "utf-32-le"),
                             (b"\x00\x00\xfe\xff", "UTF-32 BE", "utf-32-be"),
                             (b"\xff\xfe", "UTF-16 LE", "utf-16-le"), (b"\xfe\xff", "UTF-16 BE", "utf-16-be")):
        if raw.startswith(bom):
            sample = raw[len(bom):len(bom) + 512]
            text = sample[: len(sample) - len(sample) % (4 if "32" in name else 2)].decode(codec, "replace")
            if sum(c.isascii() for c in text) >= 0.9 * len(text):  # it reads as text in that encoding
                return name
    head = raw[:512]
    if len(head) >= 4 and len(head) % 2 == 0:
        even, odd = head[0::2], head[1::2]
        if odd.count(0) == len(odd) and 0 not in even:
            return "UTF-16 LE"
        if even.count(0) == len(even) and 0 not in odd:
            return "UTF-16 BE"
    return None
