#!/usr/bin/env bash
# Installs the local services used by tests, development and the demo under
# $MEVWATCH_SERVICES (default ~/.cache/mevwatch/services; tests/services.py and sim/anvil.py look there):
#   kafka/libs  Apache Kafka broker jars from Maven Central (kafka-pom.xml)
#   anvil       the anvil binary from the npm package @foundry-rs/anvil (pinned)
#   clickhouse-server and prometheus from Debian's packages (apt; system-wide)
#   helm        built with `go install` from the Go module proxy
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=${MEVWATCH_SERVICES:-$HOME/.cache/mevwatch/services}
mkdir -p "$ROOT"
ONLY_ANVIL=0
[[ "${1:-}" == "--anvil-only" ]] && ONLY_ANVIL=1

install_anvil() {
  local version=1.7.1
  if [[ ! -x $ROOT/anvil/node_modules/.bin/anvil ]] || ! grep -q "\"version\": \"$version\"" "$ROOT/anvil/node_modules/@foundry-rs/anvil/package.json" 2>/dev/null; then
    echo "installing anvil $version from npm ..."
    command -v npm >/dev/null || { echo "Node.js with npm is needed for anvil" >&2; exit 1; }
    mkdir -p "$ROOT/anvil"
    (cd "$ROOT/anvil" && npm install --silent --no-audit --no-fund --no-save "@foundry-rs/anvil@$version" >/dev/null)
  fi
}
if [[ $ONLY_ANVIL == 1 ]]; then
  install_anvil
  exit 0
fi

if [[ ! -f $ROOT/kafka/libs/.complete ]]; then
  echo "installing Kafka jars from Maven Central ..."
  command -v mvn >/dev/null || { echo "Maven (mvn) is needed to fetch Kafka; apt-get install maven" >&2; exit 1; }
  command -v java >/dev/null || { echo "Java >= 17 is needed for Kafka; apt-get install openjdk-17-jre-headless" >&2; exit 1; }
  rm -rf "$ROOT/kafka/libs"
  mvn -q -f scripts/services/kafka-pom.xml dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$ROOT/kafka/libs"
  touch "$ROOT/kafka/libs/.complete"
fi

install_anvil

# ClickHouse server (Debian's clickhouse-server, 18.16) and Prometheus, from apt; openssl makes the
# test certificates of the TLS tests (Kafka SASL_SSL, ClickHouse's secure port)
if ! command -v /usr/sbin/clickhouse-server >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1 \
    || ! command -v openssl >/dev/null 2>&1; then
  echo "installing clickhouse-server and prometheus from Debian's packages ..."
  SUDO=""; [[ $(id -u) != 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clickhouse-server prometheus openssl >/dev/null
fi

# helm, built from the Go module proxy (no registry here serves its binary); version pinned
# in tests/services.py. The Go module cache makes a rebuild quick. The ldflags are those of
# helm's Makefile: its version, and the Kubernetes version it assumes without a cluster
# (`helm template`, `helm lint`: .Capabilities.KubeVersion), taken from the k8s.io/client-go
# it is built with (v0.34 -> Kubernetes 1.34) as its Makefile does; without them a plain
# `helm template` reports Kubernetes v1.20.0 and fails the chart's kubeVersion. The stamp file
# records that flags were set: a binary built without them (older install script) is rebuilt.
HELM_VERSION=$(sed -n 's/^HELM_VERSION = "\(v[0-9.]*\)".*/\1/p' tests/services.py)
HELM_DIR=$ROOT/helm/$HELM_VERSION
if [[ ! -x $HELM_DIR/helm || ! -f $HELM_DIR/.kube-version ]]; then
  echo "building helm $HELM_VERSION from the Go module proxy ..."
  command -v go >/dev/null || { echo "Go is needed to build helm" >&2; exit 1; }
  HELM_GOMOD=$(cd / && GOFLAGS=-mod=mod go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
  K8S_MINOR=$(sed -n 's|^[[:space:]]*k8s.io/client-go v0\.\([0-9][0-9]*\)\..*|\1|p' "$HELM_GOMOD")
  [[ -n $K8S_MINOR ]] || { echo "cannot read the k8s.io/client-go version of helm $HELM_VERSION from $HELM_GOMOD" >&2; exit 1; }
  LDFLAGS="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for pkg in pkg/lint/rules pkg/chartutil; do
    LDFLAGS+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$K8S_MINOR"
  done
  rm -f "$HELM_DIR/.kube-version"
  GOBIN="$HELM_DIR" GOFLAGS=-mod=mod go install -trimpath -ldflags "$LDFLAGS" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  echo "v1.$K8S_MINOR.0" > "$HELM_DIR/.kube-version"
fi

# solc-js and the reference libraries of the attestation encoding (pinned in contracts/package-lock.json)
if [[ ! -d contracts/node_modules/solc || ! -d contracts/node_modules/canonicalize ]]; then
  echo "installing contracts/ node packages from npm ..."
  (cd contracts && npm ci --silent --no-audit --no-fund >/dev/null)
fi
echo "services installed under $ROOT"
