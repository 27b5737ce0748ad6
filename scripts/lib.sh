# shellcheck shell=bash source-path=SCRIPTDIR
# Shared by scripts/kind-*.sh: strict mode, logging, preflight checks, and kubectl bound to the kind cluster.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${KIND_CLUSTER:-mlops}"
CONTEXT="kind-${CLUSTER}"
KUBECTL="${KUBECTL:-kubectl}"
PYTHON="${PYTHON:-python3}"
IMAGE="${IMAGE:-mlops-suite/components:0.1.0}"
STARTED=$SECONDS

# shellcheck source=../manifests/upstream.env
source "${ROOT}/manifests/upstream.env"

log() { printf '[%5ss] %s\n' "$((SECONDS - STARTED))" "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 2; }

# require_tool NAME HINT: fail before touching anything when a tool is missing.
require_tool() {
  command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH. $2"
}

preflight() {
  local tool
  for tool in "$@"; do
    case "$tool" in
      docker)
        require_tool docker "Install Docker (https://docs.docker.com/get-docker/); kind runs the cluster in it."
        docker info >/dev/null 2>&1 || die "docker is installed but its daemon does not answer (docker info failed): start Docker, or check that this user may use it."
        ;;
      kind)
        require_tool kind "Install kind ${KIND_VERSION} (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)."
        local found
        found="$(kind version 2>/dev/null | awk '{print $2}')"
        [ "$found" = "$KIND_VERSION" ] || log "note: kind ${found:-of unknown version} found; the suite is tested with ${KIND_VERSION}"
        ;;
      kubectl)
        require_tool "$KUBECTL" "Run through make (make kind-up), which uses the kubectl locked in requirements.lock (.venv/bin/kubectl), or set KUBECTL."
        ;;
      git)
        require_tool git "kubectl fetches the Kubeflow Pipelines kustomizations from their git repository."
        ;;
      python)
        require_tool "$PYTHON" "Run through make, which uses the project's .venv/bin/python, or set PYTHON."
        ;;
      *) die "preflight: unknown tool $tool" ;;
    esac
  done
}

# kubectl, always against the kind cluster's context (never whatever context happens to be current).
k() { "$KUBECTL" --context "$CONTEXT" "$@"; }

cluster_exists() { kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; }

require_cluster() {
  cluster_exists || die "no kind cluster named ${CLUSTER}: run make kind-up first."
}

# retry ATTEMPTS DELAY CMD...: webhooks and CRDs take a moment to answer after their Deployment is Available.
retry() {
  local attempts="$1" delay="$2" n=1
  shift 2
  until "$@"; do
    if [ "$n" -ge "$attempts" ]; then
      printf 'error: gave up after %s attempts: %s\n' "$attempts" "$*" >&2
      return 1
    fi
    log "retrying in ${delay}s ($n/$attempts): $*"
    sleep "$delay"
    n=$((n + 1))
  done
}

# Build the component image (the serving image is the same one: predictor and transformer are console
# scripts in it) and load it into the kind node, so nothing is pulled from a registry.
build_and_load_image() {
  log "building ${IMAGE} (make image)"
  make -C "$ROOT" --no-print-directory image IMAGE="$IMAGE"
  log "loading ${IMAGE} into the kind node"
  kind load docker-image "$IMAGE" --name "$CLUSTER"
}
