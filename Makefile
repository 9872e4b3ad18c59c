# The two set-up commands of the README. Both install what they need first.
#   make demo   the main job: an end-to-end demo on embedded defaults
#   make test   the whole test suite (what CI runs through .ci/run)
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: demo test deps
deps:
	@scripts/install-deps.sh

demo: deps
	$(CARGO) run --release --quiet -- demo

test: deps
	@scripts/test.sh
