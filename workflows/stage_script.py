"""How a stage's ``@script`` function becomes its pod command: the thin entry, not Hera's runner.

``@runs(body)`` makes a ``@script`` function (workflows/stages.py: the signature Hera reads) call its
Hera-free body (workflows/stage_bodies/), and :class:`StageScriptConstructor` writes the pod command
``python -P -m workflows.stage_entry MODULE:FUNCTION --in=…/--out=…/--out-artifact=… FILE``, the
mapping Hera's runner would work out at run time (workflows/stage_entry.py says which rules it keeps).

Everything else is Hera's ``RunnerScriptConstructor``: ``source`` is ``{{inputs.parameters}}`` (Argo
writes it to the file passed last), output parameters and artifacts are declared under
``outputs_directory`` and ``hera__outputs_directory`` is set in the env, so the template is what Hera's
runner would run and Argo collects the outputs from the same paths.

This module imports Hera: it runs when the templates are built, never in a stage's pod.
"""

# No ``from __future__ import annotations``: the signatures' annotations are read as objects.
import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hera.shared._type_util import construct_io_from_annotation, unwrap_annotation
from hera.workflows import Artifact, Parameter, Script
from hera.workflows.script import RunnerScriptConstructor

ENTRY_MODULE = "workflows.stage_entry"
BODY_ATTRIBUTE = "stage_body"
F = TypeVar("F", bound=Callable[..., Any])


def runs(body: Callable[..., None]) -> Callable[[F], F]:
    """Return a decorator that makes a ``@script`` signature call ``body`` with the same keyword arguments.

    The decorated function keeps its signature (Hera reads it, through ``__wrapped__``) and is marked
    with its body for :class:`StageScriptConstructor`. Raises TypeError at import when the two do not
    take the same argument names, so a stage cannot drift from its body.
    """
    def decorate(signature: F) -> F:
        wanted, given = list(inspect.signature(signature).parameters), list(inspect.signature(body).parameters)
        if wanted != given:
            raise TypeError(f"{signature.__name__}: its body {body.__module__}.{body.__qualname__} takes "
                            f"{given}, the @script signature {wanted}")

        @functools.wraps(signature)
        def call(**kwargs: Any) -> None:
            body(**kwargs)

        setattr(call, BODY_ATTRIBUTE, body)
        return call  # type: ignore[return-value]
    return decorate


def entry_args(function: Callable[..., Any]) -> list[str]:
    """Return the ``--in``/``--out``/``--out-artifact`` arguments that map ``function``'s signature.

    Only what the thin entry maps like Hera's runner is accepted: ``str`` input parameters, ``Path``
    output parameters and output artifacts at their default place under the outputs directory, no
    return annotation. Anything else raises ValueError when the template is built (not in the pod).
    """
    where = f"{function.__module__}.{function.__qualname__}"
    signature = inspect.signature(function)
    if signature.return_annotation not in (None, inspect.Signature.empty):
        raise ValueError(f"{where}: the stage entry does not map return values")
    args = []
    for kwarg, param in signature.parameters.items():
        io = construct_io_from_annotation(kwarg, param.annotation)
        kind = unwrap_annotation(param.annotation)
        if isinstance(io, Parameter) and not io.output and kind is str and io.loads is None:
            args.append(f"--in={kwarg}={io.name}")
        elif isinstance(io, Parameter) and io.output and kind is Path and io.value_from is None:
            args.append(f"--out={kwarg}={io.name}")
        elif isinstance(io, Artifact) and io.output and kind is Path and io.path is None:
            args.append(f"--out-artifact={kwarg}={io.name}")
        else:
            raise ValueError(f"{where}: argument '{kwarg}' ({param.annotation}) is not a str input parameter "
                             "or a Path output: the stage entry maps only those")
    return args


class StageScriptConstructor(RunnerScriptConstructor):
    """Hera's runner constructor with the thin stage entry as the command (see the module doc)."""

    def transform_values(self, script: Script) -> None:
        """Set ``script.args`` to the thin entry's, for a ``@runs``-marked function (ValueError otherwise)."""
        if not callable(script.source):
            return
        if script.args is not None:
            raise ValueError("Cannot specify args when callable is True")
        body = getattr(script.source, BODY_ATTRIBUTE, None)
        if body is None:
            raise ValueError(f"{script.source.__name__}: no stage body (decorate it with @runs(body))")
        script.args = ["-m", ENTRY_MODULE, f"{body.__module__}:{body.__qualname__}", *entry_args(script.source)]
