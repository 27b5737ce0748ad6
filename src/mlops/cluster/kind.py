"""Where the kind cluster's services appear on this machine.

kind-config.yaml maps node ports to 127.0.0.1 ports; the kind overlay's
NodePort Services (manifests/overlays/kind/nodeports.yaml) say which service
listens on which node port. Both files are read here, so a port lives in one
place and the end-to-end check, the README and the tests agree with them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from mlops.errors import ConfigError

KIND_CONFIG = "kind-config.yaml"
NODEPORTS = "manifests/overlays/kind/nodeports.yaml"


@dataclass(frozen=True)
class HostPort:
    service: str  # namespace/name of the NodePort Service
    node_port: int
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _yaml_docs(path: Path) -> list[dict]:
    if not path.is_file():
        raise ConfigError(f"{path} not found: run from the repository's root directory")
    try:
        return [d for d in yaml.safe_load_all(path.read_text()) if d]
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None


def host_ports(root: str | Path = ".") -> dict[str, HostPort]:
    """Every NodePort Service of the kind overlay, by Service name, with the 127.0.0.1 port kind maps it to."""
    root = Path(root)
    config = _yaml_docs(root / KIND_CONFIG)[0]
    mapped = {m["containerPort"]: m for node in config.get("nodes", []) for m in node.get("extraPortMappings", [])}
    found: dict[str, HostPort] = {}
    for svc in _yaml_docs(root / NODEPORTS):
        name = f"{svc['metadata'].get('namespace', '')}/{svc['metadata']['name']}"
        for port in svc["spec"]["ports"]:
            mapping = mapped.get(port["nodePort"])
            if mapping is None:
                raise ConfigError(f"{NODEPORTS}: {name} uses node port {port['nodePort']}, which {KIND_CONFIG} "
                                  "does not map to this machine (extraPortMappings)")
            found[svc["metadata"]["name"]] = HostPort(name, port["nodePort"], mapping.get("listenAddress", "127.0.0.1"),
                                                      mapping["hostPort"])
    return found


def kserve_ingress_patch(ingress_json: str) -> dict | None:
    """The merge patch of KServe's inferenceservice-config that turns Istio's virtual host off (Kourier is
    the gateway); None when it is already off. Every other ingress key is kept as it is."""
    try:
        ingress = json.loads(ingress_json)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"inferenceservice-config 'ingress' is not JSON: {exc}") from None
    if not isinstance(ingress, dict):
        raise ConfigError(f"inferenceservice-config 'ingress' is not a JSON object: {ingress_json[:80]!r}")
    if ingress.get("disableIstioVirtualHost") is True:
        return None
    return {"data": {"ingress": json.dumps({**ingress, "disableIstioVirtualHost": True}, indent=2)}}


if __name__ == "__main__":  # scripts/kind-up.sh: the ingress JSON on stdin -> the patch on stdout, or nothing
    import sys

    patch = kserve_ingress_patch(sys.stdin.read())
    if patch is not None:
        print(json.dumps(patch))
