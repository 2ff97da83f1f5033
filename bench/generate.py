"""Generate a repository of N prompts, each with a golden dataset and the recordings that answer it.

    python bench/generate.py OUT --prompts 200 [--tests 3]

Deterministic: the same N and seed give byte-identical files. The repository is a git repo on
``main`` with the project's ``config/pipeline.yaml`` (the trusted policy ``run`` reads at ``main``),
so ``python workflows/submit.py run prompt --repo OUT`` runs it offline: the answers are compiled
into keyed recordings by the project's own tool (``steps.providers.author``), exactly as a user
authors answers, so the recorded provider serves every test and every test passes.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WORDS = ("account", "billing", "refund", "invoice", "password", "login", "latency", "outage", "region",
         "cluster", "deploy", "rollback", "customer", "ticket", "escalate", "summary", "report", "weekly",
         "priority", "severity", "quota", "backup", "restore", "webhook", "token", "session", "export")
MODELS = ("gpt-4o-mini", "gpt-4.1-mini")
GITIGNORE = ".promptci/\n"


class GenerateError(Exception):
    """The generated repository could not be made runnable (a recording could not be authored)."""


def prompt_id(i: int) -> str:
    """Return the id of generated prompt ``i`` (also its file name)."""
    return f"gen-{i:04d}"


def _prompt(i: int, rnd: random.Random, tests: int) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, str]]:
    """Return (prompt document, dataset tests, answers by test description) of prompt ``i``."""
    pid = prompt_id(i)
    system = "You are the support assistant for team " + " ".join(rnd.choices(WORDS, k=rnd.randint(30, 90)))
    prompt: dict[str, Any] = {
        "kind": "prompt", "id": pid, "version": "1.0.0", "description": "generated for the benches",
        "owner": "bench", "model": MODELS[i % len(MODELS)],
        "messages": [{"role": "system", "content": system},
                     {"role": "user", "content": "Customer {{name}} asks: {{question}}"}],
        "variables": {"name": {"type": "string"}, "question": {"type": "string"}},
        "evals": [{"name": "golden", "path": f"evals/{pid}/golden.yaml"}]}
    cases: list[dict[str, Any]] = []
    answers: dict[str, str] = {}
    for j in range(tests):
        topic = rnd.choice(WORDS)
        desc = f"case {j} {topic}"
        cases.append({"description": desc,
                      "vars": {"name": f"user{j}", "question": " ".join(rnd.choices(WORDS, k=12)) + f" {topic}?"},
                      "assert": [{"type": "icontains", "value": topic}]})
        answers[desc] = f"Hello user{j}, about your {topic}: " + " ".join(rnd.choices(WORDS, k=20)) + "."
    return prompt, cases, answers


def git(root: Path, *args: str) -> str:
    """Run git in ``root`` with a fixed identity and return its stdout (raises on failure)."""
    return subprocess.run(["git", "-C", str(root), "-c", "user.name=bench", "-c", "user.email=bench@localhost",
                           *args], check=True, capture_output=True, text=True).stdout.strip()


def commit_all(root: Path, message: str) -> str:
    """Commit everything in ``root`` (a new repo on ``main`` when none) and return the commit's sha."""
    if not (root / ".git").exists():
        subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    (root / ".gitignore").write_text(GITIGNORE)
    git(root, "add", "-A")
    git(root, "commit", "-q", "--allow-empty", "-m", message)
    return git(root, "rev-parse", "HEAD")


def copy_policy(root: Path) -> None:
    """Write the project's pipeline policy into ``root``, without the overrides that name the samples."""
    policy = yaml.safe_load((ROOT / "config" / "pipeline.yaml").read_text())
    policy.pop("overrides", None)  # they match no generated id (validate would warn about each)
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "config" / "pipeline.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))


def generate(out: Path, prompts: int, *, tests: int = 3, seed: int = 7) -> int:
    """Write ``prompts`` prompts with datasets and recordings under ``out``, commit them; return the eval items.

    One golden dataset per prompt, so the eval items are ``prompts``. Raises GenerateError
    when an answer cannot be compiled into a recording (the repo would not run offline).
    """
    from steps.providers.author import author

    if out.exists() and any(out.iterdir()):
        raise GenerateError(f"{out} is not empty")
    rnd = random.Random(seed)
    (out / "prompts").mkdir(parents=True)
    (out / "recordings").mkdir()
    responses: dict[str, dict[str, dict[str, str]]] = {}
    for i in range(prompts):
        prompt, cases, answers = _prompt(i, rnd, tests)
        pid = prompt_id(i)
        (out / "evals" / pid).mkdir(parents=True)
        (out / "evals" / pid / "golden.yaml").write_text(yaml.safe_dump(cases, sort_keys=False))
        (out / "prompts" / f"{pid}.yaml").write_text(yaml.safe_dump(prompt, sort_keys=False))
        responses[pid] = {"golden": answers}
    responses_file = out / "recordings" / "responses.yaml"
    responses_file.write_text(yaml.safe_dump(responses, sort_keys=False))
    copy_policy(out)
    problems = author(out.resolve(), responses_file, out / "recordings", [out / "prompts"])
    if problems:
        raise GenerateError("; ".join(problems[:5]))
    commit_all(out, f"{prompts} generated prompts")
    return prompts


def copy_samples(out: Path) -> None:
    """Copy the committed sample artifacts (prompts, datasets, recordings, config) into a new git repo ``out``."""
    tracked = git(ROOT, "ls-files").splitlines()
    dirs = {"config", "prompts", "evals", "model-configs", "rag-configs", "guardrails", "recordings"}
    for rel in tracked:
        src = ROOT / rel
        if rel.split("/")[0] in dirs and src.is_file():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out / rel)
    commit_all(out, "samples")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="an empty or absent directory (keep it under /tmp)")
    ap.add_argument("--prompts", type=int, default=200)
    ap.add_argument("--tests", type=int, default=3, help="golden tests per prompt")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    try:
        n = generate(args.out, args.prompts, tests=args.tests, seed=args.seed)
    except GenerateError as exc:
        print(f"generate: {exc}", file=sys.stderr)
        return 1
    print(f"generate: {n} prompts x 1 dataset x {args.tests} tests in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
