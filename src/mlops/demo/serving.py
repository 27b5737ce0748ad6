"""The serving half of `make demo`: serve production, show requests, and roll candidates out under traffic."""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.request
from typing import Iterator

from mlops.serving.local import LocalServing

TRAFFIC_RATE = 60.0  # requests/s of replayed "live" traffic during a rollout: what 2 cores serve with a shadow


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 (loopback)
        return json.loads(resp.read())


def serve_production(project, version: str, port: int = 8080) -> LocalServing:
    """Start the local serving topology for ``version`` and show one V1 and one V2 request."""
    from mlops.platform.local import free_ports, port_is_free
    from mlops.serving.traffic_replay import known_ids, request_body

    model = project.names.model
    serving = LocalServing(project)
    serving.down()  # a previous demo's processes
    if not port_is_free(port):
        port = free_ports(["t"])["t"]
    urls = serving.up(version, port=port, progress=lambda m: print(f"  {m}"))
    base, entity = urls["transformer"], known_ids(project)[-1]
    v1_body = request_body(project, entity, "v1")
    v1 = _post(f"{base}/v1/models/{model}:predict", v1_body)
    print(f"  curl -H 'Content-Type: application/json' {base}/v1/models/{model}:predict "
          f"-d '{json.dumps(v1_body)}'\n  -> {json.dumps(v1['predictions'])} (model v{v1['model_version']})")
    v2 = _post(f"{base}/v2/models/{model}/infer", request_body(project, entity, "v2"))
    outputs = {o["name"]: o["data"] for o in v2["outputs"]}
    print(f"  V2 {base}/v2/models/{model}/infer -> probability {outputs['probability']}, class {outputs['class']}")
    print(f"  the transformer read the {project.entity.name}'s features from the online store (Feast) and logs "
          "every served row to S3 (inference-log/)")
    return serving


@contextlib.contextmanager
def live_traffic(project, rate: float = TRAFFIC_RATE) -> Iterator[dict]:
    """Replayed callers of the project's known entities in the background while the block runs, as
    production traffic keeps flowing while a rollout or monitoring's own rollout judges; the yielded dict
    holds their ReplayStats under "stats" once the block ends."""
    from mlops.serving.traffic_replay import known_ids, replay

    serving, stop, box = LocalServing(project), threading.Event(), {}
    ids = known_ids(project)
    thread = threading.Thread(target=lambda: box.setdefault("stats", replay(
        serving.urls()["transformer"], project, ids, rate=rate, stop=stop)), daemon=True)
    thread.start()
    try:
        yield box
    finally:
        stop.set()
        thread.join(30)


def roll_out_under_traffic(project, candidate: str, faults: dict[str, dict] | None = None, policy: str | None = None):
    """`mlops rollout` of ``candidate`` (by rollout ``policy``, default the project's) while replayed traffic
    flows; prints what callers saw."""
    from mlops.rollout.run import run_rollout

    with live_traffic(project) as callers:
        result = run_rollout(project, candidate, policy=policy, faults=faults, actor="demo",
                             progress=lambda m: print(f"  {m}"))
    print("\n" + result.markdown())
    print(f"callers during the rollout: {callers['stats'].summary()}")
    if result.report_uri:
        print(f"rollout report: {result.report_uri}")
    return result
