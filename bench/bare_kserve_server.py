"""The benchmark's anchor: a bare KServe 0.21 ModelServer serving the same MLflow scikit-learn model.

What a KServe user writes with no suite at all: a minimal ``kserve.Model``
whose ``load`` is ``mlflow.sklearn.load_model(dir)`` and whose V1 ``predict``
answers ``predict_proba(pd.DataFrame(instances))[:, 1]``; no request
validation, no metrics of ours, no digest check. The server is KServe's own
REST server (FastAPI app, dataplane, V1/V2 endpoints, its Prometheus
metrics) with gRPC off and per-request latency logging off (as our
predictor runs it), and none of our guard middleware or error handlers.
KServe 0.21 always binds 0.0.0.0; like ``mlops.serving.http_server`` this
builds the ``RESTServer`` itself and sets ``config.host`` so it binds
127.0.0.1 only.

    python bench/bare_kserve_server.py --model-name NAME --model-dir DIR --http-port PORT
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-name", required=True)
    p.add_argument("--model-dir", required=True, help="a local MLflow model directory")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--http-port", type=int, required=True)
    args = p.parse_args(argv)

    # kserve parses sys.argv when it is imported: hide our arguments from it.
    sys.argv = sys.argv[:1]
    import kserve
    import mlflow.sklearn
    import pandas as pd
    from kserve.model_server import ModelServer
    from kserve.protocol.rest.server import RESTServer

    class BareSklearnModel(kserve.Model):
        def __init__(self, name: str, model_dir: str) -> None:
            super().__init__(name)
            self.model_dir = model_dir
            self.model = None

        def load(self) -> bool:
            self.model = mlflow.sklearn.load_model(self.model_dir)
            self.ready = True
            return self.ready

        def predict(self, payload, headers=None):
            return {"predictions": self.model.predict_proba(pd.DataFrame(payload["instances"]))[:, 1].tolist()}

    model = BareSklearnModel(args.model_name, args.model_dir)
    model.load()
    server = ModelServer(http_port=args.http_port, enable_grpc=False, enable_latency_logging=False)
    server.register_model(model)
    rest = RESTServer("kserve.model_server:app", server.dataplane, server.model_repository_extension,
                      args.http_port, grace_period=10)
    rest.config.host = args.host

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: setattr(rest._server, "should_exit", True))
        await rest.start()

    print(f"bare KServe ModelServer: {args.model_name} from {args.model_dir} on {args.host}:{args.http_port}",
          flush=True)
    asyncio.run(serve())


if __name__ == "__main__":
    main()
