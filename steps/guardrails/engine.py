"""The reference semantics of promptci's guardrail-policy format, as a small library.

An application that enforces a policy imports this module, so the eval and
production cannot disagree::

    from steps.guardrails.engine import PolicyEngine
    engine = PolicyEngine(policy)                    # a GuardrailPolicyArtifact
    decision = engine.evaluate(input=user_text, output=model_text)
    decision.action   # "allow" | "redact" | "block"

The semantics, rule by rule:

* **Direction.** A rule applies to the user input, the model output, or both
  (``applies_to``). ``evaluate`` checks the input against input rules and the
  output against output rules.
* **Patterns** are Python regular expressions, matched case-insensitively
  against the *folded* text (see ``steps.guardrails.folding``: NFKC, Unicode
  look-alikes, zero-width characters removed, full case folding). A pattern
  therefore catches ``IGNORE``, ``ｉｇｎｏｒｅ`` and ``іgnоre`` alike.
* **Validators** narrow a pattern: with ``validators: [luhn]`` a match counts
  only when its digits (13 to 19 of them) pass the Luhn checksum, so an order
  number shaped like a card is not a card.
* **Categories** label a rule. A rule with categories and *no* patterns is a
  classifier rule: the policy's ``classifier`` model decides whether the text
  belongs to one of them (recorded offline, live when configured).
* **Precedence.** Every applicable rule is evaluated; the decision is the most
  severe action among the rules that matched: ``block`` > ``redact`` >
  ``warn`` = ``log`` (which allow the text, and are reported). With no match,
  the policy's ``default_action`` applies.
* **Redaction** (when the decision is ``redact``) replaces every span matched
  by a redact rule in the *original* text with the rule's ``replacement``
  (default ``[REDACTED:<rule id>]``). Overlapping spans merge; the merged span
  takes the replacement of the rule that matched first in the text (ties: the
  rule listed first). A classifier rule that redacts replaces the whole text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from stdnum import luhn  # python-stdnum: the Luhn checksum

from config.artifacts import GuardrailPolicyArtifact, GuardrailRule
from steps.guardrails.folding import fold, original_span

Direction = Literal["input", "output"]
Outcome = Literal["allow", "redact", "block"]
SEVERITY = {"log": 1, "warn": 1, "redact": 2, "block": 3}
OUTCOME_OF: dict[str, Outcome] = {"log": "allow", "warn": "allow", "redact": "redact", "block": "block"}
NON_DIGIT = re.compile(r"\D")

# A classifier answers which of the given categories the text belongs to.
Classifier = Callable[[str, list[str]], set[str]]


@dataclass(frozen=True)
class Match:
    """One rule that matched: where in the original text (None for a classifier verdict on the whole text)."""

    rule_id: str
    action: str
    categories: tuple[str, ...]
    span: tuple[int, int] | None


@dataclass
class Decision:
    """What the policy decided about one text (or an input/output pair)."""

    action: Outcome
    matches: list[Match] = field(default_factory=list)
    redacted: str | None = None

    @property
    def rules(self) -> list[str]:
        """Return the ids of the rules that matched, in order, without repeats."""
        return list(dict.fromkeys(m.rule_id for m in self.matches))

    @property
    def categories(self) -> list[str]:
        """Return the categories of the matched rules, sorted."""
        return sorted({c for m in self.matches for c in m.categories})

    def as_dict(self) -> dict[str, object]:
        """Return the decision as JSON-ready data (what the promptfoo provider outputs)."""
        return {"action": self.action, "rules": self.rules, "categories": self.categories,
                "redacted": self.redacted}


def luhn_ok(text: str) -> bool:
    """Return True when the digits of ``text`` are a plausible card number: 13–19 digits, valid Luhn."""
    digits = NON_DIGIT.sub("", text)
    return 13 <= len(digits) <= 19 and luhn.is_valid(digits)


VALIDATORS: dict[str, Callable[[str], bool]] = {"luhn": luhn_ok}


def required_literal(pattern: str) -> str | None:
    """Return an ASCII string every match of ``pattern`` must contain (lower-cased), or None.

    The longest run of plain characters at the pattern's top level (``ignore `` in
    ``ignore (all|any) previous``). A substring test on the folded text is far
    cheaper than running the regex, and it can only skip texts the regex could
    not match: it is used on ASCII folded text only, where case-insensitive
    matching of an ASCII literal means exactly its lower-case form. Reads the
    pattern with the standard library's own regex parser; anything it cannot
    read simply gets no shortcut.
    """
    try:
        from re import _constants, _parser  # type: ignore[attr-defined]  # the parser re.compile uses

        items = _parser.parse(pattern, re.IGNORECASE).data
    except Exception:  # noqa: BLE001 (no shortcut is always correct)
        return None
    best, run = "", ""
    for op, av in items:
        if op is _constants.LITERAL and chr(av).isascii():
            run += chr(av).lower()
        else:
            run = ""
        best = max(best, run, key=len)
    return best or None


@dataclass
class _Rule:
    spec: GuardrailRule
    regexes: list[tuple[re.Pattern[str], str | None]]

    def applies(self, direction: Direction) -> bool:
        return self.spec.applies_to in (direction, "both")


class PolicyEngine:
    """Evaluates texts against one policy. Compile once, call ``check``/``evaluate`` many times."""

    def __init__(self, policy: GuardrailPolicyArtifact, classifier: Classifier | None = None):
        self.policy = policy
        self.classifier = classifier
        self._rules = [_Rule(r, [(re.compile(p, re.IGNORECASE), required_literal(p)) for p in r.patterns])
                       for r in policy.rules]
        if classifier is None and any(not r.regexes for r in self._rules):
            raise ValueError(f"policy {policy.id} has classifier rules but no classifier was given")

    def _matches(self, text: str, direction: Direction) -> list[Match]:
        folded, index = fold(text)
        found: list[Match] = []
        for rule in self._rules:
            spec = rule.spec
            if not rule.applies(direction):
                continue
            if not rule.regexes:
                assert self.classifier is not None
                hit = self.classifier(text, list(spec.categories)) & set(spec.categories)
                if hit:
                    found.append(Match(spec.id, spec.action, tuple(spec.categories), None))
                continue
            for rx, literal in rule.regexes:
                if literal is not None and index is None and literal not in folded:
                    continue  # ASCII text without the literal every match needs
                for m in rx.finditer(folded):
                    if m.end() == m.start():
                        continue  # an empty match says nothing about the text
                    start, end = original_span(m.start(), m.end(), index, len(text))
                    if all(VALIDATORS[v](text[start:end]) for v in spec.validators):
                        found.append(Match(spec.id, spec.action, tuple(spec.categories), (start, end)))
        return found

    def check(self, text: str, direction: Direction = "input") -> Decision:
        """Return the decision for one text seen in ``direction``."""
        matches = self._matches(text, direction)
        if not matches:
            return Decision("block" if self.policy.default_action == "block" else "allow")
        worst = max(SEVERITY[m.action] for m in matches)
        action = OUTCOME_OF[next(a for a, s in SEVERITY.items() if s == worst)]
        d = Decision(action, matches)
        if action == "redact":
            d.redacted = self._redact(text, [m for m in matches if m.action == "redact"])
        return d

    def _redact(self, text: str, matches: list[Match]) -> str:
        order = {r.spec.id: i for i, r in enumerate(self._rules)}
        if any(m.span is None for m in matches):
            first = min((m for m in matches if m.span is None), key=lambda m: order[m.rule_id])
            return self._replacement(first.rule_id)
        spans = sorted((m.span[0], m.span[1], order[m.rule_id], m.rule_id) for m in matches if m.span)
        merged: list[tuple[int, int, str]] = []
        for start, end, _, rule_id in spans:
            if merged and start < merged[-1][1]:
                first_start, first_end, first_rule = merged[-1]
                merged[-1] = (first_start, max(first_end, end), first_rule)
            else:
                merged.append((start, end, rule_id))
        out, pos = [], 0
        for start, end, rule_id in merged:
            out += [text[pos:start], self._replacement(rule_id)]
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def _replacement(self, rule_id: str) -> str:
        spec = next(r.spec for r in self._rules if r.spec.id == rule_id)
        return spec.replacement if spec.replacement is not None else f"[REDACTED:{rule_id}]"

    def evaluate(self, input: str | None = None, output: str | None = None) -> Decision:
        """Return the decision for an exchange: the input under input rules, the output under output rules.

        The most severe of the two decisions wins. ``redacted`` is the redacted
        output when the output was redacted, else the redacted input.
        """
        sides: list[tuple[str | None, Direction]] = [(input, "input"), (output, "output")]
        decisions = [self.check(text, direction) for text, direction in sides if text is not None]
        if not decisions:
            raise ValueError("evaluate needs an input, an output, or both")
        rank = {"allow": 0, "redact": 1, "block": 2}
        action = max((d.action for d in decisions), key=rank.__getitem__)
        combined = Decision(action, [m for d in decisions for m in d.matches])
        if action == "redact":
            redacted = [d.redacted for d in decisions if d.redacted is not None]
            combined.redacted = redacted[-1]
        return combined
