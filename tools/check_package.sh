#!/usr/bin/env bash
# Install the package as a user would, and check what a package index shows of it.
#
#   tools/check_package.sh        (or: make check-package)
#
# 1. `python -m build` makes the sdist, then the wheel *from the sdist* (so the sdist is complete);
#    `twine check --strict` reads their metadata and README as PyPI would.
# 2. A separate venv holding only torch and fastai (cached in $PKG_VENV, rebuilt when the dependencies in
#    pyproject.toml change) installs the wheel. There, outside the source tree, `from fastxtend_accum import *`
#    and every module import without nbdev, wandb, tensorboard or accelerate installed, and import neither
#    torchvision nor fastai.vision; the console script answers --help. Exception: `fastxtend_accum.distributed`
#    needs the `[distributed]` extra, as fastai.distributed (2.8.12) uses accelerate when it is imported.
# 3. The extras resolve: `pip install --dry-run` of `[wandb,tensorboard,distributed,demo,dev]` would install them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}            # the project's dev venv: has build and twine (`make setup`)
TORCH=${TORCH:-torch==2.13.0}         # the torch that the package venv starts from, as in the Makefile
PKG_VENV=${PKG_VENV:-.cache/pkg-venv} # gitignored; delete it to start from nothing
case $PKG_VENV in /*) ;; *) PKG_VENV=$PWD/$PKG_VENV ;; esac
DIST=.cache/dist
start=$SECONDS
step() { printf '== %-62s %4ss\n' "$1" $((SECONDS-start)); }
quiet() { local log; log=$(mktemp); "$@" >"$log" 2>&1 || { cat "$log"; rm -f "$log"; return 1; }; rm -f "$log"; }

step "build sdist, and the wheel from it"
rm -rf "$DIST"; mkdir -p "$DIST"
quiet "$PY" -m build --outdir "$DIST" .
SDIST=$(ls "$DIST"/*.tar.gz); WHEEL=$(ls "$DIST"/*.whl)
echo "   $(basename "$SDIST")  $(basename "$WHEEL")"

step "twine check --strict (metadata and README as the index renders them)"
"$PY" -m twine --no-color check --strict "$DIST"/*

step "wheel holds the package, its metadata and license; the sdist its sources"
"$PY" - "$WHEEL" "$SDIST" <<'EOF'
import sys, tarfile, zipfile
wheel = zipfile.ZipFile(sys.argv[1]).namelist()
tops = {n.split('/')[0] for n in wheel}
assert {t.split('-')[0] for t in tops} == {'fastxtend_accum'}, f'unexpected files in the wheel: {sorted(tops)}'
assert any(n.endswith('.dist-info/licenses/LICENSE') for n in wheel), 'no LICENSE in the wheel'
sdist = {n.split('/', 1)[-1] for n in tarfile.open(sys.argv[2]).getnames()}
missing = {'LICENSE', 'README.md', 'pyproject.toml', 'fastxtend_accum/__init__.py'} - sdist
assert not missing, f'not in the sdist: {missing}'
print('  ', ' '.join(sorted(tops)), f'({len(wheel)} files)')
EOF

step "package venv with torch and fastai only ($PKG_VENV)"
wanted="$TORCH $("$PY" -c "import tomllib; print(*tomllib.load(open('pyproject.toml','rb'))['project']['dependencies'])")"
if [ "$(cat "$PKG_VENV/.wanted" 2>/dev/null)" != "$wanted" ]; then
    echo "   (re)building it for: $wanted"
    rm -rf "$PKG_VENV"
    python3 -m venv "$PKG_VENV"
    quiet "$PKG_VENV/bin/pip" install --no-compile "$TORCH"
    "$PKG_VENV/bin/python" -W ignore -c "import torch; print('torch==' + torch.__version__)" > "$PKG_VENV/constraints.txt"
    echo "$wanted" > "$PKG_VENV/.wanted"
fi
PIP=("$PKG_VENV/bin/pip" install -q --no-compile -c "$PKG_VENV/constraints.txt")

step "install the wheel into it, with its dependencies"
quiet "${PIP[@]}" --force-reinstall --no-deps "$WHEEL"
quiet "${PIP[@]}" "$WHEEL"
quiet "$PKG_VENV/bin/pip" check

step "import it there, without the dev tools"
(cd "$DIST" && "$PKG_VENV/bin/python" -I - <<'EOF'
import importlib, importlib.util, pkgutil, sys
optional = ('nbdev', 'wandb', 'tensorboard', 'accelerate')
present = [m for m in optional if importlib.util.find_spec(m)]
assert not present, f'the package venv has {present}: delete it and run again, or a dependency pulls them in'
names = {}
exec('from fastxtend_accum import *', names)
import fastxtend_accum
assert 'site-packages' in fastxtend_accum.__file__, f'imported the source tree, not the wheel: {fastxtend_accum.__file__}'
modules = [m.name for m in pkgutil.iter_modules(fastxtend_accum.__path__, 'fastxtend_accum.')]
needs_extra = {'fastxtend_accum.distributed': 'distributed'}   # module: the extra it needs
for m in modules:
    if m not in needs_extra: importlib.import_module(m)
loaded = [m for m in optional + ('torchvision', 'fastai.vision') if m in sys.modules]
assert not loaded, f'importing fastxtend_accum loaded {loaded}'
print(f'   fastxtend_accum {fastxtend_accum.__version__}: `import *` gives {len(names)-1} names;',
      f'{", ".join(m.split(".")[-1] for m in modules if m not in needs_extra)} import;',
      f'not tried without their extra: {", ".join(m for m in modules if m in needs_extra) or "none"}')
EOF
)
quiet "$PKG_VENV/bin/fastxtend-accum-demo" --help

step "extras resolve: [wandb,tensorboard,distributed,demo,dev]"
quiet "${PIP[@]}" --dry-run --report "$DIST/extras.json" "$WHEEL[wandb,tensorboard,distributed,demo,dev]"
"$PY" - "$DIST/extras.json" <<'EOF'
import json, sys
names = {i['metadata']['name'].lower() for i in json.load(open(sys.argv[1]))['install']}
missing = {'wandb', 'tensorboard', 'nbdev', 'accelerate', 'hypothesis'} - names
assert not missing, f'the extras would not install {missing}'
print(f'   would install {len(names)} packages, among them wandb, tensorboard, nbdev, accelerate, hypothesis')
EOF
step "package checks passed"
