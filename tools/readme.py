#!/usr/bin/env python
"""Write README.md from the home page, nbs/index.ipynb, without Quarto.

    python tools/readme.py [--check]          (make readme; make check-docs runs --check)

nbdev's `nbdev-readme` renders the README with Quarto. This writes the same content where Quarto is not installed:
the markdown cells with links to the site made absolute, the code cells a reader sees (as tools/check_pages_run.py
picks them) as python blocks, their printed and plain-text outputs as text blocks, and a link to the home page in
place of a figure. `--check` only says whether README.md is that, and fails if not.
"""
import argparse, json, re, sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_pages_run import ROOT, directives, shown
from nbdev.config import get_config

def site_url()->str: return get_config(ROOT).doc_host + get_config(ROOT).doc_baseurl.rstrip('/') + '/'

def output_text(o:dict, site:str)->str:
    "An output as README text: a text block, a link for a figure, or nothing"
    data = o.get('data', {})
    if 'image/png' in data or 'image/svg+xml' in data: return f'*The figure is on the [home page]({site}).*'
    text = ''.join(o.get('text', '') if o.get('output_type') == 'stream' else data.get('text/plain', ''))
    return f'```\n{text.rstrip()}\n```' if text.strip() else ''

def readme(nb_path:Path=ROOT/'nbs'/'index.ipynb')->str:
    site, parts = site_url(), []
    for cell in json.loads(nb_path.read_text())['cells']:
        source = ''.join(cell['source'])
        if cell['cell_type'] == 'markdown':
            parts.append(re.sub(r'\]\(([\w-]+\.html)', rf']({site}\1', source)); continue
        found, code = directives(source)
        if cell['cell_type'] != 'code' or not shown(found, code, cuda=True): continue
        parts.append(f'```python\n{code.strip()}\n```')
        parts += [t for o in cell.get('outputs', []) if (t := output_text(o, site))]
    return '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--check', action='store_true', help='fail if README.md is not what nbs/index.ipynb gives')
    args = parser.parse_args()
    new, path = readme(), ROOT/'README.md'
    if args.check:
        if path.read_text() != new: sys.exit('README.md is not in step with nbs/index.ipynb: run `make readme`')
        print('README.md is in step with nbs/index.ipynb')
    else:
        path.write_text(new)
        print(f'wrote {path.relative_to(ROOT)} from nbs/index.ipynb')
