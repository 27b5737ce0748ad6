from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def evaluate_model(
    project: str,
    test_set: Input[Dataset],
    model_uri: str,
    run_id: str,
    metrics: Output[Metrics],
    curves: Output[ClassificationMetrics],
    report: Output[HTML],
    summary: Output[Markdown],
    blessing: Output[Artifact],
) -> str:
    """Score the candidate and the production champion on the same held-out test set and apply the
    project's gate. Returns BLESSED or NOT_BLESSED (a single output, so dsl.If can test it); the blessing
    artifact holds every rule's numbers and the champion it was judged against."""
    import shutil
    import tempfile
    from pathlib import Path

    from mlops.errors import exit_on_user_error
    from mlops.platform.storage import ObjectStore
    from mlops.project import resolve_project
    from mlops.stages import evaluate_candidate

    with exit_on_user_error("evaluate"), tempfile.TemporaryDirectory() as tmp:
        store = ObjectStore.from_env()
        spec = resolve_project(project, store=store)
        out = evaluate_candidate(spec, test_set.path, model_uri, Path(tmp), store, run_id)
        for name, artifact in (("report.html", report), ("summary.md", summary), ("blessing.json", blessing)):
            shutil.copyfile(Path(tmp) / name, artifact.path)
    candidate = out.candidate
    for name, value in candidate.metrics.items():
        metrics.log_metric(f"test_{name}", round(value, 6))
    curves.log_roc_curve(*candidate.roc)
    curves.log_confusion_matrix(list(spec.label.class_names), candidate.confusion)
    blessing.metadata.update({"verdict": out.blessing.verdict, "champion": out.champion_version or ""})
    print(out.blessing.summary())
    return out.blessing.verdict
