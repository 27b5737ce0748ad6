from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Markdown, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def check_feature_skew(
    project: str,
    served_uri: str,
    max_mismatch_rate: float,
    report: Output[Artifact],
    summary: Output[Markdown],
) -> NamedTuple("SkewOutputs", [("worst_mismatch_rate", float), ("mismatched_features", str)]):
    """Compare feature vectors served online (as logged by serving) with an offline point-in-time
    recomputation for the same entities and times; fail when a feature mismatches too often."""
    import shutil
    import tempfile
    from collections import namedtuple
    from pathlib import Path

    from mlops.errors import DataError, exit_on_user_error
    from mlops.platform.storage import ObjectStore
    from mlops.project import resolve_project
    from mlops.stages import check_skew

    with exit_on_user_error("skew"), tempfile.TemporaryDirectory() as tmp:
        store = ObjectStore.from_env()
        result = check_skew(resolve_project(project, store=store), served_uri, Path(tmp), store)
        shutil.copyfile(Path(tmp) / "skew.json", report.path)
        shutil.copyfile(Path(tmp) / "skew.md", summary.path)
        print(result.summary())
        if not result.passed(max_mismatch_rate=max_mismatch_rate):
            raise DataError(f"training-serving skew above {max_mismatch_rate:.2%}:\n{result.summary()}")
    worst = max((f.mismatch_rate for f in result.features), default=0.0)
    return namedtuple("SkewOutputs", ["worst_mismatch_rate", "mismatched_features"])(
        worst, ",".join(result.mismatched_features))
