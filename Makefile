# SocialGAN developer commands. `make help` lists them.
.DEFAULT_GOAL := help
VENV := .venv/bin

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

setup: ## install Java 17 (if missing) and .venv with every dependency
	@scripts/setup.sh

demo: setup ## run the whole pipeline on the Twemoji demo images (no Docker, no accounts)
	@scripts/fetch_demo_images.sh
	$(VENV)/socialgan demo

test: setup ## run the test suite
	$(VENV)/python -m pytest -q

protos: setup ## regenerate the gRPC stubs from proto/
	$(VENV)/python scripts/gen_protos.py

lint: setup ## ruff on the code
	$(VENV)/ruff check src services tests scripts benchmarks

bench-grid: setup ## GenerateGrid latency through TorchServe vs in-process
	$(VENV)/python benchmarks/grid_latency.py

clean: ## remove local run state (var/) and the demo images (data/)
	rm -rf var data

.PHONY: help setup demo test protos lint bench-grid clean
