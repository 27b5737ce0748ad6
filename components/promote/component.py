from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Input

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def promote_model(
    blessing: Input[Artifact],
    dataset_digest: str,
) -> NamedTuple("PromoteOutputs", [("model_version", str), ("aliases", str)]):
    """Register a blessed model and move `staging` to it. `production` too when no version serves yet and the
    model is not high-stakes (a compare-and-set against the champion the gate judged); otherwise production
    changes through the rollout pipeline (after `mlops approve` for a high-stakes model)."""
    import json
    from collections import namedtuple

    from mlops.errors import MlopsError, exit_on_user_error
    from mlops.platform.storage import ObjectStore
    from mlops.stages import promote_candidate
    from mlops.training import tracking

    with exit_on_user_error("promote"):
        decision = json.loads(open(blessing.path).read())
        if decision["verdict"] != "BLESSED":  # the pipeline's dsl.If already guarantees this
            raise MlopsError(f"refusing to promote: the gate said {decision['verdict']}")
        model_uri, run_id, model_name = decision["model_uri"], decision["run_id"], decision["model"]
        tracking.connect()
        metrics = tracking.run_metrics(run_id)
        version, aliases = promote_candidate(ObjectStore.from_env(), model_uri, model_name, run_id, dataset_digest,
                                             decision["champion_version"], decision["high_stakes"],
                                             decision["report_uri"], metrics)
    waiting = ("" if "production" in aliases else
               f"; production through a rollout (approve first if high-stakes: mlops approve {model_name} {version})")
    print(f"{model_name} v{version}: {', '.join(aliases)}{waiting}")
    return namedtuple("PromoteOutputs", ["model_version", "aliases"])(version, ",".join(aliases))
