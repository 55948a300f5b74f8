# Ward: the two README commands are `make run` (main job: the playground) and `make test` (every test).
CARGO_TARGET_DIR ?= /var/tmp/ward-target
export CARGO_TARGET_DIR
CARGO ?= cargo

.PHONY: test demo bench bench-generate bench-policy check-sample fuzz run web web-test wasm wasm-test test-security test-semgrep eval-security

## Every test of every layer.
test:
	$(CARGO) test --workspace
	$(MAKE) test-security
	$(MAKE) test-semgrep
	$(MAKE) wasm-test
	$(MAKE) web-test WARD_WASM_PROFILE=release

## The wasm package with the generator (crate/web with feature `model`: burn on WebGPU and
## the CPU, tokenizers, the sampler; wasm-bindgen --target web) in $(WARD_WASM_DIR); installs
## the wasm toolchain first when it is missing (crate/web/scripts/setup.sh). The
## policy-and-guard-only package: `bash crate/web/scripts/build.sh` (crate/web/pkg).
## WARD_WASM_PROFILE (default wasm-release: size, LTO): `make test` builds the web app's package
## with `release`, the profile of the browser tests, so that burn is built for wasm only once.
WARD_WASM_DIR ?= crate/web/pkg-model
WARD_WASM_PROFILE ?= wasm-release
export WARD_WASM_PROFILE
wasm:
	bash crate/web/scripts/setup.sh
	bash crate/web/scripts/build.sh --model --out $(WARD_WASM_DIR)

## crate/web's tests in headless Chromium (wasm-bindgen-test, Debian's chromium): the policy
## and guard tests and the generator's (feature `model`: WebGPU on SwiftShader and the CPU).
wasm-test:
	bash crate/web/scripts/setup.sh
	bash crate/web/scripts/test-browser.sh --features model

## The web app (web/): npm packages, the wasm package, the policy-only `ward` (its own target
## folder: no burn, and no rebuild of the full CLI) for the packs' precompiled artefacts, then
## web/dist (web/README.md).
WARD_POLICY_CLI_DIR ?= $(CARGO_TARGET_DIR)/policy-cli
web:
	bash web/scripts/ensure-deps.sh
	$(MAKE) wasm
	CARGO_TARGET_DIR=$(WARD_POLICY_CLI_DIR) $(CARGO) build --release -p ward-cli --no-default-features
	WARD_COMPILE_POLICY=$(WARD_POLICY_CLI_DIR)/release/ward WARD_WASM_DIR=$(WARD_WASM_DIR) npm --prefix web run build

## Unit tests (vitest) and browser tests (playwright-core + Debian's chromium) of web/.
web-test: web
	bash web/scripts/ensure-deps.sh --browser
	npm --prefix web run typecheck
	npm --prefix web test

## The playground and the docs demo on http://127.0.0.1:$(PORT)/ (default model, python pack).
PORT ?= 8080
run: web
	PORT=$(PORT) node web/server/serve.mjs

## A terminal demo: the same insecure pull (`--oracle-file`: the model is made to prefer
## `shell=True)`) without and with the policy, what was blocked, and `ward check`.
WARD := $(CARGO_TARGET_DIR)/release/ward
demo:
	$(CARGO) build --release -p ward-cli
	@echo "== ward generate --no-policy (unconstrained) =="
	-$(WARD) generate --no-policy --prompt-file tests/samples/demo_prompt.txt --oracle-file tests/samples/demo_pull.txt
	@echo "== ward generate (policies/python enforced) =="
	$(WARD) generate --prompt-file tests/samples/demo_prompt.txt --oracle-file tests/samples/demo_pull.txt --certificate $(CARGO_TARGET_DIR)/demo-certificate.json
	@echo "== certificate: $(CARGO_TARGET_DIR)/demo-certificate.json =="
	-$(WARD) check tests/samples

## Benchmarks (numbers quoted in the README).
bench: bench-policy bench-generate
bench-generate:
	$(CARGO) run --release -p ward-cli -- bench generate
bench-policy:
	$(CARGO) bench -p ward-policy --bench policy

## Fuzz every user-controlled input, one target after the other, FUZZ_SECONDS each (needs
## nightly and `cargo install cargo-fuzz`; not part of `make test` or CI): the policy
## compiler, tokenizer.json, the guard, and the model loader (which builds burn). Corpora are
## seeded from the project's own inputs; crashes land in crate/*/fuzz/artifacts/.
FUZZ_SECONDS ?= 300
FUZZ_ARGS = -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
FUZZ_RUN = env -u CARGO_TARGET_DIR nice -n 15 cargo +nightly fuzz run
fuzz:
	python3 crate/policy/fuzz/seed.py
	python3 crate/guard/fuzz/seed.py
	python3 crate/model/fuzz/seed.py
	cd crate/policy && $(FUZZ_RUN) compile fuzz/corpus/compile -- $(FUZZ_ARGS)
	cd crate/guard && $(FUZZ_RUN) tokenizer fuzz/corpus/tokenizer -- $(FUZZ_ARGS)
	cd crate/guard && $(FUZZ_RUN) guard fuzz/corpus/guard -- $(FUZZ_ARGS)
	cd crate/model && $(FUZZ_RUN) loader fuzz/corpus/loader -- $(FUZZ_ARGS)

## The security evaluation's own tests (tests/security): prompt files, harness plumbing, every
## prompt's insecure completion caught by `ward check`, and the --smoke run (5 prompts, arms
## a-d, ward check as judge) with the `ward` that `cargo test` built. Python 3 + PyYAML, no network.
test-security:
	WARD_BIN=$(CARGO_TARGET_DIR)/debug/ward python3 -m unittest discover -s tests/security -v

## The Semgrep-fidelity harness's own tests (tests/semgrep): annotations, rule selection,
## the comparison, and a run on its fixtures (rules written for Ward) from a folder and a bare
## git repository, with the `ward` that `cargo test` built. Python 3 + PyYAML, no network.
test-semgrep:
	WARD_BIN=$(CARGO_TARGET_DIR)/debug/ward python3 -m unittest discover -s tests/semgrep -v

## The full security evaluation (tests/security/README.md): installs bandit, semgrep and
## matplotlib from PyPI into /var/tmp/ward-eval-venv, then writes tests/security/results/.
EVAL_PY ?= /var/tmp/ward-eval-venv/bin/python
eval-security:
	$(CARGO) build --release -p ward-cli
	python3 tests/security/run_eval.py --setup
	$(EVAL_PY) tests/security/run_eval.py --suite ours --seeds 2 --retries 4 --jobs 2 --out /var/tmp/ward-security-work/run-ours
	$(EVAL_PY) tests/security/run_eval.py --suite cse --seeds 1 --retries 4 --cse-limit 16 --jobs 2 --out /var/tmp/ward-security-work/run-cse
	$(EVAL_PY) tests/security/run_eval.py --report-only --merge /var/tmp/ward-security-work/run-ours --merge /var/tmp/ward-security-work/run-cse
