from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def ingest_data(
    data_uri: str,
    label_column: str,
    timestamp_column: str,
    dataset: Output[Dataset],
) -> NamedTuple("IngestOutputs", [("digest", str), ("rows", int)]):
    """Fetch a Parquet dataset (s3:// or a path), check it is trainable, pass it on with its digest."""
    from collections import namedtuple

    from mlops.errors import exit_on_user_error
    from mlops.platform.datasets import ingest

    with exit_on_user_error("ingest"):
        info = ingest(data_uri, dataset.path, label_column, timestamp_column)
    dataset.metadata.update({"source": info.uri, "rows": info.rows, "digest": info.digest})
    print(f"ingested {info.rows} rows x {len(info.columns)} columns from {info.uri} ({info.digest})")
    return namedtuple("IngestOutputs", ["digest", "rows"])(info.digest, info.rows)
