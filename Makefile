# encstr — `make` lists the targets.
.DEFAULT_GOAL := help
.PHONY: help demo test fmt lint bench fuzz clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

demo: ## local walkthrough with a generated keyring (no cluster)
	./scripts/demo.sh

test: ## every test CI runs (installs what it needs)
	./scripts/test.sh

fmt: ## format the code
	cargo fmt --all

lint: ## clippy with warnings as errors
	cargo clippy --all-targets -- -D warnings

bench: ## criterion benchmarks of the core (figures in BENCHMARKS.md)
	cargo bench -p encstr-core

fuzz: ## fuzz every target for 5 minutes each (scripts/fuzz.sh; no cargo-fuzz needed)
	FUZZ_SECONDS=300 ./scripts/fuzz.sh

clean: ## remove build output and the demo directory
	cargo clean && rm -rf demo
