#!/bin/sh
# The Python packages that benchmarks/gpu_check.py needs on the GPU machine and that its image lacks (it has torch,
# numpy, pandas, matplotlib, scikit-learn, hypothesis, pyyaml, rich, pygments... but neither fastai nor nbdev), as
# wheels in .whl/ (ignored by git through .git/info/exclude) to carry there. It cannot reach a registry; this
# machine can. Wheels for CPython 3.12 (the device's python3), pinned to the versions of this project's .venv;
# about 10 MiB. Checked here: with only these and the image's packages, the script and nbdev-test import and run.
#
#   sh benchmarks/gpu_check_wheels.sh          # from the repository root, before the device call
#
# Then, on the device (the `run` tool, carry [".whl"], timeout_s 600):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 \
#     && python3 benchmarks/gpu_check.py --device cuda --out $OUT --budget-s 480 --commit <git describe here>
set -e
DEST=${DEST:-.whl}
PY=${PY:-python3}
if [ "$DEST" = .whl ]; then grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude; fi
# fastai and what it imports (fastprogress imports fasthtml); nbdev-test and what it imports (execnb runs the notebooks in IPython)
PKGS="fastai==2.8.12 fastcore==2.2.41 fastprogress==1.1.6 fastdownload==0.0.8 fasttransform==0.0.5 plum-dispatch==2.9.0
beartype==0.23.1 python-fasthtml==0.14.14 starlette==1.10.0 uvicorn==0.54.0 oauthlib==4.0.1 itsdangerous==2.2.0
python-multipart==0.0.34 beautifulsoup4==4.15.0 soupsieve==4.1.3
nbdev==3.3.26 execnb==0.3.4 ghapi==2.1.4 astunparse==1.6.3 watchdog==7.1.0 asttokens==3.0.2
ipython==9.18.1 ipython-pygments-lexers==1.1.1 traitlets==5.16.1 jedi==0.20.1 parso==0.8.7 matplotlib-inline==0.2.2
prompt-toolkit==3.0.53 wcwidth==0.9.4 pexpect==4.9.0 ptyprocess==0.7.0 stack-data==0.6.3 executing==2.3.0 pure-eval==0.2.4"
# shellcheck disable=SC2086
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$DEST" $PKGS
du -sh "$DEST"
