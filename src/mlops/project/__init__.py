"""Projects: what belongs to one team's model (``project.yaml`` and its hooks), read strictly."""

from mlops.project.hooks import HookError, call_hook, load_hook
from mlops.project.source import cluster_source, dataset_uri, examples_dir, fetch_project, push_project, resolve_project
from mlops.project.spec import PROJECT_FILE, TASKS, Project, load_project, project_digest

__all__ = ["PROJECT_FILE", "TASKS", "HookError", "Project", "call_hook", "cluster_source", "dataset_uri", "examples_dir", "fetch_project",
           "load_hook", "load_project", "project_digest", "push_project", "resolve_project"]
