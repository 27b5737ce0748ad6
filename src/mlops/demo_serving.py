"""The serving half of `make demo`: serve production, show requests, and roll candidates out under traffic."""

from __future__ import annotations

import json
import threading
import urllib.request

from mlops.serving.local import LocalServing

TRAFFIC_RATE = 60.0  # requests/s of replayed "live" traffic during a rollout: what 2 cores serve with a shadow


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 (loopback)
        return json.loads(resp.read())


def serve_production(model: str, version: str, port: int = 8080) -> LocalServing:
    """Start the local serving topology for ``version`` and show one V1 and one V2 request."""
    from mlops.local_platform import free_ports, port_is_free
    from mlops.serving.traffic_replay import customer_ids

    serving = LocalServing(model)
    serving.down()  # a previous demo's processes
    if not port_is_free(port):
        port = free_ports(["t"])["t"]
    urls = serving.up(version, port=port, progress=lambda m: print(f"  {m}"))
    base, customer = urls["transformer"], customer_ids()[-1]
    v1 = _post(f"{base}/v1/models/{model}:predict", {"instances": [{"customer_id": customer}]})
    print(f"  curl -H 'Content-Type: application/json' {base}/v1/models/{model}:predict "
          f"-d '{{\"instances\": [{{\"customer_id\": \"{customer}\"}}]}}'\n  -> {json.dumps(v1['predictions'])} "
          f"(model v{v1['model_version']})")
    v2 = _post(f"{base}/v2/models/{model}/infer", {"inputs": [{"name": "customer_id", "datatype": "BYTES",
                                                               "shape": [1], "data": [customer]}]})
    outputs = {o["name"]: o["data"] for o in v2["outputs"]}
    print(f"  V2 {base}/v2/models/{model}/infer -> probability {outputs['probability']}, class {outputs['class']}")
    print("  the transformer read the customer's features from the online store (Feast) and logs every "
          "served row to S3 (inference-log/)")
    return serving


def roll_out_under_traffic(model: str, candidate: str, faults: dict[str, dict] | None = None,
                           policy: str = "credit_default"):
    """`mlops rollout` of ``candidate`` (by rollout ``policy``) while replayed traffic flows; prints what callers
    saw."""
    from mlops.rollout.run import run_rollout
    from mlops.serving.traffic_replay import customer_ids, replay

    serving = LocalServing(model)
    stop, box = threading.Event(), {}
    ids = customer_ids()
    thread = threading.Thread(target=lambda: box.setdefault("stats", replay(
        serving.urls()["transformer"], model, ids, rate=TRAFFIC_RATE, stop=stop)), daemon=True)
    thread.start()
    try:
        result = run_rollout(model, candidate, policy=policy, faults=faults, actor="demo",
                             progress=lambda m: print(f"  {m}"))
    finally:
        stop.set()
        thread.join(30)
    print("\n" + result.markdown())
    print(f"callers during the rollout: {box['stats'].summary()}")
    if result.report_uri:
        print(f"rollout report: {result.report_uri}")
    return result
