#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# make kind-down: delete the kind cluster and everything in it (MinIO's data, MLflow's database). Idempotent.

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

preflight kind
if cluster_exists; then
  log "deleting kind cluster ${CLUSTER}"
  kind delete cluster --name "$CLUSTER"
else
  log "no kind cluster named ${CLUSTER}: nothing to delete"
fi
