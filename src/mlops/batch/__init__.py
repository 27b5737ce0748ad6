"""Batch prediction: score large Parquet datasets with a registered model, published atomically on S3.

``plan`` -> ``score_shard`` (one per shard, in parallel) -> ``commit``; the
CLI (`mlops batch-predict`) runs all three with :func:`run_batch_prediction`,
the KFP pipeline as separate tasks. Read the result with
:func:`read_predictions`, which trusts only the output's manifest.
"""

from mlops.batch.output import commit, read_manifest, read_predictions
from mlops.batch.run import BatchResult, plan, run_batch_prediction
from mlops.batch.scoring import DEFAULT_CHUNK_ROWS, score_shard

__all__ = ["BatchResult", "DEFAULT_CHUNK_ROWS", "commit", "plan", "read_manifest", "read_predictions",
           "run_batch_prediction", "score_shard"]
