from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Markdown, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def validate_data(
    data_uri: str,
    project: str,
    report: Output[HTML],
    summary: Output[Markdown],
    findings: Output[Artifact],
    model_params: str = "{}",
) -> NamedTuple("ValidateOutputs", [("errors", int), ("warnings", int), ("report_uri", str), ("data_digest", str)]):
    """Check a batch of the project's raw data against its data contract; fail the step, with the report on
    S3, on any error. ``project`` is an example's name, a project folder or a pushed project's s3:// URI.

    As the first step of a run it also refuses a ``model_params`` override the project's estimator would
    refuse at train (built, not fitted), so a typo costs seconds, not the features and retrieval before it."""
    import shutil
    import tempfile
    from collections import namedtuple
    from pathlib import Path

    from mlops.errors import DataError, exit_on_user_error
    from mlops.platform.storage import ObjectStore
    from mlops.project import dataset_uri, resolve_project
    from mlops.stages import validate_dataset
    from mlops.training.train import build_model
    from mlops.training.train import model_params as laid_over_project

    with exit_on_user_error("validate"), tempfile.TemporaryDirectory() as tmp:
        store = ObjectStore.from_env()
        spec = resolve_project(project, store=store)
        build_model(spec, laid_over_project(spec, model_params))
        data_uri = dataset_uri(spec, data_uri, store.bucket)
        out = validate_dataset(data_uri, spec.contract("raw"), Path(tmp), publish_to=store)
        for name, artifact in (("report.html", report), ("summary.md", summary), ("report.json", findings)):
            shutil.copyfile(Path(tmp) / name, artifact.path)
        result = out.result
        print(result.summary())
        if not result.passed:
            raise DataError(f"{result.summary()}\n  report: {out.report_uri}")
    return namedtuple("ValidateOutputs", ["errors", "warnings", "report_uri", "data_digest"])(
        len(result.errors), len(result.warnings), out.report_uri, out.data_digest)
