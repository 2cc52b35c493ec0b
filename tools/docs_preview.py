#!/usr/bin/env python
"""Preview the docs site without Quarto.

The real site is built by Quarto (`nbdev-docs`, run by .github/workflows/deploy.yaml). Where Quarto is not
installed, this shows the same pages closely enough to review them:

1. `nbdev-proc-nbs` turns each notebook of nbs/ into the notebook Quarto renders (in _proc/): hidden cells
   gone, a `show_doc` entry for each exported symbol, directives such as `#| echo: false` to apply;
2. each processed notebook becomes one HTML page named as on the site (`00_accumulation.ipynb` ->
   `accumulation.html`, from its `output-file`), with the list of pages on the left;
3. `--serve` serves the folder on http://127.0.0.1:PORT/ (loopback only).

    python tools/docs_preview.py [--serve] [--port 8000] [--no-proc]     (make docs-preview / make serve-docs)

What Quarto does and this does not: math stays as TeX source, and callouts are plain boxes.
"""
import argparse, functools, html, http.server, json, os, re, shutil, subprocess, sys
from pathlib import Path

import nbformat, yaml
from nbconvert import HTMLExporter
from nbdev.config import get_config
from pygments.formatters import HtmlFormatter

ROOT = Path(__file__).resolve().parent.parent
PROC, SITE = ROOT/'_proc', ROOT/'_preview'/'site'

# %% Step 1: the processed notebooks
def quarto_stand_in()->dict:
    "Environment for nbdev-proc-nbs: it installs Quarto (with sudo) when none is on PATH, though it does not use it"
    if shutil.which('quarto'): return dict(os.environ)
    stub = ROOT/'_preview'/'bin'/'quarto'
    stub.parent.mkdir(parents=True, exist_ok=True)
    stub.write_text('#!/bin/sh\necho "not Quarto: a stand-in from tools/docs_preview.py" >&2; exit 1\n'); stub.chmod(0o755)
    return {**os.environ, 'PATH': f'{stub.parent}{os.pathsep}{os.environ["PATH"]}'}

def stale(nbs:Path)->list:
    "Notebooks of `nbs` without a processed copy in _proc/ at least as new as themselves"
    return [p.name for p in sorted(nbs.glob('[!_.]*.ipynb'))
            if not (PROC/p.name).exists() or (PROC/p.name).stat().st_mtime < p.stat().st_mtime]

def proc_nbs(nbs=ROOT/'nbs')->list:
    "Run `nbdev-proc-nbs`; return the notebooks it could not process, each tried alone to tell which fail"
    # the file pattern keeps nbdev's generated sidebar.yml to pages only (by default it lists every file)
    cmd = [str(Path(sys.executable).parent/'nbdev-proc-nbs'), '--file-re', r'\.(?:ipynb|qmd)$']
    run = lambda *args: subprocess.run(cmd + list(args), cwd=ROOT, env=quarto_stand_in(), capture_output=True, text=True)
    if run().returncode == 0 and not stale(nbs): return []
    failed = []
    for name in stale(nbs):   # one failing notebook stops the others' workers
        res = run('--file-glob', name)
        if res.returncode or name in stale(nbs):
            failed.append(name)
            print(f'nbdev-proc-nbs failed on {name}:', *res.stderr.strip().splitlines()[-12:], sep='\n  ')
    return failed

def frontmatter(nb:dict)->dict:
    "The YAML front matter nbdev puts in the first raw cell: title, description, output-file"
    first = nb['cells'][0] if nb['cells'] else {}
    source = ''.join(first.get('source', '')) if first.get('cell_type') == 'raw' else ''
    if not source.startswith('---'): return {}
    return yaml.safe_load(source.strip().strip('-')) or {}

def pages(proc=PROC)->list:
    "(processed notebook, front matter) for each page, the home page first"
    nbs = sorted(proc.glob('*.ipynb'), key=lambda p: (p.stem != 'index', p.name))
    return [(p, frontmatter(json.loads(p.read_text()))) for p in nbs]

def out_name(nb:Path, fm:dict)->str: return fm.get('output-file') or re.sub(r'^\d+[a-z]?_', '', nb.stem)+'.html'

# %% Step 2: one page per notebook
# Quarto reads `#| echo: false` (hide the code), `#| output: false` and `#| include: false`; nbdev's show_doc
# cells carry `echo: false`. nbconvert's basic template renders the rest: markdown, code, and outputs
# (text, HTML tables, markdown, PNG figures inlined as data URLs).
_directive = re.compile(r'^#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')

def directives(source:str)->tuple:
    "`({name: value}, source without its leading '#|' lines)`"
    lines, found = source.splitlines(), {}
    while lines and (m := _directive.match(lines[0])): found[m[1]] = m[2].lower(); lines.pop(0)
    return found, '\n'.join(lines)

def quarto_md(md:str)->str:
    "Quarto markdown that plain markdown lacks: `[text](url){attrs}` links and `:::` callout fences"
    md = re.sub(r'\[([^\]]+)\]\(([^)\s]+)\)\{([^}]*)\}', r'<a href="\2" \3>\1</a>', md)
    md = re.sub(r'^:::+\s*\{\.callout-(\w+)[^}]*\}\s*$', r'<div class="callout callout-\1">\n', md, flags=re.M)
    return re.sub(r'^:::+\s*$', '\n</div>', md, flags=re.M)

def clean_cell(cell:dict):
    "The cell as the site shows it, or None when the site leaves it out"
    found, source = directives(''.join(cell['source']))
    if found.get('include') == 'false': return None
    new = {'cell_type': cell['cell_type'], 'id': cell.get('id', 'x'), 'metadata': {}, 'source': source}
    if cell['cell_type'] == 'markdown': new['source'] = quarto_md(source)
    if cell['cell_type'] != 'code': return new
    outputs = [] if found.get('output') == 'false' else cell.get('outputs', [])
    for o in outputs:
        if 'text/markdown' in o.get('data', {}): o['data']['text/markdown'] = quarto_md(''.join(o['data']['text/markdown']))
    tags = ['remove_input'] if found.get('echo') == 'false' or not source.strip() else []
    return {**new, 'metadata': {'tags': tags}, 'outputs': outputs, 'execution_count': None}

def heading_id(text:str)->str:
    "Pandoc's (so Quarto's and nbdev's links') anchor for a heading: lower case, punctuation dropped, '-' for spaces"
    return re.sub(r'\s+', '-', re.sub(r'[^\w\s.-]', '', html.unescape(re.sub(r'<[^>]+>', '', text))).strip().lower())

def fix_html(body:str, site_url:str)->str:
    "Quarto's anchors on headings (a repeated one gets '-1', '-2'), and links to the site made relative"
    seen = {}
    def anchor(m):
        base = heading_id(m[2]); seen[base] = n = seen.get(base, -1)+1
        return f'<{m[1]} id="{base}{f"-{n}" if n else ""}">{m[2]}</{m[1]}>'
    body = re.sub(r'<(h[1-6]) id="[^"]*">(.*?)<a class="anchor-link"[^>]*>.*?</a></\1>', anchor, body, flags=re.S)
    return body.replace(site_url.rstrip('/')+'/', '')

def notebook_body(nb:dict, site_url:str)->str:
    "The HTML of a processed notebook's cells, front matter left out"
    cells = [c for c in map(clean_cell, nb['cells'][1:] if frontmatter(nb) else nb['cells']) if c]
    node = nbformat.from_dict({**nb, 'metadata': {}, 'cells': cells})
    exporter = HTMLExporter(template_name='basic', exclude_input_prompt=True, exclude_output_prompt=True,
                            config={'TagRemovePreprocessor': {'enabled': True, 'remove_input_tags': ['remove_input']}})
    return fix_html(exporter.from_notebook_node(node)[0], site_url)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} – {site}</title>
<style>{css}</style></head>
<body><nav><a class="site" href="index.html">{site}</a>{nav}</nav>
<main><header><h1 class="title">{title}</h1><p class="description">{description}</p></header>
{body}</main>
<script>  /* marks images that did not load, and where each is, for a reader and for tools/check_docs.py */
addEventListener('load', () => document.querySelectorAll('img').forEach(i => {{
  i.dataset.loaded = i.complete && i.naturalWidth > 0 ? 'yes' : 'no';
  i.dataset.bottom = Math.round(i.getBoundingClientRect().bottom + scrollY); }}));
</script></body></html>
"""
CSS = """body{margin:0;display:flex;font:16px/1.5 system-ui,sans-serif;color:#222}
nav{flex:0 0 14rem;padding:1rem;background:#f5f5f7;min-height:100vh;box-sizing:border-box}
nav a{display:block;padding:.2rem 0;color:#2c5d9e;text-decoration:none}nav a.site{font-weight:bold;font-size:1.2rem}
nav a.current{font-weight:bold;color:#222}
main{flex:1;max-width:68rem;padding:1rem 2rem;overflow-x:auto}header .description{font-style:italic;opacity:.7;font-size:1.2rem}
pre{background:#f8f8f8;padding:.5rem;overflow-x:auto}.output_text pre{background:none;border-left:2px solid lightsalmon}
table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #ddd;padding:.2rem .5rem}
hr{border:0;border-top:1px solid #ddd;margin:2rem 0 1rem}.callout{border-left:4px solid #2c5d9e;padding:0 1rem;background:#f3f6fb}
img{max-width:100%}img[data-loaded=no]{outline:3px solid red}
"""

def inline_md(text:str)->str: return re.sub(r'`([^`]+)`', r'<code>\1</code>', html.escape(text))

def site_title()->str: return get_config(ROOT).title
def site_url()->str: return get_config(ROOT).doc_host + get_config(ROOT).doc_baseurl

def render_site(out=SITE, proc=PROC)->list:
    "Write one HTML page per processed notebook into `out`; return the page names"
    site = site_title()
    entries = [(out_name(p, fm), fm.get('title', p.stem), fm.get('description', ''), p) for p,fm in pages(proc)]
    css = CSS + HtmlFormatter().get_style_defs('.highlight')
    shutil.rmtree(out, ignore_errors=True); out.mkdir(parents=True)
    for name, title, description, nb in entries:
        nav = ''.join(f'<a href="{n}"{" class=current" if n == name else ""}>{html.escape(t)}</a>' for n,t,_,_ in entries)
        body = notebook_body(nbformat.reads(nb.read_text(), as_version=4), site_url())  # joins multi-line fields
        (out/name).write_text(PAGE.format(title=html.escape(title), site=html.escape(site), css=css, nav=nav,
                                          description=inline_md(description), body=body))
    return [e[0] for e in entries]

# %% Step 3: serve it
def serve(folder=SITE, port=8000):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    with http.server.ThreadingHTTPServer(('127.0.0.1', port), handler) as server:
        print(f'Serving {folder} on http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)')
        try: server.serve_forever()
        except KeyboardInterrupt: pass

if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--no-proc', action='store_true', help='use _proc/ as it is, without nbdev-proc-nbs')
    parser.add_argument('--serve', action='store_true', help='then serve the pages on 127.0.0.1')
    parser.add_argument('--port', type=int, default=8000)
    args = parser.parse_args()
    failed = [] if args.no_proc else proc_nbs()
    names = render_site()
    print(f'{len(names)} pages in {SITE.relative_to(ROOT)}/: {" ".join(names)}')
    if failed: print(f'NOT UPDATED (nbdev-proc-nbs failed on them): {", ".join(failed)}')
    if args.serve: serve(SITE, args.port)
    sys.exit(1 if failed else 0)
