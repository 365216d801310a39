#!/usr/bin/env bash
# Installs the Debian packages berth needs to build, test and run in development.
# Idempotent: packages already present are skipped, and apt-get runs only when
# something is missing. Called by `make dev` and `make test`.
set -euo pipefail

build_pkgs=(meson ninja-build pkg-config gcc clang libclang-rt-14-dev
  libsqlite3-dev libssl-dev libsodium-dev libfyaml-dev libseccomp-dev libarchive-dev
  libcmocka-dev libcurl4-openssl-dev libssh-dev libnghttp2-dev)
test_pkgs=(python3 python3-pytest curl openssl wrk iproute2 util-linux procps nftables
  php8.2-fpm chromium nodejs pebble openssh-client openssh-sftp-server sshpass nghttp2-client)

want=("${build_pkgs[@]}" "${test_pkgs[@]}")
case "${1:-}" in
  --bench) want+=(nginx-light h2o haproxy hyperfine bubblewrap crun) ;;
esac

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "bootstrap: missing packages: ${missing[*]}" >&2
  echo "bootstrap: run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi

echo "bootstrap: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Update the package lists only when they are missing or older than a day.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages' -mmin -1440 2>/dev/null | head -n1)" ]; then
  apt-get update -qq
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
