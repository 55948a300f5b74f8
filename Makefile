# Ward: the two README commands are `make demo` (main job) and `make test` (every test).
CARGO_TARGET_DIR ?= /var/tmp/ward-target
export CARGO_TARGET_DIR
CARGO ?= cargo

.PHONY: test demo bench bench-policy check-sample fuzz

## Every test of every layer.
test:
	$(CARGO) test --workspace

## The main job on the default setup: check the sample with the default policy (SARIF too).
demo:
	$(CARGO) build --release -p ward-cli --no-default-features
	-$(CARGO_TARGET_DIR)/release/ward explain --stats --policy policies/python | tail -n 12
	-$(CARGO_TARGET_DIR)/release/ward check tests/samples

## Benchmarks (numbers quoted in the README).
bench: bench-policy
bench-policy:
	$(CARGO) bench -p ward-policy --bench policy

## Fuzz the policy compiler (needs nightly + cargo-fuzz; not part of CI).
fuzz:
	cd crate/policy && cargo +nightly fuzz run compile -- -max_total_time=300
