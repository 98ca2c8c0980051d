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
