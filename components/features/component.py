from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Markdown, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def build_features(
    project: str,
    data_uri: str,
    report: Output[HTML],
    summary: Output[Markdown],
) -> NamedTuple("FeatureOutputs", [("snapshot_uri", str), ("snapshot_digest", str), ("rows", int),
                                   ("definitions_version", str)]):
    """Compute the project's features, validate them against its features contract, publish a
    content-addressed snapshot to S3, apply its Feast definitions and materialize the online store."""
    import shutil
    import tempfile
    from collections import namedtuple
    from pathlib import Path

    from mlops.errors import exit_on_user_error
    from mlops.platform.storage import ObjectStore
    from mlops.project import dataset_uri, resolve_project
    from mlops.stages import build_features as build

    with exit_on_user_error("features"), tempfile.TemporaryDirectory() as tmp:
        store = ObjectStore.from_env()
        spec = resolve_project(project, store=store)
        out = build(spec, dataset_uri(spec, data_uri, store.bucket), Path(tmp), store)
        shutil.copyfile(Path(tmp) / "report.html", report.path)
    start, end = out.materialized
    with open(summary.path, "w") as fh:
        fh.write(f"# Features\n\nSnapshot `{out.snapshot_uri}` ({out.rows} rows), definitions "
                 f"`{out.definitions_version}`.\n\nOnline store materialized from {start} to {end}.\n\n"
                 f"Feature validation: {'PASSED' if out.validation.result.passed else 'FAILED'}, "
                 f"{len(out.validation.result.warnings)} warnings.\n")
    print(f"features: {out.snapshot_uri} ({out.rows} rows), definitions {out.definitions_version}")
    return namedtuple("FeatureOutputs", ["snapshot_uri", "snapshot_digest", "rows", "definitions_version"])(
        out.snapshot_uri, out.snapshot_digest, out.rows, out.definitions_version)
