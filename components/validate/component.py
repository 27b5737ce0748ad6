from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Markdown, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def validate_data(
    data_uri: str,
    contract: str,
    report: Output[HTML],
    summary: Output[Markdown],
    findings: Output[Artifact],
) -> NamedTuple("ValidateOutputs", [("errors", int), ("warnings", int), ("report_uri", str), ("data_digest", str)]):
    """Check a dataset against its data contract; fail the step, with the report on S3, on any error."""
    import shutil
    import tempfile
    from collections import namedtuple
    from pathlib import Path

    from mlops.errors import DataError, exit_on_user_error
    from mlops.stages import validate_dataset
    from mlops.storage import ObjectStore

    with exit_on_user_error("validate"), tempfile.TemporaryDirectory() as tmp:
        out = validate_dataset(data_uri, contract, Path(tmp), publish_to=ObjectStore.from_env())
        for name, artifact in (("report.html", report), ("summary.md", summary), ("report.json", findings)):
            shutil.copyfile(Path(tmp) / name, artifact.path)
        result = out.result
        print(result.summary())
        if not result.passed:
            raise DataError(f"{result.summary()}\n  report: {out.report_uri}")
    return namedtuple("ValidateOutputs", ["errors", "warnings", "report_uri", "data_digest"])(
        len(result.errors), len(result.warnings), out.report_uri, out.data_digest)
