#!/usr/bin/env python
"""Run the docs notebooks and store their outputs, so that the site shows every example's result.

    python tools/store_outputs.py [NOTEBOOK_OR_GLOB ...]      (make docs-outputs [NBS=nbs/00_accumulation.ipynb])

Quarto shows the outputs stored in a notebook; it does not run the notebook (nbdev-proc-nbs only runs the
cells that `show_doc` needs). So after changing an example, store its output:

1. `nbdev-test --save` runs each notebook, skipping cells flagged `notest`, `slow` or `cuda` as the tests do,
   and writes the outputs back into notebooks that pass (a failing notebook is left as it was);
2. outputs that the site never shows are dropped, to keep diffs small: those of `#| hide` and `#| export` cells;
3. this machine's paths in warnings become relative (`.../site-packages/fastai/...`);
4. printed text keeps what a terminal shows: each line after its last carriage return (fastai's console progress bar,
   which a notebook run by nbdev-test prints, leaves only the table of epochs);
5. `nbdev-clean` strips execution counts and metadata, as the git hook and CI expect;
6. when the home page was run, README.md is written from it again (tools/readme.py).
"""
import glob, json, os, re, subprocess, sys
from pathlib import Path

ROOT, BIN = Path(__file__).resolve().parent.parent, Path(sys.executable).parent
HIDDEN = re.compile(r'^#\|\s*(hide|exporti?)\b', re.M)
PATHS = [(str(Path(sys.prefix).resolve())+'/lib/', '.../'), (str(ROOT)+'/', '')]

def as_terminal(text:str)->str:
    "Each line as a terminal shows it: what follows its last carriage return"
    return '\n'.join(line.rsplit('\r', 1)[-1] for line in text.split('\n'))

def tidy(nb_path:Path)->bool:
    "Drop the outputs the site never shows, progress bars and this machine's paths; True if the notebook changed"
    text = nb_path.read_text()
    nb = json.loads(text)
    for cell in nb['cells']:
        if cell['cell_type'] != 'code': continue
        if HIDDEN.search(''.join(cell['source'])): cell['outputs'] = []
        for o in cell['outputs']:
            if o.get('output_type') == 'stream' and '\r' in ''.join(o['text']):
                o['text'] = as_terminal(''.join(o['text'])).splitlines(keepends=True)
    new = json.dumps(nb, indent=1, ensure_ascii=False) + '\n'
    for path, short in PATHS: new = new.replace(path, short)
    if new != text: nb_path.write_text(new)
    return new != text

def notebooks(path:str)->list:
    "The notebooks `nbdev-test path` runs: those of a folder (not `_*` or `.*`), or those a glob matches"
    p = ROOT/path
    return sorted(p.glob('[!_.]*.ipynb')) if p.is_dir() else [Path(f) for f in sorted(glob.glob(str(p)))]

def main(paths:list):
    env = {**os.environ, 'MPLBACKEND': 'Agg', 'WANDB_MODE': 'offline', 'WANDB_SILENT': 'true'}
    failed = False
    for path in paths or ['nbs']:
        failed |= subprocess.run([str(BIN/'nbdev-test'), path, '--save', '--n-workers', '2', '--timing'], cwd=ROOT, env=env).returncode != 0
    changed = [p.name for path in paths or ['nbs'] for p in notebooks(path) if tidy(p)]
    subprocess.run([str(BIN/'nbdev-clean')], cwd=ROOT, check=True)
    print(f'tidied {", ".join(changed) or "nothing"}; notebooks cleaned with nbdev-clean')
    if any(p.name == 'index.ipynb' for path in paths or ['nbs'] for p in notebooks(path)):
        sys.path.insert(0, str(ROOT/'tools')); import readme
        (ROOT/'README.md').write_text(readme.readme())
        print('README.md written from nbs/index.ipynb (tools/readme.py)')
    if failed: sys.exit('some notebooks failed, and kept their old outputs: see above')

if __name__ == '__main__': main(sys.argv[1:])
