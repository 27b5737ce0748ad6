from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def retrieve_training_data(
    project: str,
    data_uri: str,
    snapshot_uri: str,
    train_set: Output[Dataset],
    test_set: Output[Dataset],
) -> NamedTuple("RetrieveOutputs", [("digest", str), ("rows", int), ("test_rows", int)]):
    """Point-in-time correct rows (label events joined, through Feast, to the features as of each
    event), split by time: the most recent split.test_fraction of the project is the held-out test set."""
    from collections import namedtuple

    from mlops.errors import exit_on_user_error
    from mlops.platform.storage import ObjectStore
    from mlops.project import dataset_uri, resolve_project
    from mlops.stages import retrieve_training_data as retrieve

    with exit_on_user_error("retrieve"):
        store = ObjectStore.from_env()
        spec = resolve_project(project, store=store)
        data_uri = dataset_uri(spec, data_uri, store.bucket)
        train, test = retrieve(spec, data_uri, snapshot_uri, train_set.path, test_set.path, store)
    for artifact, info in ((train_set, train), (test_set, test)):
        artifact.metadata.update({"source": data_uri, "features": snapshot_uri, "rows": info.rows,
                                  "digest": info.digest})
    print(f"retrieved {train.rows} training and {test.rows} test rows (the most recent) from {data_uri}")
    return namedtuple("RetrieveOutputs", ["digest", "rows", "test_rows"])(train.digest, train.rows, test.rows)
