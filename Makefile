# Two entry points that work on a fresh machine: `make demo` and `make test`.
# Everything is installed into .venv by this file; system packages (OpenSSH, Mosquitto, ...)
# that the tests start for real are installed by .ci/system-deps when running as root.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
DATA ?= $(EDGEWISE_DATA)
PYTEST_ARGS ?=

.PHONY: demo test lint setup system-deps

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[train,onnx,test]"
	touch $@

setup: $(VENV)/.installed

system-deps:
	bash .ci/system-deps

demo: $(VENV)/.installed
	$(VENV)/bin/edgewise demo --out edgewise-demo $(if $(DATA),--data $(DATA),)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

test: $(VENV)/.installed system-deps lint
	$(PY) -m pytest -q -ra $(PYTEST_ARGS)

# Every int8 bundle checked on emulated Raspberry Pi CPUs (QEMU arm64 root cached in
# /var/cache/edgewise/pi-root); skipped with a message where emulation is impossible.
.PHONY: verify-pi
verify-pi: $(VENV)/.installed
	VENV=$(VENV) bash .ci/verify-pi

# A quick benchmark run (vibration on real CWRU data) compared with this host's committed baseline:
# a large slowdown or accuracy drop fails CI. Run-to-run noise on a shared 2-core host reaches 2x on
# some rows, hence the generous tolerance; on a host without a baseline it skips with a message.
.PHONY: bench-ci
bench-ci: $(VENV)/.installed
	@b=benchmarks/results/$$(hostname)-quick-baseline.json; \
	if [ ! -f "$$b" ] || [ -z "$(DATA)" ]; then echo "bench-ci: skipped (no $$b or no EDGEWISE_DATA)"; exit 0; fi; \
	$(VENV)/bin/edgewise bench all --data $(DATA) --apps vibration --train-quick --quick \
	  --work build/bench-ci --out build/bench-ci --name ci --compare "$$b" --fail-on-regression \
	  --latency-tolerance 2.5 --accuracy-tolerance 0.05 --min-delta-ms 0.1
