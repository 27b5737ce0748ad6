"""Strict validation of Kubernetes and KServe objects without a cluster.

The kserve SDK and the kubernetes client generate one model class per API
type, each with ``openapi_types`` (field -> type) and ``attribute_map``
(field -> JSON key). Walking a manifest against them finds what a cluster's
strict field validation would refuse: an unknown (e.g. misspelt) key, a
string where an integer belongs, a scalar where a list belongs.
"""

from __future__ import annotations

import re
from typing import Any

_LIST = re.compile(r"^list\[(.+)\]$")
_DICT = re.compile(r"^dict\((\w+), (.+)\)$")
_SCALARS = {"str": str, "int": int, "float": (int, float), "bool": bool}


def _is_quantity(path: str) -> bool:
    parent = path.rsplit(".", 2)
    return len(parent) == 3 and parent[1] in ("limits", "requests")


def _model_class(name: str):
    import kserve.models
    import kubernetes.client.models

    for module in (kserve.models, kubernetes.client.models):
        cls = getattr(module, name, None)
        if cls is not None and hasattr(cls, "openapi_types"):
            return cls
    return None


def validate(obj: Any, type_name: str, path: str = "") -> list[str]:
    """Problems of ``obj`` (parsed YAML/JSON) as an instance of ``type_name`` (e.g. V1beta1InferenceService)."""
    problems: list[str] = []
    _check(obj, type_name, path or type_name, problems)
    return problems


def _check(value: Any, type_name: str, path: str, problems: list[str]) -> None:
    if value is None or type_name == "object":
        return
    if m := _LIST.match(type_name):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _check(item, m.group(1), f"{path}[{i}]", problems)
        return
    if m := _DICT.match(type_name):
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a mapping, got {type(value).__name__}")
            return
        for key, item in value.items():
            _check(item, m.group(2), f"{path}.{key}", problems)
        return
    if type_name in _SCALARS:
        expected = _SCALARS[type_name]
        if type_name == "str" and _is_quantity(path) and isinstance(value, (int, float)) and not isinstance(value, bool):
            return  # resource quantities are strings in the schema, and numbers are accepted too
        if (isinstance(value, bool) and type_name != "bool") or not isinstance(value, expected):
            problems.append(f"{path}: expected {type_name}, got {type(value).__name__} {value!r}")
        return
    if type_name == "datetime":
        return
    cls = _model_class(type_name)
    if cls is None:
        problems.append(f"{path}: no schema class {type_name} to check against")
        return
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a {type_name} mapping, got {type(value).__name__}")
        return
    by_key = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    for key, item in value.items():
        attr = by_key.get(key)
        if attr is None:
            close = [k for k in by_key if k.lower() == str(key).lower() or k.lower().startswith(str(key).lower()[:6])]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{path}.{key}: unknown field of {type_name}{hint}")
            continue
        _check(item, cls.openapi_types[attr], f"{path}.{key}", problems)


KIND_TYPES = {
    ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): "V1alpha1ClusterServingRuntime",
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "Secret"): "V1Secret",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Service"): "V1Service",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("batch/v1", "Job"): "V1Job",
    ("rbac.authorization.k8s.io/v1", "Role"): "V1Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "V1ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "V1ClusterRoleBinding",
}


def validate_manifest(doc: dict) -> list[str]:
    """Problems of one manifest, by its apiVersion and kind; an unknown kind is itself a problem."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    type_name = KIND_TYPES.get(key)
    if type_name is None:
        return [f"{key[1]} ({key[0]}): no schema known to check it against"]
    name = (doc.get("metadata") or {}).get("name", "?")
    return validate(doc, type_name, f"{key[1]}/{name}")
