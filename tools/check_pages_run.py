#!/usr/bin/env python
"""Run every docs page as a reader pastes it.

    python tools/check_pages_run.py [--pages index.ipynb 01_reference.ipynb README.md] [--timeout 600] [--jobs 2]
                                                                        (part of make check-docs, so of make test)

For each notebook of nbs/ and for README.md, the code a reader sees, in order, is written to one script,
_preview/pages_run/PAGE.py, and run in a fresh `python` (this one), in nbs/, with MPLBACKEND=Agg,
WANDB_MODE=offline, this checkout first on PYTHONPATH, and OMP_NUM_THREADS = cores / pages at a time (unless set).
Any error fails the page, and the check.

- A notebook's visible code cells: all but those flagged `#| hide`, `#| export`, `#| exporti`, `#| default_exp`,
  `#| include: false`, `#| eval: false` or `#| echo: false` (the page shows their output, not their code), and
  nbdev's `show_doc(...)` cells. `#| exports` cells are kept: the page shows their code. Cells flagged `#| slow`
  run too (a reader runs them); cells flagged `#| cuda` run only where torch sees a GPU. The `#|` lines are left out.
- README.md: its ```python blocks.
- IPython's `%magic` and `!shell` lines are not Python: a page that has one FAILS (a reader's `python` cannot run it).

A failing page is reported with the cell that raised (its index in the notebook, its id, its first line) and the
end of the error. Re-run one page by hand with `cd nbs && python ../_preview/pages_run/PAGE.py`.
"""
import argparse, json, os, re, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs_preview import directives   # `({name: value}, code)`: a cell's leading `#|` lines, and the code after them

ROOT = Path(__file__).resolve().parent.parent
NBS, OUT = ROOT/'nbs', ROOT/'_preview'/'pages_run'
SKIP = {'hide', 'export', 'exporti', 'default_exp'}

def shown(found:dict, code:str, cuda:bool)->bool:
    "Whether a reader sees this code cell's source on the page, and can run it here"
    if SKIP & set(found) or 'cuda' in found and not cuda: return False
    if any(found.get(k) == 'false' for k in ('include', 'eval', 'echo')): return False
    return bool(code.strip()) and not re.match(r'\s*show_doc\(', code)

def notebook_cells(path:Path, cuda:bool)->list:
    "`(label, code)` for each code cell a reader sees, in order"
    cells = json.loads(path.read_text())['cells']
    res = []
    for i, cell in enumerate(cells):
        if cell['cell_type'] != 'code': continue
        found, code = directives(''.join(cell['source']))
        if shown(found, code, cuda): res.append((f'cell {i} (id {cell.get("id", "?")})', code))
    return res

def readme_cells(path:Path)->list:
    "`(label, code)` for each ```python block of a markdown file"
    text = path.read_text()
    return [(f'block at line {text[:m.start()].count(chr(10))+1}', m[1])
            for m in re.finditer(r'^```python[^\n]*\n(.*?)^```', text, re.M | re.S)]

def magics(cells:list)->list:
    "Lines that IPython reads as magics or shell commands, which `python` cannot run"
    return [f'{label}: {line.strip()}' for label, code in cells for line in code.splitlines() if re.match(r'\s*[%!]', line)]

def script(cells:list)->tuple:
    "The script, and for each of its lines the cell it comes from"
    lines, owner = [], []
    for label, code in cells:
        body = [f'# %% {label}', *code.splitlines(), '']
        lines += body; owner += [label]*len(body)
    return '\n'.join(lines) + '\n', owner

def failing_cell(stderr:str, script_path:Path, owner:list)->str:
    "The cell of the innermost traceback line that points into the script"
    lines = [int(n) for n in re.findall(rf'File "{re.escape(str(script_path))}", line (\d+)', stderr)]
    return owner[lines[-1]-1] if lines and lines[-1] <= len(owner) else '?'

def run_page(name:str, cells:list, timeout:int, env:dict)->dict:
    "Write the page's script and run it in a fresh process; what happened"
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT/(Path(name).stem + '.py')
    text, owner = script(cells)
    path.write_text(text)
    if found := magics(cells):
        return dict(name=name, ok=False, seconds=0., cells=len(cells), where=found[0].split(':')[0],
                    error=f'IPython magic or shell line, not Python: {found[0]}' + (f' (and {len(found)-1} more)' if len(found) > 1 else ''))
    start = time.time()
    try: res = subprocess.run([sys.executable, str(path)], cwd=NBS, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        err = (e.stderr or b'').decode() if isinstance(e.stderr, bytes) else (e.stderr or '')
        return dict(name=name, ok=False, seconds=time.time()-start, cells=len(cells), where=failing_cell(err, path, owner) if err else '?',
                    error=f'did not finish in {timeout}s')
    tail = '\n'.join(res.stderr.strip().splitlines()[-12:])
    return dict(name=name, ok=res.returncode == 0, seconds=time.time()-start, cells=len(cells),
                where=failing_cell(res.stderr, path, owner), error=tail if res.returncode else '')

def cuda_available(env:dict)->bool:
    cmd = [sys.executable, '-c', 'import torch; print(torch.cuda.is_available())']
    return subprocess.run(cmd, env=env, capture_output=True, text=True).stdout.strip() == 'True'

def all_pages()->list: return [p.name for p in sorted(NBS.glob('[!_.]*.ipynb'))] + ['README.md']

def main(pages:list, timeout:int=600, jobs:int=2)->bool:
    "Run the pages, 2 at a time; print each one's result; True if all ran"
    env = {**os.environ, 'MPLBACKEND': 'Agg', 'WANDB_MODE': 'offline', 'WANDB_SILENT': 'true',
           'PYTHONPATH': os.pathsep.join([str(ROOT), *filter(None, [os.environ.get('PYTHONPATH')])]),
           # the pages that run at once share the cores: torch's threads would otherwise outnumber them
           'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', str(max(1, (os.cpu_count() or 1)//jobs)))}
    cuda = cuda_available(env)
    todo = [(p, readme_cells(ROOT/p) if p.endswith('.md') else notebook_cells(NBS/p, cuda)) for p in pages]
    print(f'Running {len(todo)} pages as pasted, {jobs} at a time (timeout {timeout}s each; GPU cells {"run" if cuda else "skipped: no GPU"}):')
    start, results = time.time(), []
    with ThreadPoolExecutor(jobs) as pool:
        for r in pool.map(lambda t: run_page(*t, timeout, env), todo):
            results.append(r)
            print(f'  {"ok  " if r["ok"] else "FAIL"} {r["name"]:30} {r["seconds"]:6.1f}s  {r["cells"]:3} cells', flush=True)
    failed = [r for r in results if not r['ok']]
    for r in failed:
        print(f'\nFAILED {r["name"]}, at {r["where"]} (script: {(OUT/(Path(r["name"]).stem+".py")).relative_to(ROOT)}):')
        print('    ' + r['error'].replace('\n', '\n    '))
    print(f'\npages as pasted: {len(results)-len(failed)}/{len(results)} ran, in {time.time()-start:.0f}s')
    return not failed

if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--pages', nargs='+', metavar='PAGE', help='notebooks of nbs/ or README.md (default: all)')
    parser.add_argument('--timeout', type=int, default=600, help='seconds each page may run')
    parser.add_argument('--jobs', type=int, default=2, help='pages run at a time')
    args = parser.parse_args()
    pages = [Path(p).name for p in args.pages] if args.pages else all_pages()
    if missing := [p for p in pages if not (ROOT/p if p.endswith('.md') else NBS/p).exists()]: sys.exit(f'no such page: {", ".join(missing)}')
    sys.exit(0 if main(pages, args.timeout, args.jobs) else 1)
