"""Git plumbing: credentials from the environment only, redaction, bare-repo bootstrap, push rejection."""

from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from steps.gitops.gitops import (
    Author,
    Clone,
    GitEnv,
    GitError,
    PushRejected,
    ensure_bare_repo,
    is_local_url,
    open_clone,
    redact,
    resolve_url,
    url_has_credentials,
)

TOKEN = "ghp_FAKEtoken_0123456789abcdef"
AUTHOR = Author("Bot", "bot@example.test")


class _AuthRecorder(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        auth = self.headers.get("Authorization")
        if auth:
            type(self).seen.append(auth)
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="test"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_remote() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on 127.0.0.1 that demands Basic auth and records what it was sent."""
    _AuthRecorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AuthRecorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/org/gitops.git", _AuthRecorder.seen
    finally:
        server.shutdown()
        server.server_close()


def test_https_token_comes_from_env_via_askpass_and_never_lands_on_disk_or_in_errors(
        tmp_path: Path, http_remote: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    url, seen = http_remote
    monkeypatch.setenv("PROMPTCI_GIT_TOKEN", TOKEN)
    monkeypatch.setenv("PROMPTCI_GIT_USERNAME", "deploy-bot")
    dest = tmp_path / "clone"
    with GitEnv(AUTHOR) as genv, pytest.raises(GitError) as err:
        Clone.create(url, "main", dest, genv)

    # git asked the askpass helper, which answered from the environment.
    assert seen and base64.b64decode(seen[-1].split()[1]).decode() == f"deploy-bot:{TOKEN}"
    assert TOKEN not in str(err.value)
    # A failed `git clone` removes what it wrote; nothing it left anywhere holds the token.
    assert not (dest / ".git").exists()
    for f in tmp_path.rglob("*"):
        assert not f.is_file() or TOKEN.encode() not in f.read_bytes()


def test_askpass_helper_dir_is_removed_and_holds_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTCI_GIT_TOKEN", TOKEN)
    genv = GitEnv(AUTHOR)
    script = Path(genv.env["GIT_ASKPASS"])
    assert TOKEN not in script.read_text()
    assert TOKEN not in " ".join(v for k, v in genv.env.items() if k.startswith("GIT_"))
    genv.close()
    assert not script.exists()


def test_ssh_key_from_env_becomes_git_ssh_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTCI_GIT_SSH_KEY", "/var/run/secrets/git/id ed25519")
    with GitEnv() as genv:
        assert genv.env["GIT_SSH_COMMAND"].startswith("ssh -i '/var/run/secrets/git/id ed25519' "
                                                      "-o IdentitiesOnly=yes")


def test_url_with_embedded_credentials_is_refused_and_redacted(tmp_path: Path) -> None:
    url = f"https://bot:{TOKEN}@git.example.test/org/gitops.git"
    assert url_has_credentials(url) and not url_has_credentials("https://git.example.test/x.git")
    with GitEnv() as genv, pytest.raises(GitError) as err:
        Clone.create(url, "main", tmp_path / "c", genv)
    assert TOKEN not in str(err.value) and "https://***@git.example.test" in str(err.value)
    assert not (tmp_path / "c").exists()


def test_redact_removes_env_token_and_url_userinfo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTCI_GIT_TOKEN", TOKEN)
    text = redact(f"fatal: could not read from https://x:{TOKEN}@h/r.git and {TOKEN}")
    assert TOKEN not in text and text == "fatal: could not read from https://***@h/r.git and ***"


@pytest.mark.parametrize(("url", "local"), [
    (".promptci/gitops.git", True), ("/srv/gitops.git", True), ("file:///srv/g.git", True),
    ("https://github.com/o/r.git", False), ("git@github.com:o/r.git", False), ("ssh://git@h/r", False)])
def test_is_local_url(url: str, local: bool) -> None:
    assert is_local_url(url) is local


def test_relative_local_url_resolves_against_repo_root(tmp_path: Path) -> None:
    assert resolve_url(".promptci/gitops.git", tmp_path) == str(tmp_path / ".promptci/gitops.git")
    assert resolve_url("git@h:o/r.git", tmp_path) == "git@h:o/r.git"


def test_concurrent_bootstrap_creates_one_bare_repo_with_one_initial_commit(tmp_path: Path) -> None:
    target = tmp_path / "gitops.git"
    with GitEnv(AUTHOR) as genv, ThreadPoolExecutor(6) as pool:
        created = list(pool.map(lambda _: ensure_bare_repo(target, "main", genv), range(6)))
        assert created.count(True) == 1
        assert genv.run(["rev-list", "--count", "main"], cwd=target).stdout.strip() == b"1"
        assert genv.run(["symbolic-ref", "HEAD"], cwd=target).stdout.strip() == b"refs/heads/main"
    assert [p.name for p in tmp_path.iterdir()] == ["gitops.git"]  # no temp dirs left behind


def test_stale_push_raises_push_rejected(tmp_path: Path) -> None:
    with GitEnv(AUTHOR) as genv:
        first = open_clone("remote.git", "main", tmp_path, tmp_path / "one", genv)
        second = Clone.create(str(tmp_path / "remote.git"), "main", tmp_path / "two", genv)
        (first.dir / "f").write_text("1")
        assert first.commit_paths(["f"], "one") is not None
        first.push()
        (second.dir / "g").write_text("2")
        second.commit_paths(["g"], "two")
        with pytest.raises(PushRejected):
            second.push()
        assert first.commit_paths(["f"], "no change") is None  # nothing staged -> no empty commit


def test_empty_remote_without_the_branch_gets_it_on_first_push(tmp_path: Path) -> None:
    remote = tmp_path / "empty.git"
    with GitEnv(AUTHOR) as genv:
        genv.run(["init", "--bare", "--quiet", str(remote)])
        clone = Clone.create(str(remote), "gitops", tmp_path / "c", genv)
        assert clone.head() is None and clone.remote_head() is None
        clone.reset_to_remote()
        (clone.dir / "f").write_text("x")
        sha = clone.commit_paths(["f"], "first")
        clone.push()
        assert genv.run(["rev-parse", "gitops"], cwd=remote).stdout.decode().strip() == sha


def _commit_shape(genv: GitEnv, cwd: Path, sha: str) -> tuple[str, str, str, str, str]:
    """Return what a reviewer reads of a commit: tree, parents, author, committer (no dates), message."""
    raw = genv.run(["show", "-s", "--format=%T%n%P%n%an <%ae>%n%cn <%ce>%n%B", sha], cwd=cwd).stdout.decode()
    tree, parents, author, committer, message = raw.split("\n", 4)
    return tree, str(len(parents.split())), author, committer, message


def _loose_objects(genv: GitEnv, repo: Path) -> int:
    """Return how many objects ``repo`` holds as loose files (``git count-objects``), not in packs."""
    counts = genv.run(["count-objects", "-v"], cwd=repo).stdout.decode().splitlines()
    return int(dict(line.split(": ", 1) for line in counts)["count"])


def test_commit_series_makes_the_commits_commit_paths_makes(tmp_path: Path) -> None:
    """One fast-import for N commits must land exactly the commits N ``git commit``s would:
    same trees, parents, author, committer and message (git's whitespace clean-up included),
    odd path names kept byte for byte, and a clean clone afterwards."""
    changes: list[tuple[dict[str, bytes], str]] = [
        ({"env/dev/a.yaml": b"a: 1\n", "env/dev/kustomization.yaml": b"resources:\n- a.yaml\n"},
         "promote(dev): a\n\nVersion: \nArtifact: a\n"),
        ({"env/dev/b c\"d\u00e9.yaml": "x: \u00e9\U0001f600\n".encode(), "env/dev/kustomization.yaml": b"r: 2\n"},
         "\n\nsubject with trailing space   \n\n\n\nbody\t\n\n"),
        ({"env/dev/a.yaml": b"a: 2\n"}, "third"),
    ]
    with GitEnv(AUTHOR) as genv:
        by_commit = open_clone("remote.git", "main", tmp_path, tmp_path / "one", genv)
        by_series = Clone.create(str(tmp_path / "remote.git"), "main", tmp_path / "two", genv)
        expected = []
        for files, message in changes:
            for rel, data in files.items():
                (by_commit.dir / rel).parent.mkdir(parents=True, exist_ok=True)
                (by_commit.dir / rel).write_bytes(data)
            sha = by_commit.commit_paths(sorted(files), message)
            assert sha is not None
            expected.append(_commit_shape(genv, by_commit.dir, sha))
        loose = {repo: _loose_objects(genv, repo) for repo in (by_series.dir, tmp_path / "remote.git")}
        got = by_series.commit_series(changes)
        assert [_commit_shape(genv, by_series.dir, sha) for sha in got] == expected
        assert got[-1] == by_series.head()
        assert genv.run(["rev-list", "--count", "HEAD"], cwd=by_series.dir).stdout.strip() == b"4"
        assert genv.run(["status", "--porcelain"], cwd=by_series.dir).stdout == b""
        by_series.push()
        assert genv.run(["rev-parse", "main"], cwd=tmp_path / "remote.git").stdout.decode().strip() == got[-1]
        for repo, before in loose.items():  # the import and the push each stay one pack: no file per object
            assert _loose_objects(genv, repo) == before, repo
            genv.run(["fsck", "--no-dangling", "--no-progress"], cwd=repo)
        assert by_series.commit_series([]) == []


def test_commit_series_on_a_branch_the_remote_lacks_starts_a_root_commit(tmp_path: Path) -> None:
    remote = tmp_path / "empty.git"
    with GitEnv(AUTHOR) as genv:
        genv.run(["init", "--bare", "--quiet", str(remote)])
        clone = Clone.create(str(remote), "gitops", tmp_path / "c", genv)
        clone.reset_to_remote()
        first, second = clone.commit_series([({"f": b"1"}, "one"), ({"g": b"2"}, "two")])
        clone.push()
        assert genv.run(["rev-list", "gitops"], cwd=remote).stdout.decode().split() == [second, first]
        assert genv.run(["ls-tree", "--name-only", "gitops"], cwd=remote).stdout.decode().split() == ["f", "g"]
