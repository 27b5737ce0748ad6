"""The KServe predictor: one verified MLflow model version behind V1 and V2.

Requests are checked against the model's signature (see
:mod:`mlops.serving.request_schema`); answers carry each row's positive-class
probability and class (at the gate's decision threshold) and the model
version, also as the ``x-mlops-model-version`` header so a caller (the
transformer, a load balancer) can attribute every answer. Prometheus
metrics on ``/metrics``: the prediction distribution per model version,
predicted classes, refused requests by status, and the served version.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mlops.errors import BadRequest
from mlops.registry.model_files import (LoadedModel, fetch_model, load_model, model_cache_dir, request_scoring_threads,
                                        resolve_model)
from mlops.serving import open_inference
from mlops.serving.http_server import VERSION_HEADER, import_kserve
from mlops.serving.request_schema import RequestSchema

kserve = import_kserve()
from kserve.protocol.infer_type import InferRequest  # noqa: E402
from prometheus_client import Counter, Gauge, Histogram  # noqa: E402

PROBABILITY_BUCKETS = tuple(round(b, 2) for b in np.linspace(0.05, 1.0, 20))

MODEL_INFO = Gauge("mlops_model_info", "The model version this server serves (value 1)",
                   ["model_name", "model_version", "digest"])
PREDICTED_PROBABILITY = Histogram("mlops_prediction_probability", "Predicted probability of the positive class",
                                  ["model_name", "model_version"], buckets=PROBABILITY_BUCKETS)
PREDICTED_CLASS = Counter("mlops_predictions_total", "Predicted rows by class", ["model_name", "model_version", "class"])
REFUSED = Counter("mlops_refused_requests_total", "Requests answered with a 4xx, by status",
                  ["model_name", "model_version", "status"])


class ServedModel(kserve.Model):
    """A classifier served with signature validation, class threshold and version attribution."""

    def __init__(self, name: str, version: str, model: LoadedModel, threshold: float, max_rows: int = 10_000):
        super().__init__(name)
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"decision threshold must be in (0, 1), got {threshold}")
        self.version, self.model, self.threshold = version, model, threshold
        self.schema = RequestSchema(model.columns, max_rows=max_rows)
        self._probability = PREDICTED_PROBABILITY.labels(name, version)
        self._classes = (PREDICTED_CLASS.labels(name, version, "0"), PREDICTED_CLASS.labels(name, version, "1"))
        MODEL_INFO.labels(name, version, model.digest).set(1)
        self.ready = True

    def scores(self, features: pd.DataFrame) -> np.ndarray:
        """Probability of the positive class for each row (in-process; what HTTP answers must equal)."""
        return self.model.estimator.predict_proba(features)[:, 1]

    async def predict(self, payload, headers=None, response_headers=None):
        try:
            if isinstance(payload, InferRequest):
                open_inference.request_id(payload)  # what the answer repeats and holds: checked before any work
                open_inference.requested(payload, open_inference.CLASSIFIER_OUTPUTS)
                features = self.schema.from_v2([(i.name, i.datatype, i.shape, i.data) for i in payload.inputs])
            elif isinstance(payload, (bytes, str)):
                raise BadRequest("the request body must be a JSON object", status=415)
            else:
                features = self.schema.from_v1(payload)
        except BadRequest as exc:
            REFUSED.labels(self.name, self.version, str(exc.status)).inc()
            raise
        probability = self.scores(features)
        classes = (probability >= self.threshold).astype(np.int64)
        for p in probability:
            self._probability.observe(p)
        positives = int(classes.sum())
        self._classes[1].inc(positives)
        self._classes[0].inc(len(classes) - positives)
        if isinstance(payload, InferRequest):
            return open_inference.answer(payload, self.name, self.version,
                                         {"probability": probability, "class": classes})
        return {"predictions": [{"probability": p, "class": c} for p, c in zip(probability.tolist(), classes.tolist())],
                "model_name": self.name, "model_version": self.version}

    def version_check(self, model_name: str, version: str) -> str | None:
        """A request naming this model's version is served as any other; another version is a 404."""
        if model_name == self.name and version != self.version:
            return f"model {model_name} version {version} is not served here; this server serves version {self.version}"
        return None

    def get_input_types(self) -> list[dict]:
        return [{"name": n, "datatype": "BYTES" if t == "string" else "FP64", "shape": [-1]}
                for n, t in self.model.columns]

    def get_output_types(self) -> list[dict]:
        return [{"name": n, "datatype": t, "shape": [-1]} for n, t in open_inference.CLASSIFIER_OUTPUTS.items()]


def decision_threshold(project) -> float:
    """The operating point the project's evaluation gate judged the model at: one home for it."""
    from mlops.evaluation.gate import project_gate

    return project_gate(project).decision_threshold


def build_model(args: argparse.Namespace) -> "ServedModel":
    """Load the model the arguments name, from a local directory or from the registry via S3."""
    from mlops.errors import ServingError
    from mlops.project import resolve_project

    project = resolve_project(args.project, Path(args.cache_dir) / "projects")
    args.model_name = args.model_name or project.names.model
    if args.model_dir:
        if not args.model_digest or not args.model_version:
            raise ServingError("--model-dir needs --model-digest (sha256:...) and --model-version: files copied by "
                               "KServe's storage initializer are verified against the registered digest")
        model_dir, version, digest = args.model_dir, args.model_version, args.model_digest
    else:
        from mlops.training import tracking

        tracking.connect()
        ref = resolve_model(args.model_name, args.model_version or "production")
        model_dir, version, digest = fetch_model(ref, args.cache_dir), ref.version, ref.digest
    started = time.perf_counter()
    loaded = load_model(model_dir, digest)
    model = ServedModel(args.model_name, version, loaded, decision_threshold(project), max_rows=args.max_rows)
    warm_up(model, model_dir)
    print(f"loaded {args.model_name} v{version} ({digest[:19]}...) from {model_dir} in "
          f"{time.perf_counter() - started:.2f} s", flush=True)
    return model


def warm_up(model: ServedModel, model_dir) -> None:
    """Score the model's logged input example once, so the first caller does not pay for cold paths."""
    from mlflow.models import Model

    example = Model.load(str(model_dir)).load_input_example(str(model_dir))
    if example is not None:  # missing values as a caller sends them: null, not NaN (which requests may not carry)
        rows = example.astype(object).where(example.notna(), None).to_dict(orient="records")
        model.scores(model.schema.from_v1({"instances": rows}))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlops-predictor", description=__doc__.splitlines()[0])
    env = os.environ.get
    # Defaults from MLOPS_MODEL_* so an InferenceService sets them per version in its env.
    p.add_argument("--project", default=env("MLOPS_PROJECT"),
                   help="the project served: an example's name, a folder or a pushed s3:// archive (MLOPS_PROJECT)")
    p.add_argument("--model-name", default=env("MLOPS_MODEL_NAME"),
                   help="registered model name, also the URL path name (default: the project's; MLOPS_MODEL_NAME)")
    p.add_argument("--model-version", default=env("MLOPS_MODEL_VERSION"),
                   help="version number or alias (default: production when using the registry)")
    p.add_argument("--model-dir", default=env("MLOPS_MODEL_DIR"),
                   help="a local MLflow model directory (KServe: /mnt/models) instead of the registry")
    p.add_argument("--model-digest", default=env("MLOPS_MODEL_DIGEST"),
                   help="the registered sha256 digest the files in --model-dir must match")
    p.add_argument("--cache-dir", default=str(model_cache_dir()))
    p.add_argument("--host", default=os.environ.get("MLOPS_SERVING_HOST", "0.0.0.0"))
    p.add_argument("--http-port", type=int, default=int(os.environ.get("PORT", "8080")))
    p.add_argument("--max-rows", type=int, default=10_000)
    p.add_argument("--threads", type=int, default=int(os.environ.get("MLOPS_PREDICTOR_THREADS", "1")),
                   help="OpenMP/BLAS threads for scoring (default 1: requests are small)")
    return p


def main(argv: list[str] | None = None) -> None:
    from threadpoolctl import threadpool_limits

    from mlops.errors import exit_on_user_error
    from mlops.serving.http_server import serve

    args, unknown = parser().parse_known_args(argv)
    request_scoring_threads(args.threads)  # before scikit-learn loads (at model load, below)
    if unknown:
        print(f"ignoring arguments meant for stock KServe servers: {' '.join(unknown)}", flush=True)
    if not args.project:
        parser().error("--project (or MLOPS_PROJECT) is required: the project whose model is served")
    with exit_on_user_error("predictor"):
        model = build_model(args)
    # One row per request: parallel tree traversal only adds OpenMP overhead, and
    # several servers on a few cores would oversubscribe them. Applied after the
    # model is loaded: only then are scikit-learn's OpenMP runtimes there to limit.
    model.thread_limits = threadpool_limits(args.threads)
    serve([model], args.host, args.http_port, response_headers={VERSION_HEADER: model.version},
          version_check=model.version_check)


if __name__ == "__main__":
    main()
