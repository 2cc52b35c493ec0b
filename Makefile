# From a fresh clone, two commands (see README.md):
#   make demo    sets up .venv and runs the demo
#   make test    sets up .venv and runs every notebook as a test
# On a machine without torch this installs torch==2.13.0; pass TORCH="torch==X.Y" for another build.
VENV  ?= .venv
PY    := $(VENV)/bin/python
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup demo test export clean-nbs
setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -c "import torch; print('torch==' + torch.__version__)" > $(VENV)/constraints.txt
	$(PY) -m pip install -q -c $(VENV)/constraints.txt -e ".[dev]"
	touch $@

demo: $(STAMP)
	$(PY) -m fastxtend_accum.demo

test: $(STAMP)
	$(VENV)/bin/nbdev-test --n-workers 2 --timing

export: $(STAMP)
	$(VENV)/bin/nbdev-export

clean-nbs: $(STAMP)
	$(VENV)/bin/nbdev-clean
