#!/usr/bin/env bash
# Builds the wasm package (wasm-bindgen --target web: ward_web.js, ward_web_bg.wasm,
# ward_web.d.ts) with the size profile `wasm-release` and wasm-opt -Oz, and prints the raw
# and gzip sizes.
#   crate/web/scripts/build.sh [--model] [--out DIR] [--profile PROFILE]
# PROFILE (default wasm-release; also $WARD_WASM_PROFILE): `make test` passes `release`, the
# profile of the browser tests, so that CI builds burn for wasm once instead of twice (the
# package is then larger: 18.4 MB raw, 5.1 MB gzip against 11.0 and 3.2 for the model build;
# the tests check behaviour, not size).
# Default: the policy-and-guard-only build into crate/web/pkg; --model adds the generator
# (burn on WebGPU and the CPU) and writes crate/web/pkg-model unless --out is given.
set -euo pipefail
cd "$(dirname "$0")/../../.."

features=()
out=""
model=0
profile="${WARD_WASM_PROFILE:-wasm-release}"
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=1; features=(--features model) ;;
    --out) out="$2"; shift ;;
    --profile) profile="$2"; shift ;;
    *) echo "build: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$out" ]; then
  if [ $model = 1 ]; then out=crate/web/pkg-model; else out=crate/web/pkg; fi
fi

target_dir="${CARGO_TARGET_DIR:-target}"
cargo build -p ward-web --lib --target wasm32-unknown-unknown --profile "$profile" "${features[@]}"
wasm="$target_dir/wasm32-unknown-unknown/$profile/ward_web.wasm"
rm -rf "$out"
# wasm-opt runs on cargo's output, before wasm-bindgen: Debian's binaryen (version 108) breaks
# the externref table that wasm-bindgen adds (even at -O0, instantiation then fails with
# "WebAssembly.Table.set(): Argument 1 is invalid for table"); in this order it does not.
if command -v wasm-opt >/dev/null; then
  opt_dir=$(mktemp -d)
  # The features rustc enables by default for wasm32 (and simd128 from .cargo/config.toml).
  wasm-opt -Oz --enable-simd --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
    --enable-nontrapping-float-to-int --enable-reference-types --enable-multivalue \
    -o "$opt_dir/ward_web.wasm" "$wasm"
  wasm="$opt_dir/ward_web.wasm"
else
  echo "build: wasm-opt not found (apt-get install binaryen): the .wasm is not size-optimised" >&2
fi
wasm-bindgen --target web --out-dir "$out" "$wasm"
raw=$(stat -c %s "$out/ward_web_bg.wasm")
gz=$(gzip -9 -c "$out/ward_web_bg.wasm" | wc -c)
what="policy and guard only, profile $profile"
[ $model = 1 ] && what="model, profile $profile"
awk -v w="$what" -v f="$out/ward_web_bg.wasm" -v r="$raw" -v g="$gz" \
  'BEGIN { printf "ward-web (%s): %s %d bytes raw (%.2f MB), %d bytes gzip -9 (%.2f MB)\n", w, f, r, r / 1e6, g, g / 1e6 }'
