"""Compile every pipeline and every component to YAML (``make compile``).

Pipelines go to pipelines/compiled/<name>.yaml; each component also goes to
components/<stage>/component.yaml so users can load a single stage into
their own pipelines. The component image is fixed at this point
(MLOPS_COMPONENT_IMAGE).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kfp import compiler

ROOT = Path(__file__).resolve().parent.parent


def targets():
    """(object to compile, output path relative to the project root) for every artifact."""
    from components.evaluate import evaluate_model
    from components.features import build_features
    from components.ingest import ingest_data
    from components.promote import promote_model
    from components.register import register_model
    from components.retrieve import retrieve_training_data
    from components.skew import check_feature_skew
    from components.train import train_model
    from components.validate import validate_data
    from pipelines.training import training_pipeline

    return [
        (training_pipeline, "pipelines/compiled/training_pipeline.yaml"),
        (validate_data, "components/validate/component.yaml"),
        (build_features, "components/features/component.yaml"),
        (retrieve_training_data, "components/retrieve/component.yaml"),
        (evaluate_model, "components/evaluate/component.yaml"),
        (promote_model, "components/promote/component.yaml"),
        (check_feature_skew, "components/skew/component.yaml"),
        (ingest_data, "components/ingest/component.yaml"),
        (train_model, "components/train/component.yaml"),
        (register_model, "components/register/component.yaml"),
    ]


def compile_all(root: Path = ROOT) -> list[Path]:
    written = []
    for obj, rel in targets():
        out = root / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        compiler.Compiler().compile(obj, str(out))
        written.append(out)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT, help="root folder to write into (default: the project)")
    args = parser.parse_args(argv)
    for path in compile_all(args.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
