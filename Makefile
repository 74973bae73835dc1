# `make test` and `make reproduce` set everything up on a fresh machine first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
KERNEL := skin-lesion
STAMP  := $(VENV)/.installed

.PHONY: setup setup-gpu test reproduce quick serve clean-venv

$(STAMP): environment/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r environment/requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	# A kernel for this venv, so papermill never starts another interpreter.
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python 3 ($(KERNEL))"
	touch $(STAMP)

setup: $(STAMP)

# The GPU profile (README, "With a GPU"): TensorFlow's CUDA build and CUDA from PyPI in .venv-gpu;
# then `.venv-gpu/bin/python -m helpers reproduce --full`. --no-deps: pyproject names tensorflow-cpu.
setup-gpu:
	$(PYTHON) -m venv .venv-gpu
	.venv-gpu/bin/python -m pip install --disable-pip-version-check -q -r environment/requirements-gpu.txt
	.venv-gpu/bin/python -m pip install --disable-pip-version-check -q --no-deps -e .
	.venv-gpu/bin/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python 3 ($(KERNEL), GPU)"

# Two workers, whole files each (module fixtures run once): the chain on one, the rest on the other.
test: setup
	$(PY) -m pytest -n 2 --dist loadfile

reproduce: setup
	$(PY) -m helpers reproduce

# The whole chain in its small "quick" setting, written to /tmp, repository untouched.
quick: setup
	$(PY) -m helpers reproduce --quick --output-dir /tmp/skin-lesion-quick

# A local web page to try the models: http://127.0.0.1:7860/ (this computer only).
serve: setup
	$(PY) -m helpers serve

clean-venv:
	rm -rf $(VENV)
