from kfp import dsl

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def register_model(model_uri: str, run_id: str, model_name: str, dataset_digest: str) -> str:
    """Register the run's model as a new MLflow model version (READY or nothing); returns the version."""
    from mlops.errors import exit_on_user_error
    from mlops.stages import register

    with exit_on_user_error("register"):
        version = register(model_uri, model_name, run_id, dataset_digest)
    print(f"registered {model_name} version {version} from run {run_id}")
    return version
