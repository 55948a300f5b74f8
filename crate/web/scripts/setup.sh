#!/usr/bin/env bash
# Installs what the wasm build and the browser tests need, when it is missing (idempotent,
# offline apart from the package registries): the wasm32 target, wasm-bindgen-cli at the
# exact version of `wasm-bindgen` in Cargo.lock, and Debian's chromium, chromium-driver and
# binaryen (wasm-opt). Never downloads a binary: wasm-bindgen-cli is built by cargo.
set -euo pipefail
cd "$(dirname "$0")/../../.."

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
if [ -z "$want" ]; then
  echo "setup: no wasm-bindgen in Cargo.lock (is crate/web a workspace member?)" >&2
  exit 2
fi
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  echo "setup: installing wasm-bindgen-cli $want (found: ${have:-none})" >&2
  cargo install wasm-bindgen-cli --version "$want" --force
fi

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v wasm-opt >/dev/null || missing+=(binaryen)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: apt-get install ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
