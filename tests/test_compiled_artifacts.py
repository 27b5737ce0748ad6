"""The committed YAML is what the code compiles to, and references the component image."""

import subprocess
import sys
from pathlib import Path

import yaml

from pipelines.compile import targets

ROOT = Path(__file__).resolve().parent.parent


def test_committed_yaml_is_not_stale(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no MLOPS_COMPONENT_IMAGE: the default image
    subprocess.run([sys.executable, "-m", "pipelines.compile", "--out", str(tmp_path)], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    stale = [rel for _, rel in targets() if (tmp_path / rel).read_text() != (ROOT / rel).read_text()]
    assert not stale, f"compiled YAML out of date, run `make compile`: {stale}"


def test_every_task_runs_in_the_component_image_without_installing_kfp():
    from components import DEFAULT_IMAGE

    for _, rel in targets():
        spec = next(yaml.safe_load_all((ROOT / rel).read_text()))
        executors = spec["deploymentSpec"]["executors"]
        assert executors, rel
        for name, executor in executors.items():
            container = executor["container"]
            assert container["image"] == DEFAULT_IMAGE, (rel, name)
            assert "pip install" not in " ".join(container["command"]), (rel, name)


def test_pipeline_tasks_get_platform_settings_from_configmap_and_secret():
    docs = list(yaml.safe_load_all((ROOT / "pipelines/compiled/training_pipeline.yaml").read_text()))
    k8s = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(k8s) == {"exec-validate-data", "exec-build-features", "exec-retrieve-training-data",
                        "exec-train-model", "exec-evaluate-model", "exec-promote-model"}
    for executor in k8s.values():
        secret_keys = {kv["envVar"] for s in executor["secretAsEnv"] for kv in s["keyToEnv"]}
        config_keys = {kv["envVar"] for c in executor["configMapAsEnv"] for kv in c["keyToEnv"]}
        assert secret_keys == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        assert config_keys == {"MLOPS_S3_ENDPOINT", "MLOPS_BUCKET", "MLFLOW_TRACKING_URI",
                               "MLOPS_FEAST_ONLINE_STORE", "MLOPS_FEAST_REDIS", "MLOPS_FEAST_REGISTRY"}


def test_no_task_is_cached():
    """Steps read state their parameters do not name; a parameter-keyed cache hit would replay stale decisions."""
    spec = next(yaml.safe_load_all((ROOT / "pipelines/compiled/training_pipeline.yaml").read_text()))

    def tasks(dag):
        for name, task in dag["tasks"].items():
            yield name, task
            sub = spec["components"][task["componentRef"]["name"]].get("dag")
            if sub:
                yield from tasks(sub)

    found = dict(tasks(spec["root"]["dag"]))
    assert len([n for n in found if not n.startswith("condition")]) == 6
    for name, task in found.items():
        if not name.startswith("condition"):
            assert task["cachingOptions"] == {}, name  # enableCache false is serialised as an empty mapping


def test_every_pipeline_takes_the_project_as_a_required_parameter_and_names_no_dataset():
    """One compiled file serves every project: the project is a run parameter, never baked in."""
    import re

    from mlops.platform.local_run import pipeline_parameters
    from tests.projects import EXAMPLES

    names = {n for p in EXAMPLES for n in (p.entity.key, p.label.column, *p.sensitive, p.names.model,
                                           p.names.prefix, p.names.feast_project)} - {"default"}  # also English
    for _, rel in targets():
        text = (ROOT / rel).read_text()
        found = sorted(n for n in names if re.search(rf"\b{re.escape(n)}\b", text, re.IGNORECASE))
        assert not found, f"{rel} names a project's {found}: those come from the project at run time"
        if rel.startswith("pipelines/"):
            project = pipeline_parameters(ROOT / rel)["project"]
            assert project == {"parameterType": "STRING"}, (rel, project)  # required, no default project
    training = pipeline_parameters(ROOT / "pipelines/compiled/training_pipeline.yaml")
    assert {k: v.get("defaultValue") for k, v in training.items()} == {
        "project": None, "data_uri": "", "model_params": "{}"}
