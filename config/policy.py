"""Where the pipeline's gates come from: a trusted source, never the revision under test.

The quality gates (thresholds, promotion chain, approval) decide whether a commit may
ship, so the commit must not be able to write them. The trusted policy is, in order:

1. ``$PROMPTCI_CONFIG``: on a cluster the ConfigMap ``promptci-pipeline-config`` that
   ``register`` writes from the protected branch, mounted at ``/etc/promptci/pipeline.yaml``;
   locally an explicit ``--config``;
2. otherwise ``config/pipeline.yaml`` as committed at a trusted ref
   (``$PROMPTCI_TRUSTED_REF``, default the target branch's tip: ``origin/main``, else
   ``main``), read with ``git show REF:config/pipeline.yaml``. Never the working tree.
   No such ref (not a git checkout), or a ref without that file: the policy shipped with
   promptci (``config/pipeline.yaml`` of the installed package, in the step image on a cluster).

The revision under test may still carry its own ``config/pipeline.yaml``. A change there
may only tighten the gates it touches (:func:`loosenings`); when it does, the tightened
gates apply. ``eval.max_shards`` (the eval fan-out's width, so the pods a run may start) is
treated like a gate that may only go down: a revision may lower it, never raise it; likewise
``eval.min_tests_per_shard`` may only go up (fewer, fuller shards, never more).
Anything looser is refused with one line per field, trusted value then proposed value.
Settings that are not gates (GitOps repo, store, triggers, artifact directories) always
come from the trusted policy: a change to them takes effect once it is on the trusted ref.
See docs/promote.md, "Threat model".
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.pipeline import (
    DEFAULT_CONFIG,
    ConfigError,
    EvalThresholds,
    PromptPipelineConfig,
    ResolvedConfig,
    load_pipeline_config,
    load_pipeline_text,
)
from config.settings import get_settings

CONFIG_ENV = "PROMPTCI_CONFIG"
TRUSTED_REF_ENV = "PROMPTCI_TRUSTED_REF"
CONFIG_PATH = "config/pipeline.yaml"
DEFAULT_REFS = ("origin/main", "main")
# The settings that are not gates: always the trusted policy's, whatever the revision says.
NON_GATE_FIELDS = ("gitops", "store", "triggers", "artifact_dirs")


class PolicyError(Exception):
    """No trusted policy can be read (no ref, unreadable or invalid): a usage error, exit 2."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


class PolicyLoosened(Exception):
    """The revision under test loosens a gate: a refusal, exit 1. ``lines``: one per field."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


@dataclass
class Policy:
    """The policy a stage applies, where it came from, and what the revision's config changed."""

    config: PromptPipelineConfig
    source: str
    tightened: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def _git(repo_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=repo_root, capture_output=True, text=True, check=False,
                          env={**os.environ, "LC_ALL": "C"})


def trusted_ref(repo_root: Path, ref: str | None = None) -> str | None:
    """Return the ref the trusted policy is read from: ``ref`` or ``$PROMPTCI_TRUSTED_REF`` (which must
    exist: PolicyError otherwise), else the first of ``origin/main``, ``main`` that exists, else None
    (not a git checkout, or no such branch: the policy shipped with promptci is the trusted one)."""
    wanted = ref or get_settings().trusted_ref
    for candidate in ([wanted] if wanted else list(DEFAULT_REFS)):
        if _git(repo_root, "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}").returncode == 0:
            return candidate
    if wanted:
        raise PolicyError([f"{repo_root}: no trusted pipeline policy: ref {wanted} not found (pass --config, or "
                           f"set {TRUSTED_REF_ENV} to the protected branch)"])
    return None


def trusted_text(repo_root: Path, ref: str | None = None) -> tuple[str | None, str]:
    """Return (text of ``config/pipeline.yaml`` at the trusted ref or None when there is none, source name)."""
    name = trusted_ref(repo_root, ref)
    if name is None:
        return None, f"no {' or '.join(DEFAULT_REFS)} in {repo_root}"
    sha = _git(repo_root, "rev-parse", "--short=12", f"{name}^{{commit}}").stdout.strip()
    proc = _git(repo_root, "show", f"{name}:{CONFIG_PATH}")
    where = f"{name}:{CONFIG_PATH} ({sha})"
    return (proc.stdout if proc.returncode == 0 else None), where


def load_trusted(repo_root: Path, explicit: Path | str | None = None,
                 ref: str | None = None) -> tuple[PromptPipelineConfig, str, Path | None]:
    """Return (trusted config, where it came from, its file when it is one).

    ``explicit`` (``--config``), else ``$PROMPTCI_CONFIG``, else the trusted ref. No default
    ref, or a ref without ``config/pipeline.yaml``, means the policy shipped with promptci
    (in the image on a cluster). Raises PolicyError (an explicit ref or file that is not there,
    an invalid policy).
    """
    config, source, file, _text = _load_trusted(repo_root, explicit, ref)
    return config, source, file


def _load_trusted(repo_root: Path, explicit: Path | str | None,
                  ref: str | None) -> tuple[PromptPipelineConfig, str, Path | None, str | None]:
    """Return :func:`load_trusted`'s three, and the text read from the trusted ref (None for a file)."""
    path = explicit or get_settings().config
    try:
        if path:
            p = Path(path)
            if not p.is_file():
                raise PolicyError([f"{p}: the trusted pipeline config does not exist"])
            return load_pipeline_config(p), str(p), p.resolve(), None
        text, where = trusted_text(repo_root, ref)
        if text is None:  # no trusted ref, or it has no policy: the one shipped with promptci
            return load_pipeline_config(DEFAULT_CONFIG), f"promptci's {DEFAULT_CONFIG} ({where}: none)", None, None
        return load_pipeline_text(text, where), where, None, text
    except ConfigError as exc:
        raise PolicyError([p.format() for p in exc.problems]) from None


def trusted_policy_text(repo_root: Path, explicit: Path | str | None = None,
                        ref: str | None = None) -> tuple[str, str]:
    """Return (text, source) of the trusted policy, validated: what ``register`` puts in the ConfigMap
    and the local runner mounts in its place. Raises PolicyError.

    The text is the one that was validated, read from git once: a second read could see the ref moved.
    """
    config, source, file, text = _load_trusted(repo_root, explicit, ref)
    del config  # loaded only to validate it: a broken policy never reaches a pod
    if file is not None:
        return file.read_text(), source
    return (text if text is not None else DEFAULT_CONFIG.read_text()), source


# ------------------------------------------------------------------ tighten-only


def _ids(*configs: PromptPipelineConfig, extra: Iterable[str] = ()) -> list[str]:
    """Return the artifact ids to compare on: the defaults (""), every override's own pattern, ``extra``.

    An override's pattern matches itself (``fnmatch('support-*', 'support-*')``), so every
    override is seen resolved on top of whatever else matches it.
    """
    return list(dict.fromkeys(["", *(o.match for c in configs for o in c.overrides), *extra]))


def _fmt(v: Any) -> str:
    return "unset" if v is None else str(v).lower() if isinstance(v, bool) else f"{v:g}" \
        if isinstance(v, float) else str(v)


def _threshold_loosenings(a: EvalThresholds, b: EvalThresholds) -> list[tuple[str, Any, Any]]:
    """Return the numeric gates of ``b`` looser than ``a``'s, by the fields' naming rule.

    A ``min_*`` number is looser when lower, a ``max_*`` number when higher (``max_regression``,
    and any gate added the same way, such as a false-positive-rate ceiling); a gate the
    trusted side sets and the proposed side unsets (None) is looser too. Dict-valued gates
    (``min_scores``) and the repeat rule are compared by the caller.
    """
    out: list[tuple[str, Any, Any]] = []
    for name in sorted(type(a).model_fields):
        x, y = getattr(a, name), getattr(b, name)
        if not name.startswith(("min_", "max_")) or not isinstance(x, int | float) or isinstance(x, bool):
            continue
        if y is None or (y < x if name.startswith("min_") else y > x):
            out.append((name, x, y))
    return out


def _compare(t: ResolvedConfig, p: ResolvedConfig) -> list[tuple[str, Any, Any]]:
    """Return ``(field, trusted, proposed)`` for every gate of ``p`` looser than ``t``'s."""
    out: list[tuple[str, Any, Any]] = []
    chain_t, chain_p = t.promotion.chain, p.promotion.chain
    it = iter(chain_p)
    if not all(env in it for env in chain_t):  # trusted chain must stay a subsequence, in order
        out.append(("promotion.chain", chain_t, chain_p))
    from_defaults: set[tuple[str, str, str]] = set()
    for env in [None, *chain_t]:
        if env is not None and env not in chain_p:
            continue
        a, b = t.thresholds_for(env), p.thresholds_for(env)
        pre = "eval" if env is None else f"promotion.environments.{env}"
        found = _threshold_loosenings(a, b)
        for metric, minimum in sorted(a.min_scores.items()):
            if b.min_scores.get(metric, float("-inf")) < minimum:
                found.append((f"min_scores.{metric}", minimum, b.min_scores.get(metric)))
        runs = (f"{a.required_passes} of {a.repeats}", f"{b.required_passes} of {b.repeats}")
        if b.required_passes < a.required_passes:
            found.append(("k_of_n", *runs))
        elif b.repeats - b.required_passes > a.repeats - a.required_passes:
            found.append(("repeats", *runs))
        if env is not None and t.promotion.gate(env).manual_approval and not p.promotion.gate(env).manual_approval:
            found.append(("manual_approval", True, False))
        for name, x, y in found:
            if env is None:
                from_defaults.add((name, _fmt(x), _fmt(y)))
            elif (name, _fmt(x), _fmt(y)) in from_defaults:
                continue  # the same loosening, inherited from the defaults: said once
            out.append((f"{pre}.{name}", x, y))
    # An empty list means every dataset: a list is looser unless it keeps every trusted one.
    if p.datasets and (not t.datasets or not set(t.datasets) <= set(p.datasets)):
        out.append(("datasets", t.datasets or "all", p.datasets))
    lt, lp = t.token_limits, p.token_limits
    if lt.max_prompt_tokens is not None and (lp.max_prompt_tokens is None
                                             or lp.max_prompt_tokens > lt.max_prompt_tokens):
        out.append(("token_limits.max_prompt_tokens", lt.max_prompt_tokens, lp.max_prompt_tokens))
    if lt.reserve_output_tokens and not lp.reserve_output_tokens:
        out.append(("token_limits.reserve_output_tokens", True, False))
    return out


def loosenings(trusted: PromptPipelineConfig, proposed: PromptPipelineConfig, where: str = CONFIG_PATH,
               artifact_ids: Iterable[str] = ()) -> list[str]:
    """Return one line per gate the proposed config makes looser than the trusted one.

    Compared on the resolved settings of the defaults, of every override pattern and of
    ``artifact_ids``; a loosening already shown for the defaults is not repeated per override.
    """
    lines: list[str] = []
    # A wider fan-out is more pods and promptfoo starts: only the trusted policy may allow it.
    if proposed.eval.max_shards > trusted.eval.max_shards:
        lines.append(f"{where}: eval.max_shards: trusted {trusted.eval.max_shards}, proposed "
                     f"{proposed.eval.max_shards}: a change under test may only tighten a gate")
    if proposed.eval.min_tests_per_shard < trusted.eval.min_tests_per_shard:
        lines.append(f"{where}: eval.min_tests_per_shard: trusted {trusted.eval.min_tests_per_shard}, proposed "
                     f"{proposed.eval.min_tests_per_shard}: a change under test may only tighten a gate")
    seen: set[tuple[str, str, str]] = set()
    for aid in _ids(trusted, proposed, extra=artifact_ids):
        scope = "defaults" if aid == "" else f"artifacts matching '{aid}'"
        for name, a, b in _compare(trusted.for_artifact(aid), proposed.for_artifact(aid)):
            key = (name, _fmt(a), _fmt(b))
            if key in seen:
                continue
            seen.add(key)
            lines.append(f"{where}: {scope}: {name}: trusted {_fmt(a)}, proposed {_fmt(b)}: "
                         "a change under test may only tighten a gate")
    return lines


def _changed_non_gates(trusted: PromptPipelineConfig, proposed: PromptPipelineConfig) -> list[str]:
    return [name for name in NON_GATE_FIELDS if getattr(trusted, name) != getattr(proposed, name)]


def effective_policy(repo_root: Path, explicit: Path | str | None = None, ref: str | None = None,
                     artifact_ids: Iterable[str] = ()) -> Policy:
    """Return the policy to apply to the revision checked out at ``repo_root``.

    The trusted config, with the gates of the revision's own ``config/pipeline.yaml``
    when that file only tightens them. Raises PolicyError (no or bad trusted source, or a
    revision config that does not parse) and PolicyLoosened (one line per looser field).
    """
    trusted, source, trusted_file = load_trusted(repo_root, explicit, ref)
    policy = Policy(trusted, source)
    proposed_path = repo_root / CONFIG_PATH
    if not proposed_path.is_file() or (trusted_file is not None and proposed_path.resolve() == trusted_file):
        return policy
    try:
        proposed = load_pipeline_config(proposed_path)
    except ConfigError as exc:
        raise PolicyError([p.format() for p in exc.problems]) from None
    loose = loosenings(trusted, proposed, str(CONFIG_PATH), artifact_ids)
    if loose:
        raise PolicyLoosened(loose)
    gates = proposed.model_dump(exclude=set(NON_GATE_FIELDS))
    if gates != trusted.model_dump(exclude=set(NON_GATE_FIELDS)):
        policy.config = PromptPipelineConfig.model_validate(
            {**gates, **trusted.model_dump(include=set(NON_GATE_FIELDS))})
        policy.tightened.append(f"{CONFIG_PATH}: the revision's gates are tighter than {source}; "
                                "applying them")
    policy.ignored = [f"{CONFIG_PATH}: {name} differs from {source}; the trusted value is used until "
                      "the change is on the trusted ref" for name in _changed_non_gates(trusted, proposed)]
    return policy


__all__ = ["CONFIG_ENV", "TRUSTED_REF_ENV", "Policy", "PolicyError", "PolicyLoosened", "effective_policy",
           "load_trusted", "loosenings", "trusted_policy_text", "trusted_text", "trusted_ref"]
