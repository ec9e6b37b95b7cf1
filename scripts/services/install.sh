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

# ClickHouse server (Debian's clickhouse-server, 18.16) and Prometheus, from apt
if ! command -v /usr/sbin/clickhouse-server >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  echo "installing clickhouse-server and prometheus from Debian's packages ..."
  SUDO=""; [[ $(id -u) != 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clickhouse-server prometheus >/dev/null
fi

# helm, built from the Go module proxy (no registry here serves its binary); version pinned
# in tests/services.py. The Go module cache makes a rebuild quick.
HELM_VERSION=$(sed -n 's/^HELM_VERSION = "\(v[0-9.]*\)".*/\1/p' tests/services.py)
if [[ ! -x $ROOT/helm/$HELM_VERSION/helm ]]; then
  echo "building helm $HELM_VERSION from the Go module proxy ..."
  command -v go >/dev/null || { echo "Go is needed to build helm" >&2; exit 1; }
  GOBIN="$ROOT/helm/$HELM_VERSION" GOFLAGS=-mod=mod go install \
    -ldflags "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi

# solc-js and the reference libraries of the attestation encoding (pinned in contracts/package-lock.json)
if [[ ! -d contracts/node_modules/solc || ! -d contracts/node_modules/canonicalize ]]; then
  echo "installing contracts/ node packages from npm ..."
  (cd contracts && npm ci --silent --no-audit --no-fund >/dev/null)
fi
echo "services installed under $ROOT"
