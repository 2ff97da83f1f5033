"""Golden datasets: test cases read from YAML, JSON, JSONL or CSV files.

YAML/JSON hold a list of tests or ``{tests: [...]}``. JSONL holds one test per
line. CSV follows promptfoo's convention: each column is a variable, except
``description`` and ``__expected`` / ``__expected1``… whose cells are
assertions written ``type: value`` (a bare value means ``equals``).

Every test must carry at least one assertion: a test without one passes
without checking anything, which is how broken gates hide.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from config.artifacts import ASSERTION_TYPES, GuardrailCase, RagDataset, TestCase
from config.problems import Problem
from config.validation import problems_from_error
from config.yamlio import MAX_FILE_BYTES, Loaded, LoadError, memo_by_file, parse_text, read_text

DATASET_SUFFIXES = (".yaml", ".yml", ".json", ".jsonl", ".csv")


def _csv_assertion(cell: str) -> dict[str, Any]:
    kind, sep, rest = cell.partition(":")
    kind = kind.strip()
    base = kind[4:] if kind.startswith("not-") else kind
    if sep and base in ASSERTION_TYPES:
        return {"type": kind, "value": rest.strip()}
    return {"type": "equals", "value": cell}


def _csv_rows(text: str, display: str) -> Loaded:
    csv.field_size_limit(MAX_FILE_BYTES)  # cells may be long prompts; the file size is already capped
    reader = csv.DictReader(io.StringIO(text))
    tests: list[dict[str, Any]] = []
    positions: dict[tuple[str | int, ...], tuple[int, int]] = {(): (1, 1)}
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise LoadError([Problem(display, reader.line_num, 1, "", f"CSV syntax error: {exc}")]) from exc
    if not reader.fieldnames:
        raise LoadError([Problem(display, 1, 1, "", "CSV dataset has no header row")])
    for i, row in enumerate(rows):
        line = i + 2  # header is line 1; cells with embedded newlines shift this (rare in datasets)
        test: dict[str, Any] = {"vars": {}, "assert": []}
        for col, cell in row.items():
            if col is None:
                raise LoadError([Problem(display, line, 1, f"tests[{i}]", "row has more cells than the header")])
            if col == "description":
                test["description"] = cell
            elif col.startswith("__expected"):
                if cell:
                    test["assert"].append(_csv_assertion(cell))
            else:
                test["vars"][col] = cell
        positions[(i,)] = (line, 1)
        tests.append(test)
    return Loaded(display, tests, positions)


def _jsonl_rows(text: str, display: str) -> Loaded:
    tests: list[Any] = []
    positions: dict[tuple[str | int, ...], tuple[int, int]] = {(): (1, 1)}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            tests.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise LoadError([Problem(display, n, exc.colno, "", f"JSON syntax error: {exc.msg}")]) from exc
        positions[(len(tests) - 1,)] = (n, 1)
    return Loaded(display, tests, positions)


@dataclass
class DatasetFile:
    """A parsed dataset: its tests and where each one stands in the file."""

    tests: list[TestCase]
    loaded: Loaded
    prefix: tuple[str | int, ...]

    def problem(self, index: int, sub: tuple[str | int, ...], message: str, **kw: Any) -> Problem:
        """Return a Problem anchored at test ``index`` (and field ``sub`` inside it)."""
        return self.loaded.problem((*self.prefix, index, *sub), message, **kw)


def load_dataset(path: Path, display: str | None = None) -> list[TestCase]:
    """Return the test cases in ``path``; raise LoadError with one problem per bad field or test."""
    return read_dataset(path, display).tests


def read_dataset(path: Path, display: str | None = None) -> DatasetFile:
    """Return the parsed dataset with positions; raise LoadError with one problem per bad field or test.

    Memoized per file (``config.yamlio.memo_by_file``): lint and validate read every
    dataset, and one parse per process is enough.
    """
    return _read_dataset(path, display or str(path))


@memo_by_file
def _read_dataset(path: Path, shown: str) -> DatasetFile:
    text = read_text(path, shown)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        loaded = _csv_rows(text, shown)
    elif suffix == ".jsonl":
        loaded = _jsonl_rows(text, shown)
    elif suffix in DATASET_SUFFIXES:
        loaded = parse_text(text, shown, is_json=suffix == ".json")
    else:
        raise LoadError([Problem(shown, 0, 0, "", f"unsupported dataset type '{suffix}'; "
                                                  f"use one of {', '.join(DATASET_SUFFIXES)}")])
    data = loaded.data
    prefix: tuple[str | int, ...] = ()
    if isinstance(data, dict) and set(data) <= {"tests", "description"}:
        data, prefix = data.get("tests"), ("tests",)
    if not isinstance(data, list) or not data:
        raise LoadError([loaded.problem(prefix, "a dataset must be a non-empty list of tests "
                                                "(or a mapping with a 'tests' list)")])
    tests: list[TestCase] = []
    problems: list[Problem] = []
    for i, raw in enumerate(data):
        loc = (*prefix, i)
        try:
            test = TestCase.model_validate(raw)
        except ValidationError as exc:
            problems += problems_from_error(loaded, exc, loc)
            continue
        if not test.assert_:
            problems.append(loaded.problem(loc, "test has no assertion: it would pass without "
                                                "checking anything"))
        tests.append(test)
    if problems:
        raise LoadError(problems)
    return DatasetFile(tests, loaded, prefix)


# ------------------------------------------------- guardrail cases and RAG golden sets

GUARDRAIL_SUFFIXES = (".yaml", ".yml", ".json", ".jsonl")
RAG_SUFFIXES = (".yaml", ".yml", ".json")


def _parsed(path: Path, shown: str, suffixes: tuple[str, ...]) -> Loaded:
    text = read_text(path, shown)
    suffix = path.suffix.lower()
    if suffix not in suffixes:
        raise LoadError([Problem(shown, 0, 0, "", f"unsupported dataset type '{suffix}'; "
                                                  f"use one of {', '.join(suffixes)}")])
    if suffix == ".jsonl":
        return _jsonl_rows(text, shown)
    return parse_text(text, shown, is_json=suffix == ".json")


def read_guardrail_cases(path: Path, display: str | None = None) -> list[GuardrailCase]:
    """Return the golden cases of a guardrail policy (a list, or ``{cases: [...]}``).

    Raises LoadError with one problem per bad case; an empty file is an error (zero tests).
    """
    return _read_guardrail_cases(path, display or str(path))


@memo_by_file
def _read_guardrail_cases(path: Path, shown: str) -> list[GuardrailCase]:
    loaded = _parsed(path, shown, GUARDRAIL_SUFFIXES)
    data = loaded.data
    prefix: tuple[str, ...] = ()
    if isinstance(data, dict) and set(data) <= {"cases", "description"}:
        data, prefix = data.get("cases"), ("cases",)
    if not isinstance(data, list) or not data:
        raise LoadError([loaded.problem(prefix, "a guardrail dataset must be a non-empty list of cases "
                                                "(or a mapping with a 'cases' list)")])
    cases: list[GuardrailCase] = []
    problems: list[Problem] = []
    for i, raw in enumerate(data):
        try:
            cases.append(GuardrailCase.model_validate(raw))
        except ValidationError as exc:
            problems += problems_from_error(loaded, exc, (*prefix, i))
    descriptions = [c.description for c in cases]
    for i, c in enumerate(cases):
        if descriptions.index(c.description) != i:
            problems.append(loaded.problem((*prefix, i, "description"),
                                           f"duplicate case description '{c.description}'"))
    if problems:
        raise LoadError(problems)
    return cases


def read_rag_dataset(path: Path, display: str | None = None) -> RagDataset:
    """Return a RAG golden set (``documents`` and ``queries``); raise LoadError with one problem per field."""
    return _read_rag_dataset(path, display or str(path))


@memo_by_file
def _read_rag_dataset(path: Path, shown: str) -> RagDataset:
    loaded = _parsed(path, shown, RAG_SUFFIXES)
    try:
        return RagDataset.model_validate(loaded.data)
    except ValidationError as exc:
        raise LoadError(problems_from_error(loaded, exc)) from exc
