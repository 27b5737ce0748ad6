#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# make kind-e2e: on the cluster from make kind-up, rebuild and load the image, then run the end-to-end check
# (mlops cluster e2e): the compiled training pipeline in Kubeflow, the model served by KServe answering V2
# through the gateway, and one canary step rolled back. About 15-25 minutes on 4 CPUs.

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

preflight docker kind kubectl python
require_cluster
k get namespace mlops >/dev/null 2>&1 || die "the cluster has no mlops namespace: run make kind-up first."

build_and_load_image

log "end-to-end check (mlops cluster e2e)"
cd "$ROOT" || exit 2
"$PYTHON" -m mlops.cli cluster e2e --project "${MLOPS_PROJECT:-credit-default}" --root "$ROOT" --cluster "$CLUSTER" --image "$IMAGE"
log "done"
