"""Git plumbing for the GitOps repo, over the ``git`` CLI (subprocess).

Why the CLI and not a library: it is what every CI image already has, it speaks
every transport (local path, HTTPS, SSH) and credential helper, and its exit
codes and messages are what operators know.

Credentials never touch a URL, ``.git/config`` or a log:

* HTTPS: ``PROMPTCI_GIT_TOKEN`` (and optional ``PROMPTCI_GIT_USERNAME``) are read
  by a ``GIT_ASKPASS`` helper script *at the moment git asks*; the script holds
  no secret, only ``printf "%s" "$PROMPTCI_GIT_TOKEN"``.
* SSH: ``PROMPTCI_GIT_SSH_KEY`` (a key file path, e.g. a mounted Secret) becomes
  ``GIT_SSH_COMMAND="ssh -i KEY -o IdentitiesOnly=yes"``.

Every message raised from here passes through :func:`redact`.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from config.settings import get_settings

TOKEN_ENV = "PROMPTCI_GIT_TOKEN"
USERNAME_ENV = "PROMPTCI_GIT_USERNAME"
SSH_KEY_ENV = "PROMPTCI_GIT_SSH_KEY"
GIT_TIMEOUT = 120

_ASKPASS = """#!/bin/sh
# promptci GIT_ASKPASS helper: answers git's prompts from the environment; holds no secret itself.
case "$1" in
  Username*|username*) printf '%s\\n' "${PROMPTCI_GIT_USERNAME:-x-access-token}" ;;
  *) printf '%s\\n' "$PROMPTCI_GIT_TOKEN" ;;
esac
"""
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]*)@")


class GitError(RuntimeError):
    """A git command failed; the message is redacted and names the command."""


class PushRejected(GitError):
    """The remote refused the push because its branch moved (non-fast-forward)."""


def secrets_in_env(env: Mapping[str, str] | None = None) -> list[str]:
    """Return the secret values that must never be printed (the git token, when set)."""
    token = get_settings(env).git_token
    return [v for v in (token.get_secret_value() if token is not None else "",) if len(v) >= 4]


def redact(text: str, env: Mapping[str, str] | None = None) -> str:
    """Return ``text`` with the token and any URL userinfo (``https://user:pw@``) replaced by ``***``."""
    for secret in secrets_in_env(env):
        text = text.replace(secret, "***")
    return _URL_USERINFO.sub(lambda m: m.group("scheme") + "***@", text)


def url_has_credentials(url: str) -> bool:
    """Return True when ``url`` embeds a password or token (``https://user:secret@host``)."""
    m = _URL_USERINFO.match(url)
    return bool(m and ":" in m.group("userinfo"))


def is_local_url(url: str) -> bool:
    """Return True for a filesystem path or ``file://`` URL (as opposed to HTTPS/SSH remotes)."""
    if url.startswith("file://"):
        return True
    if "://" in url:
        return False
    # scp-like ssh syntax: user@host:path or host:path (but not C:\\ or ./a:b)
    return not re.match(r"^[^/\\]+:", url)


def resolve_url(url: str, base: Path) -> str:
    """Return ``url`` with a relative local path made absolute against ``base`` (the source repo)."""
    if is_local_url(url) and not url.startswith("file://"):
        p = Path(url)
        return str(p if p.is_absolute() else (base / p).resolve())
    return url


@dataclass(frozen=True)
class Author:
    name: str
    email: str


class GitEnv:
    """The environment every git command runs with: credentials wired, prompts disabled.

    Owns a temp dir holding the askpass helper; use as a context manager.
    """

    def __init__(self, author: Author | None = None, base: Mapping[str, str] | None = None):
        self.base = dict(os.environ if base is None else base)
        self.author = author
        self._dir = tempfile.mkdtemp(prefix="promptci-git-")
        askpass = Path(self._dir) / "askpass.sh"
        askpass.write_text(_ASKPASS)
        askpass.chmod(0o700)
        # GIT_CONFIG_COUNT/KEY_n/VALUE_n are kept: the templates set safe.directory for the source checkout
        # that way (another uid cloned it); without it git refuses that checkout in a pod.
        env = {k: v for k, v in self.base.items() if not k.startswith("GIT_")
               or k in ("GIT_CONFIG_NOSYSTEM", "GIT_SSH", "GIT_SSH_COMMAND")
               or k.startswith(("GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))}
        env.update({
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": str(askpass),
            "SSH_ASKPASS": str(askpass),
            "LC_ALL": "C",
        })
        key = get_settings(self.base).git_ssh_key
        if key:
            env["GIT_SSH_COMMAND"] = (f"ssh -i {shlex.quote(str(key))} -o IdentitiesOnly=yes "
                                      "-o BatchMode=yes")
        if author:
            env.update({"GIT_AUTHOR_NAME": author.name, "GIT_AUTHOR_EMAIL": author.email,
                        "GIT_COMMITTER_NAME": author.name, "GIT_COMMITTER_EMAIL": author.email})
        self.env = env

    def close(self) -> None:
        """Remove the askpass helper directory."""
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> GitEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, args: Sequence[str], cwd: Path | None = None, *, input: bytes | None = None,
            check: bool = True, config: Sequence[str] = ()) -> subprocess.CompletedProcess[bytes]:
        """Return the finished ``git args`` process; raise GitError (redacted) when it fails and ``check``.

        ``config``: ``name=value`` settings for this one command (``git -c``).
        """
        # An empty credential.helper resets any configured helper, so no helper can save the token.
        cmd = ["git", "-c", "commit.gpgsign=false", "-c", "core.autocrlf=false", "-c", "credential.helper=",
               *(x for setting in config for x in ("-c", setting)), *args]
        try:
            proc = subprocess.run(cmd, cwd=cwd, env=self.env, input=input, capture_output=True,
                                  timeout=GIT_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise GitError(redact(f"git {args[0]} timed out after {GIT_TIMEOUT}s", self.base)) from None
        except OSError as exc:
            raise GitError(f"cannot run git: {exc}") from None
        if check and proc.returncode != 0:
            raise self.failure(args, proc)
        return proc

    def failure(self, args: Sequence[str], proc: subprocess.CompletedProcess[bytes]) -> GitError:
        """Return the (redacted) GitError saying that ``git args`` failed as ``proc`` did."""
        err = proc.stderr.decode(errors="replace").strip() or proc.stdout.decode(errors="replace")
        return GitError(redact(f"git {args[0]} failed ({proc.returncode}): {err}", self.base))


def ensure_bare_repo(path: Path, branch: str, genv: GitEnv) -> bool:
    """Create a bare repo at ``path`` with one empty initial commit on ``branch`` unless it exists.

    Returns True when it was created. Safe against concurrent callers: the repo
    is built in a sibling temp dir and renamed into place, so exactly one wins
    and nobody ever sees a half-initialised repo.
    """
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        genv.run(["init", "--bare", "--quiet", "--initial-branch", branch, str(tmp)])
        # A push keeps its objects as the one pack it sent, not one loose file each (receive-pack's unpack of a
        # small push wrote ~60 files for the samples' promotion: 0.15 s of promote's 0.3 s).
        genv.run(["config", "receive.unpackLimit", "1"], cwd=tmp)
        tree = genv.run(["mktree"], cwd=tmp, input=b"").stdout.decode().strip()
        commit = genv.run(["commit-tree", tree, "-m", "promptci: initialise GitOps repository"],
                          cwd=tmp).stdout.decode().strip()
        genv.run(["update-ref", f"refs/heads/{branch}", commit], cwd=tmp)
        try:
            os.rename(tmp, path)
        except OSError:
            if not path.exists():
                raise
            return False  # another process created it first
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class Clone:
    """A working clone of one branch of the GitOps repo."""

    def __init__(self, url: str, branch: str, dest: Path, genv: GitEnv):
        self.url = url
        self.branch = branch
        self.dir = dest
        self.genv = genv
        # True from create() until anything is committed or published: the tree is then exactly the
        # remote head just fetched, and publish's first attempt need not fetch and reset again.
        self.just_cloned = False

    @classmethod
    def create(cls, url: str, branch: str, dest: Path, genv: GitEnv) -> Clone:
        """Return a fresh clone of ``branch`` at ``dest`` (an orphan branch if the remote lacks it).

        Refuses a URL that embeds credentials: git would save it in ``.git/config``.
        """
        if url_has_credentials(url):
            raise GitError(f"refusing GitOps URL with embedded credentials ({redact(url)}); "
                           f"put the token in ${TOKEN_ENV} instead")
        dest.mkdir(parents=True, exist_ok=True)
        clone = cls(url, branch, dest, genv)
        # One process where init + remote add + ls-remote + fetch + checkout took five.
        args = ["clone", "--quiet", "--no-tags", "--single-branch", "--branch", branch, "--", url, str(dest)]
        proc = genv.run(args, check=False)
        if proc.returncode != 0:
            if b"not found in upstream" not in proc.stderr:  # git's words for a remote without the branch
                raise genv.failure(args, proc)
            genv.run(["init", "--quiet", str(dest)])
            clone.git("remote", "add", "origin", url)
            if clone.fetch():  # it appeared meanwhile
                clone.git("checkout", "--quiet", "-B", branch, f"refs/remotes/origin/{branch}")
            else:
                clone.git("checkout", "--quiet", "--orphan", branch)
        clone.just_cloned = True
        return clone

    def git(self, *args: str, check: bool = True) -> str:
        """Return the stdout of ``git args`` run in this clone."""
        return self.genv.run(args, cwd=self.dir, check=check).stdout.decode()

    def fetch(self) -> bool:
        """Fetch the remote branch; return False when the remote has no such branch yet."""
        heads = self.git("ls-remote", "--heads", "origin", f"refs/heads/{self.branch}")
        if not heads.strip():
            return False
        self.git("fetch", "--quiet", "--no-tags", "origin",
                 f"+refs/heads/{self.branch}:refs/remotes/origin/{self.branch}")
        return True

    def remote_head(self) -> str | None:
        """Return the fetched remote head commit, or None when the branch does not exist yet."""
        out = self.git("rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{self.branch}^{{commit}}",
                       check=False).strip()
        return out or None

    def reset_to_remote(self) -> None:
        """Discard local commits and edits: the tree becomes exactly the fetched remote head."""
        head = self.remote_head()
        if head:
            self.git("reset", "--quiet", "--hard", head)
        else:
            self.git("rm", "-r", "--quiet", "--cached", "--ignore-unmatch", ".")
        self.git("clean", "-fdq")

    def head(self) -> str | None:
        """Return the local HEAD commit sha, or None on an unborn branch."""
        out = self.git("rev-parse", "--verify", "--quiet", "HEAD", check=False).strip()
        return out or None

    def commit_paths(self, paths: Sequence[str], message: str) -> str | None:
        """Stage ``paths`` (additions, edits, deletions) and commit; return the sha, or None if no change."""
        self.just_cloned = False
        self.git("add", "--all", "--", *paths)
        if not self.git("status", "--porcelain", "--", *paths).strip():
            return None
        self.genv.run(["commit", "--quiet", "--no-verify", "-F", "-"], cwd=self.dir,
                      input=message.encode())
        return self.head()

    def commit_series(self, changes: Sequence[tuple[Mapping[str, bytes], str]]) -> list[str]:
        """Commit each (files, message) in order on top of HEAD with ONE ``git fast-import``; return the shas.

        Why: a promotion of N artifacts is N commits; ``git add`` + ``status`` + ``commit``
        + ``rev-parse`` per commit cost four processes each (~8 s for 200 artifacts). The
        commits are the ones :meth:`commit_paths` would make: each parent is the previous
        one, each tree is the parent's with ``files`` (repo-relative path -> exact bytes,
        mode 100644) written, the message is kept verbatim and the author and committer
        are the identities ``git commit`` would use (``git var``). Every change must change
        the tree (the caller knows; an empty one would still become a commit). Afterwards the
        index and work tree are exactly the new HEAD, as after the commits.
        """
        if not changes:
            return []
        self.just_cloned = False
        parent = self.head()
        ident = {k: self.git("var", f"GIT_{k.upper()}_IDENT").strip() for k in ("author", "committer")}
        out = bytearray()
        for n, (files, message) in enumerate(changes, 1):
            msg = _stripspace(message).encode()
            out += (f"commit refs/heads/{self.branch}\nmark :{n}\nauthor {ident['author']}\n"
                    f"committer {ident['committer']}\ndata {len(msg)}\n").encode() + msg + b"\n"
            if n == 1 and parent:
                out += f"from {parent}\n".encode()
            for path, data in sorted(files.items()):
                out += b"M 100644 inline " + _quote_path(path) + f"\ndata {len(data)}\n".encode() + data + b"\n"
            out += b"\n"
        out += b"done\n"
        marks = self.dir / ".git" / "promptci-marks"
        # fastimport.unpackLimit=1: the import stays one pack; under git's default (100) a small import is
        # exploded into one loose file per object, which cost more than the import itself.
        self.genv.run(["fast-import", "--quiet", "--done", f"--export-marks={marks}"], cwd=self.dir,
                      input=bytes(out), config=["fastimport.unpackLimit=1"])
        shas = dict(line.split(" ", 1) for line in marks.read_text().split("\n") if line)
        marks.unlink()
        self.git("reset", "--quiet", "--hard")
        return [shas[f":{n}"] for n in range(1, len(changes) + 1)]

    def push(self) -> None:
        """Push HEAD to the remote branch; raise PushRejected when the remote moved meanwhile."""
        proc = self.genv.run(["push", "--porcelain", "origin", f"HEAD:refs/heads/{self.branch}"],
                             cwd=self.dir, check=False)
        if proc.returncode == 0:
            return
        out = (proc.stdout + proc.stderr).decode(errors="replace")
        msg = redact(f"git push failed ({proc.returncode}): {out.strip()}", self.genv.base)
        if re.search(r"\[rejected\]|non-fast-forward|fetch first|\(stale info\)|cannot lock ref"
                     r"|failed to update ref", out):
            raise PushRejected(msg)
        raise GitError(msg)

    def log_file(self, path: str) -> list[str]:
        """Return the commits touching ``path`` on HEAD, newest first."""
        if not self.head():
            return []
        return self.git("log", "--format=%H", "--", path).split()

    def show(self, rev: str, path: str) -> str | None:
        """Return ``path`` as of commit ``rev``, or None when it does not exist there."""
        proc = self.genv.run(["show", f"{rev}:{path}"], cwd=self.dir, check=False)
        return proc.stdout.decode() if proc.returncode == 0 else None

    def commit_count(self) -> int:
        """Return the number of commits on HEAD."""
        return int(self.git("rev-list", "--count", "HEAD").strip()) if self.head() else 0


def _stripspace(message: str) -> str:
    """Return ``message`` cleaned as ``git commit -F`` cleans it (``--cleanup=whitespace``).

    git's ``strbuf_stripspace`` (strbuf.c) without comment stripping: trailing whitespace cut
    from every line, blank lines at the start and end dropped, runs of blank lines made one,
    a final newline. fast-import stores a message verbatim, so this keeps it what it was.
    """
    lines = [line.rstrip(" \t\r") for line in message.split("\n")]  # git's isspace: no \v, \f
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "".join(f"{line}\n" for line in out)


def _quote_path(path: str) -> bytes:
    """Return ``path`` as a fast-import path: C-style quoted (git's own quoting), so any name is exact."""
    out = ['"']
    for b in path.encode():
        ch = chr(b)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= b < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    out.append('"')
    return "".join(out).encode()


def open_clone(url: str, branch: str, repo_root: Path, dest: Path, genv: GitEnv) -> Clone:
    """Return a clone of the GitOps repo, first creating a missing local bare repo with an initial commit."""
    resolved = resolve_url(url, repo_root)
    if is_local_url(resolved) and not resolved.startswith("file://"):
        ensure_bare_repo(Path(resolved), branch, genv)
    return Clone.create(resolved, branch, dest, genv)


def publish(clone: Clone, max_attempts: int, apply: Callable[[Clone], bool]) -> int:
    """Fetch, reset onto the remote head, ``apply`` the change and push; retry when the push is rejected.

    The first attempt on a clone straight from :meth:`Clone.create` skips the fetch and
    reset (the clone is that head). ``apply`` edits and commits on the fresh head and
    returns True when there is something to push (False: nothing to do, or it refused). Because every
    attempt starts from the newest remote head and re-applies, concurrent
    promoters of different artifacts all land and nothing is overwritten.
    Retries use tenacity with full-jitter exponential backoff so colliding
    writers spread out. Returns the number of attempts made; raises
    PushRejected after ``max_attempts`` rejections, GitError on other failures.
    """
    retrying = Retrying(stop=stop_after_attempt(max_attempts),
                        wait=wait_random_exponential(multiplier=0.5, max=8),
                        retry=retry_if_exception_type(PushRejected), reraise=True)
    attempts = 0
    for attempt in retrying:
        with attempt:
            attempts += 1
            if not clone.just_cloned:  # a clone made a moment ago already is the remote head
                clone.fetch()
                clone.reset_to_remote()
            clone.just_cloned = False
            if apply(clone):
                clone.push()
    return attempts
