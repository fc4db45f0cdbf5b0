PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test test-heavy check install clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "make: no python3.11 or python3 on PATH; set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# PyTorch's CPU build (192 MB; PyPI's default Linux wheel pulls gigabytes of CUDA), put
# in before the [torch] extra, which then accepts it: set TORCH= to skip, or name another.
TORCH ?= torch==2.13.0

$(STAMP): $(BIN)/python pyproject.toml
	$(if $(TORCH),$(BIN)/python -m pip install --quiet "$(TORCH)")
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/keras-dance explain saved_models/digits_cnn.keras examples/data/digit_*.png --method=gradient --decoy_layer=conv2 --patch=4 --out=out/demo
	$(BIN)/keras-dance export saved_models/digits_cnn.keras --decoy_layer=conv2 --patch=4 --out=out/demo/serving/digits/1 --overwrite

test: $(STAMP)   # the suite CI runs (all but the heavy cross-backend runs); prints its wall time
	@start=$$(date +%s); \
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup -m "not heavy" --durations=10; status=$$?; \
	echo "make test: $$(( $$(date +%s) - start )) s wall"; exit $$status

test-heavy: $(STAMP)  # the heavy cross-backend runs make test leaves out (about 12 min)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup -m heavy --durations=5

check: $(STAMP)  # the fast tier for iteration: unit tests and a smoke test per component
	@start=$$(date +%s); \
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup -m "not slow and not heavy" --durations=5; status=$$?; \
	echo "make check: $$(( $$(date +%s) - start )) s wall"; exit $$status

clean:
	rm -rf $(VENV) out .pytest_cache
