# From a fresh clone, two commands (see README.md):
#   make demo    sets up .venv with the package and the `demo` extra only, and runs the demo
#   make test    sets up .venv with the `dev` extra (every tool), runs every notebook as a test (nbdev-test), then
#                checks the docs site, every page run as pasted (check-docs) and the package as a user installs it
#                (check-package)
# On a machine without torch this installs torch==2.13.0; pass TORCH="torch==X.Y" for another build.
# Contributors (CONTRIBUTING.md): export, clean-nbs, docs-outputs, readme, docs-preview, serve-docs, check-pages, hooks.
VENV  ?= .venv
PY    := $(VENV)/bin/python
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
NBS   ?= nbs
PAGES ?=
# notebooks run headless and offline, as in CI
export MPLBACKEND ?= Agg
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true

.PHONY: setup demo test export clean-nbs docs-outputs docs-preview serve-docs readme check-docs check-pages check-package hooks
setup: $(STAMP)

# .venv, torch (unless one is there), then the package editable with the extra $(1)
define install
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -c "import torch; print('torch==' + torch.__version__)" > $(VENV)/constraints.txt
	$(PY) -m pip install -q -c $(VENV)/constraints.txt -e ".[$(1)]"
endef

# every tool: tests, docs, package checks, and all the extras
$(STAMP): pyproject.toml
	$(call install,dev)
	touch $@

# only what the demo imports (`make test` later adds the rest)
$(DEMO_STAMP): pyproject.toml
	$(call install,demo)
	touch $@

demo: $(DEMO_STAMP)
	$(PY) -m fastxtend_accum.demo

test: $(STAMP)
	$(VENV)/bin/nbdev-test --n-workers 2 --timing
	@$(MAKE) --no-print-directory check-docs check-package

export: $(STAMP)
	$(VENV)/bin/nbdev-export

clean-nbs: $(STAMP)
	$(VENV)/bin/nbdev-clean

# run the notebooks in $(NBS) (a folder, a notebook or a glob) and store their outputs for the docs site
docs-outputs: $(STAMP)
	$(PY) tools/store_outputs.py $(NBS)

# the docs site without Quarto, in _preview/site/ (Quarto's own build: nbdev-docs, in .github/workflows/deploy.yaml)
docs-preview: $(STAMP)
	$(PY) tools/docs_preview.py

serve-docs: $(STAMP)
	$(PY) tools/docs_preview.py --serve

# README.md from the home page, nbs/index.ipynb (nbdev-readme does it with Quarto)
readme: $(STAMP)
	$(PY) tools/readme.py

# every page renders and shows its API entries, examples, tables and figures in headless Chromium, and runs as pasted
check-docs: $(STAMP)
	$(PY) tools/check_docs.py

# only the pages run as pasted into a fresh python, all or PAGES="index.ipynb README.md"
check-pages: $(STAMP)
	$(PY) tools/check_pages_run.py $(if $(PAGES),--pages $(PAGES))

# sdist and wheel build, twine check, the wheel works in a venv without the dev tools, the extras resolve
check-package: $(STAMP)
	PY=$(PY) TORCH="$(TORCH)" tools/check_package.sh

# git: a pre-commit hook that runs nbdev-clean and nbdev-export, and nbdev's notebook merge and diff drivers
# (nbdev-install-hooks writes them to .gitconfig, which git includes; they call the venv's commands by path)
hooks: $(STAMP)
	$(VENV)/bin/nbdev-install-hooks
	git config --file .gitconfig merge.jupyternotebook.driver "$(abspath $(VENV))/bin/nbdev-merge %O %A %B %P"
	git config --file .gitconfig diff.jupyternotebook.command "$(abspath $(VENV))/bin/nbdev-diff-driver"
	printf '#!/bin/sh\n"%s" || true\n' "$(abspath $(VENV))/bin/nbdev-trust" > "$$(git rev-parse --git-path hooks)/post-merge"
	ln -sf "$(CURDIR)/tools/hooks/pre-commit" "$$(git rev-parse --git-path hooks)/pre-commit"
