#!/usr/bin/env python
"""Check the docs as a reader sees them.

    python tools/check_docs.py [--no-proc] [--no-run]          (make check-docs; part of make test)

1. Build the preview (tools/docs_preview.py): `nbdev-proc-nbs` must process every notebook, and each becomes a page.
2. From the package and the notebooks: each name in a module's `__all__` has an API entry (its `show_doc`
   heading and signature) on the page nbdev's index gives it, and each page with API entries shows at least
   one example whose output is stored in the notebook (`make docs-outputs` stores them). Names that no stored
   example mentions are listed as warnings.
3. Serve the pages on 127.0.0.1 and load each in headless Chromium: the loaded page must have its title, its
   API entries, the tables and figures of its notebook, every figure decoded, and links to pages that exist.
4. Keep a screenshot of every page (its top 1280x1800), and of where the first figure of the site ends, in
   _preview/screenshots/.
5. README.md is what tools/readme.py writes from nbs/index.ipynb (`make readme`).
6. Run every page as a reader pastes it (tools/check_pages_run.py): its visible code cells in order, in a fresh
   `python`; and README.md's ```python blocks. `--no-run` leaves this step out.

Without Chromium, step 3 and 4 are skipped with a message, except under CI (`CI` set), where they are required.
"""
import argparse, ast, contextlib, functools, html, http.server, importlib, json, os, re, shutil, subprocess, sys, tempfile, threading, time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
import docs_preview as dp
import check_pages_run, readme

ROOT, SHOTS = dp.ROOT, dp.ROOT/'_preview'/'screenshots'
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--hide-scrollbars']
problems, warnings = [], []

# %% What each page should show, from the package and the notebooks
def api_pages()->dict:
    "{page: [public names documented there]}, from each module's `__all__` and nbdev's index of symbols (`_modidx`)"
    syms = importlib.import_module('fastxtend_accum._modidx').d['syms']   # rebuilt by nbdev-proc-nbs
    res = {}
    for mod, entries in syms.items():
        for name in getattr(importlib.import_module(mod), '__all__', []):
            url = entries.get(f'{mod}.{name}', [None])[0]
            if url: res.setdefault(url.split('#')[0], []).append(name)
            else: problems.append(f'{mod}.{name}: public, but not a function or class, so it has no show_doc entry')
    return res

def _source(cell): return ''.join(cell['source'])
def _visible(cell): return not re.search(r'^#\|\s*(hide|exporti?|include:\s*false)\b', _source(cell), re.M)
def _is_show_doc(cell): return re.match(r'(#\|.*\n)*\s*show_doc\(', _source(cell))

def stored_examples(nb_path:Path)->list:
    "Sources of the visible code cells, other than show_doc's, whose outputs are stored in the notebook"
    cells = json.loads(nb_path.read_text())['cells']
    return [_source(c) for c in cells if c['cell_type'] == 'code' and c.get('outputs') and _visible(c) and not _is_show_doc(c)]

def expected_media(proc_nb:Path)->dict:
    "Figures and tables that the processed notebook's shown cells hold"
    cells = [c for c in map(dp.clean_cell, json.loads(proc_nb.read_text())['cells']) if c]
    outs = [o.get('data', {}) for c in cells for o in c.get('outputs', [])]
    md = '\n'.join(c['source'] for c in cells if c['cell_type'] == 'markdown')
    return {'figures': sum('image/png' in d or 'image/svg+xml' in d for d in outs) + len(re.findall(r'!\[[^\]]*\]\(', md)),
            'tables': sum('<table' in ''.join(d.get('text/html', '')) for d in outs) + len(re.findall(r'^\|?\s*:?-{3,}', md, re.M))}

def mixed_import_cells(nb_path:Path)->list:
    "Code cells, hidden ones too, that mix imports with other code: nbdev-proc-nbs runs them at every docs build"
    found = []
    for cell in json.loads(nb_path.read_text())['cells']:
        src = _source(cell)
        if cell['cell_type'] != 'code' or 'nbdev_export()' in src or re.search(r'^#\|\s*(export\w*|eval:\s*false)', src, re.M): continue
        try: tree = ast.parse('\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('%', '!'))))
        except SyntaxError: continue
        imp = (ast.Import, ast.ImportFrom)   # as nbdev decides: an import anywhere in the cell, and other statements
        if any(isinstance(n, imp) for n in ast.walk(tree)) and not all(isinstance(n, imp) for n in tree.body):
            found.append(cell.get('id'))
    return found

# %% What a page shows, read off the DOM that Chromium loaded
def text(fragment:str)->str: return html.unescape(re.sub(r'<[^>]+>', '', fragment))

def api_entries(dom:str)->set:
    "Names with a show_doc entry: a heading followed by a code block holding the name"
    found = re.findall(r'<h([234])[^>]*>((?:(?!</?h\d).)*)</h\1>\s*<div class="highlight"><pre>(.*?)</pre>', dom, re.S)
    return {text(h).strip() for _,h,pre in found if text(h).strip().split('.')[-1] in text(pre)}

def summary(dom:str)->dict:
    title = re.search(r'<title>(.*?)</title>', dom, re.S)
    return {'title': text(title[1]) if title else '', 'h1': text((re.search(r'<h1[^>]*>(.*?)</h1>', dom, re.S) or [''])[0]),
            'api': api_entries(dom), 'tables': dom.count('<table'),
            'figures': len(re.findall(r'<img\b', dom)), 'figures_loaded': dom.count('data-loaded="yes"'),
            'links': set(re.findall(r'href="([\w-]+\.html)(?:#[^"]*)?"', dom))}

# %% Chromium
def chromium(*args, timeout=60)->str:
    with tempfile.TemporaryDirectory() as profile:   # a fresh profile each time
        res = subprocess.run([CHROME, *CHROMIUM_FLAGS, f'--user-data-dir={profile}', *args],
                             capture_output=True, text=True, timeout=timeout)
    if res.returncode: raise RuntimeError(f'chromium {" ".join(args)} failed:\n{res.stderr[-2000:]}')
    return res.stdout

def load(url:str)->str: return chromium('--virtual-time-budget=10000', '--dump-dom', url)
def screenshot(url:str, png:Path, bottom:int=0):
    "The page's top 1280x1800, or with `bottom` the 1800 pixels above that height (where a figure ends)"
    height = max(1800, bottom + 40)
    chromium(f'--window-size=1280,{height}', f'--screenshot={png}', url)
    if height > 1800:
        from PIL import Image
        Image.open(png).crop((0, height-1800, 1280, height)).save(png)

@contextlib.contextmanager
def served(folder:Path):
    "An HTTP server for `folder` on a free port of 127.0.0.1, for as long as the `with` block runs"
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try: yield f'http://127.0.0.1:{server.server_address[1]}'
    finally: server.shutdown(); server.server_close()

# %% The checks
def check_page(name:str, title:str, dom:str, want_api:list, want:dict):
    got = summary(dom)
    if got['title'] != f'{title} – {dp.site_title()}' or got['h1'] != title: problems.append(f'{name}: title {got["title"]!r}, heading {got["h1"]!r}, expected {title!r}')
    if missing := [n for n in want_api if n not in got['api']]: problems.append(f'{name}: no API entry for {", ".join(missing)}')
    if got['figures'] < want['figures']: problems.append(f'{name}: {got["figures"]} figures shown, the notebook has {want["figures"]}')
    if got['figures_loaded'] < got['figures']: problems.append(f'{name}: {got["figures"] - got["figures_loaded"]} figures did not load')
    if got['tables'] < want['tables']: problems.append(f'{name}: {got["tables"]} tables shown, the notebook has {want["tables"]}')
    if broken := got['links'] - set(PAGES): problems.append(f'{name}: links to missing pages {sorted(broken)}')
    print(f'  {name:28} {got["title"][:40]:40} {len(got["api"]):3} API entries {got["tables"]:3} tables '
          f'{got["figures_loaded"]}/{got["figures"]} figures loaded')

def check_examples(entries:list, api:dict):
    "Pages with API entries show stored outputs; names no stored example mentions are warnings"
    for name, _, nb in entries:
        if name not in api: continue
        examples = stored_examples(ROOT/'nbs'/nb.name)
        if not examples: problems.append(f'{nb.name}: no example with a stored output (run `make docs-outputs`)'); continue
        if unused := [n for n in api[name] if not any(re.search(rf'\b{re.escape(n)}\b', e) for e in examples)]:
            problems.append(f'{nb.name}: no stored example uses {", ".join(unused)}')

if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--no-proc', action='store_true', help='use _proc/ as it is, without nbdev-proc-nbs')
    parser.add_argument('--no-run', action='store_true', help='do not run the pages as pasted (step 5)')
    args = parser.parse_args()
    start = time.time()
    if not args.no_proc and (failed := dp.proc_nbs()): problems.append(f'nbdev-proc-nbs failed on {", ".join(failed)}')
    PAGES = dp.render_site()
    print(f'built {len(PAGES)} pages in {time.time()-start:.0f}s')
    entries = [(dp.out_name(p, fm), fm.get('title', p.stem), p) for p,fm in dp.pages()]
    api = api_pages()
    if unknown := set(api) - set(PAGES): problems.append(f'API pages that were not built: {sorted(unknown)}')
    check_examples(entries, api)
    for nb in sorted((ROOT/'nbs').glob('[!_.]*.ipynb')):
        if cells := mixed_import_cells(nb):
            problems.append(f'{nb.name}: cells that mix imports with other code run at every docs build (nbdev-proc-nbs), '
                            f'without the cells before them; give their imports a cell of their own: ids {", ".join(cells)}')
    CHROME = shutil.which('chromium') or shutil.which('chromium-browser') or shutil.which('google-chrome')
    if CHROME:
        shutil.rmtree(SHOTS, ignore_errors=True); SHOTS.mkdir(parents=True)
        with served(dp.SITE) as base:
            start = time.time()
            print(f'Loading {len(entries)} pages from {base} in {CHROME}:')
            figures = {}   # page: where its first figure ends
            for name, title, nb in entries:
                check_page(name, title, dom := load(f'{base}/{name}'), api.get(name, []), expected_media(nb))
                if bottom := re.search(r'<img[^>]*data-bottom="(\d+)"', dom): figures[name] = int(bottom[1])
            print(f'  loaded in {time.time()-start:.0f}s')
            shots = [(name, name.replace('.html', '.png'), 0) for name,_,_ in entries]
            if figures: shots.append((name := next(iter(figures)), name.replace('.html', '-figure.png'), figures[name]))
            for name, png, bottom in shots: screenshot(f'{base}/{name}', SHOTS/png, bottom)
            print(f'  screenshots in {SHOTS.relative_to(ROOT)}/: {" ".join(png for _,png,_ in shots)}')
    elif os.environ.get('CI'): problems.append('Chromium is not installed (apt-get install chromium): CI requires the browser checks')
    else: print('SKIPPED the browser checks: Chromium is not installed (apt-get install chromium)')
    if (ROOT/'README.md').read_text() != readme.readme():
        problems.append('README.md is not in step with nbs/index.ipynb: run `make readme` (tools/readme.py)')
    if not args.no_run and not check_pages_run.main(check_pages_run.all_pages()):
        problems.append('pages that fail when pasted into a fresh python: see "FAILED" above (tools/check_pages_run.py)')
    for w in warnings: print('WARNING', w)
    for p in problems: print('PROBLEM', p)
    print(f'docs check: {len(entries)} pages, {sum(map(len, api.values()))} API entries, {len(problems)} problems, {len(warnings)} warnings')
    sys.exit(1 if problems else 0)
