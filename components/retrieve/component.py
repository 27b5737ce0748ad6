from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def retrieve_training_data(
    data_uri: str,
    snapshot_uri: str,
    dataset: Output[Dataset],
) -> NamedTuple("RetrieveOutputs", [("digest", str), ("rows", int)]):
    """Point-in-time correct training rows: the label events of data_uri joined, through Feast,
    to the feature values as of each event."""
    from collections import namedtuple

    from mlops.errors import exit_on_user_error
    from mlops.stages import retrieve_training_data as retrieve
    from mlops.storage import ObjectStore

    with exit_on_user_error("retrieve"):
        info = retrieve(data_uri, snapshot_uri, dataset.path, ObjectStore.from_env())
    dataset.metadata.update({"source": data_uri, "features": snapshot_uri, "rows": info.rows, "digest": info.digest})
    print(f"retrieved {info.rows} point-in-time rows x {len(info.columns)} columns ({info.digest})")
    return namedtuple("RetrieveOutputs", ["digest", "rows"])(info.digest, info.rows)
