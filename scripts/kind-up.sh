#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# make kind-up: a kind cluster with everything the suite runs on, idempotently (rerun it to converge).
#
#   cert-manager -> Knative Serving + Kourier -> KServe (Knative mode) -> Kubeflow Pipelines (standalone)
#   -> our image, loaded into the node -> manifests/overlays/kind (MinIO + bootstrap, MLflow, Redis,
#   settings, KFP launcher config, serving runtime, RBAC, NodePorts)
#
# Versions: manifests/upstream.env and kind-config.yaml. Takes 10-20 minutes the first time (image pulls).

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

preflight docker kind kubectl git python

if cluster_exists; then
  log "kind cluster ${CLUSTER} exists: converging it"
else
  log "creating kind cluster ${CLUSTER} (kind-config.yaml)"
  kind create cluster --name "$CLUSTER" --config "${ROOT}/kind-config.yaml" --wait 120s
fi

wait_available() {  # NAMESPACE TIMEOUT: every Deployment of the namespace Available
  log "waiting for the Deployments in $1"
  k -n "$1" wait --for=condition=Available deployment --all --timeout="$2"
}

log "cert-manager ${CERT_MANAGER_VERSION}"
k apply -f "$CERT_MANAGER_URL"
wait_available cert-manager 300s

log "Knative Serving ${KNATIVE_SERVING_VERSION} with Kourier ${KNATIVE_KOURIER_VERSION}"
k apply -f "$KNATIVE_CRDS_URL"
k wait --for=condition=Established crd --all --timeout=120s
k apply -f "$KNATIVE_CORE_URL"
k apply -f "$KOURIER_URL"
wait_available knative-serving 300s
wait_available kourier-system 300s
# Configured once Knative's webhook answers (it validates these ConfigMaps).
retry 10 10 k -n knative-serving patch configmap/config-network --type merge \
  -p '{"data":{"ingress-class":"kourier.ingress.networking.knative.dev"}}'
# Knative's default domain (svc.cluster.local) is not routed by the gateway; example.com is, given a Host header.
retry 10 10 k -n knative-serving patch configmap/config-domain --type merge -p '{"data":{"example.com":""}}'

log "KServe ${KSERVE_VERSION}"
k create namespace kserve --dry-run=client -o yaml | k apply -f -
# Its Certificate and Issuer need cert-manager's webhook, which may still be warming up: retried.
retry 10 15 k apply --server-side --force-conflicts -f "$KSERVE_URL"
wait_available kserve 300s
retry 10 10 k apply --server-side --force-conflicts -f "$KSERVE_CLUSTER_RESOURCES_URL"
# Kourier, not Istio: KServe must not create Istio VirtualServices (inferenceservice-config, key "ingress").
patch="$(k -n kserve get configmap inferenceservice-config -o jsonpath='{.data.ingress}' | "$PYTHON" -m mlops.cluster.kind)"
if [ -n "$patch" ]; then
  k -n kserve patch configmap/inferenceservice-config --type merge -p "$patch"
  k -n kserve rollout restart deployment/kserve-controller-manager
  k -n kserve rollout status deployment/kserve-controller-manager --timeout=300s
fi

log "Kubeflow Pipelines ${KFP_VERSION} (standalone)"
k apply -k "$KFP_CLUSTER_SCOPED_KUSTOMIZATION"
k wait --for=condition=Established --timeout=120s crd/applications.app.k8s.io
# Our kfp-launcher ConfigMap is immutable, so that re-applying KFP cannot reset the pipeline root silently;
# on a rerun it must go before KFP's own is applied, and comes back with the suite's overlay below.
k -n kubeflow delete configmap kfp-launcher --ignore-not-found
retry 3 20 k apply -k "$KFP_KUSTOMIZATION"
wait_available kubeflow 900s

build_and_load_image

log "the suite's own resources (manifests/overlays/kind)"
# A Job's pod template cannot change: replace the bootstrap Job so a rerun runs it with the current image.
k -n mlops delete job mlops-bootstrap --ignore-not-found
k apply -k "${ROOT}/manifests/overlays/kind"
wait_available mlops 300s
log "waiting for the bootstrap Job (bucket, demo data)"
k -n mlops wait --for=condition=Complete job/mlops-bootstrap --timeout=600s

"$PYTHON" - "$ROOT" <<'PY'
import sys
from mlops.cluster.kind import host_ports

ports = host_ports(sys.argv[1])
print("\nkind cluster ready. On this machine:")
for name, what in (("kfp-ui", "Kubeflow Pipelines UI"), ("inference-gateway", "inference gateway (Host: <InferenceService host>)"),
                   ("mlflow-ui", "MLflow"), ("minio-console", "MinIO console")):
    print(f"  {what:52s} {ports[name].url}")
print("Next: make kind-e2e")
PY
log "done"
