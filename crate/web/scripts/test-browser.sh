#!/usr/bin/env bash
# Runs crate/web's wasm-bindgen tests in headless Chromium (Debian's chromium + chromedriver,
# WebGPU on the CPU through SwiftShader). Extra arguments go to `cargo test`, e.g.
#   crate/web/scripts/test-browser.sh --features model
# Needs what scripts/setup.sh installs; run that first on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/../../.."

for tool in wasm-bindgen-test-runner chromedriver chromium; do
  if ! command -v "$tool" >/dev/null; then
    echo "test-browser: $tool is missing: run crate/web/scripts/setup.sh" >&2
    exit 2
  fi
done
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen-test-runner --version | awk '{print $2}')
if [ "$have" != "$want" ]; then
  echo "test-browser: wasm-bindgen-test-runner is $have but Cargo.lock has wasm-bindgen $want: run crate/web/scripts/setup.sh" >&2
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A fresh profile every run; no network, no background services; WebGPU allowed.
cat >"$work/webdriver.json" <<JSON
{ "goog:chromeOptions": { "args": [
  "--headless=new", "--no-sandbox", "--enable-unsafe-webgpu", "--enable-features=Vulkan",
  "--use-angle=swiftshader", "--disable-background-networking", "--disable-component-update",
  "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
  "--user-data-dir=$work/profile" ] } }
JSON
export WASM_BINDGEN_TEST_WEBDRIVER_JSON="$work/webdriver.json"
export CHROMEDRIVER
CHROMEDRIVER=$(command -v chromedriver)
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-900}"
exec cargo test -p ward-web --target wasm32-unknown-unknown --release "$@"
