"""A project's code hooks (``file.py:function``): imported from the project's folder, called with clear errors.

A hook's module is imported under a name unique to the project's digest, so two
projects (or two versions of one) never share a module, and a hook that fails to
import, is missing, or raises is reported naming the file and the function.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from collections.abc import Callable
from typing import Any

from mlops.errors import ConfigError
from mlops.project.spec import Hook, Project


class HookError(ConfigError):
    """A project's hook could not be imported, is not there, or raised: the message names it."""


def load_hook(project: Project, hook: Hook) -> Callable[..., Any]:
    """The function ``hook`` names, imported from ``project``'s folder."""
    path = project.root / hook.file
    module_name = f"mlops_project_{project.digest.removeprefix('sha256:')[:16]}_{path.stem}"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise HookError(f"{project.where}: cannot import {hook.file} (not a Python file?)")
        module = importlib.util.module_from_spec(spec)
        # Registered before it runs, as the import system does: dataclasses and typing look the module up
        # by name while its body executes.
        sys.modules[module_name] = module
        sys.path.insert(0, str(project.root))  # a hook may import its project's other modules
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - whatever the hook's file does on import, say where
            del sys.modules[module_name]
            raise HookError(f"{project.root / hook.file}: importing it failed: {_where(exc, project)}") from exc
        finally:
            sys.path.remove(str(project.root))
    function = getattr(module, hook.function, None)
    if not callable(function):
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise HookError(f"{project.root / hook.file} has no function {hook.function!r} ({project.where} names "
                        f"{hook}); it defines {found or 'none'}")
    return function


def call_hook(project: Project, hook: Hook, *args: Any, **kwargs: Any) -> Any:
    """Call a hook; anything it raises becomes a HookError naming it (the original chained)."""
    function = load_hook(project, hook)
    try:
        return function(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the project's code, not ours: name it
        raise HookError(f"{hook} of project {project.name} raised {_where(exc, project)}") from exc


def _where(exc: BaseException, project: Project) -> str:
    """The exception, and the last line of the project's own code it passed through."""
    root = str(project.root)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(root)]
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"SyntaxError: {exc.msg} (at {exc.filename}:{exc.lineno})"
    at = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{at}"
