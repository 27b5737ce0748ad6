"""Human-readable summaries of stage results (Markdown for the KFP dashboard)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops.stages import TrainStageResult


def training_summary_markdown(result: "TrainStageResult") -> str:
    trained, run = result.trained, result.run
    rows = "\n".join(f"| {name} | {value:.4f} |" for name, value in trained.metrics.items())
    return (
        f"# Training run\n\n"
        f"MLflow run [{run.run_id}]({run.url}), model `{run.model_uri}`\n\n"
        f"Trained on {trained.train_rows} rows, validated on the {trained.validation_rows} most recent.\n\n"
        f"Features: {', '.join(trained.features.all)}\n\n"
        f"| validation metric | value |\n|---|---|\n{rows}\n"
    )
