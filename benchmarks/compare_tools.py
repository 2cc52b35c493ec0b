"""fastai's, fastxtend 0.1.7's and fastxtend_accum's `GradientAccumulation`, measured on the same configurations.

For each tool the driver runs this file again as a worker (`--worker TOOL`) in that tool's Python: fastxtend in
its own virtual environment (so that the project's stays as its users install it), the other two in the project's. Each
worker trains tiny float64 models with the tool and, with the same data order, seed and optimizer, as plain large
batches in fastai's `Learner`, and prints nothing but writes JSON; the driver merges the three and writes
`compare_tools.md` (the table on the home page, the command, the date, the versions) and `compare_tools.json`.
The fastai worker never imports fastxtend_accum, whose first callback wraps `Learner._do_fit`.

    python benchmarks/compare_tools.py                    # about 30 seconds on a quiet 2-core machine
    python benchmarks/compare_tools.py --setup-fastxtend  # first create fastxtend's environment (pip, PyPI)
"""
from __future__ import annotations
import argparse, json, math, os, random, subprocess, sys, tempfile, time, warnings
from pathlib import Path

import torch
from fastai.basics import *
from fastai.callback.schedule import *   # fit_one_cycle, lr_find: not in fastai.basics

from common import command, machine

TOOLS = ('fastai', 'fastxtend', 'fastxtend_accum')
FASTXTEND_PYTHON = Path.home()/'.cache/fastxtend_accum/fastxtend-venv/bin/python'
EXACT = 1e-10   # largest weight difference, at any step, that counts as the same training
# The plain DataLoader's `drop_last` that each tool is compared with, from its policy for a short window at an
# epoch's end: fastai has none (its count runs on across epochs), so the DataLoader's default; fastxtend 0.1.7
# drops it (`drop_last=True`, its default); fastxtend_accum steps it (`remainder='step'`, passed explicitly).
REFERENCE_DROP_LAST = {'fastai': False, 'fastxtend': True, 'fastxtend_accum': False}

# ---------------------------------------------------------------------------------------------- worker: set-up
def tool_callback(tool:str, accum_bs:int, **kwargs)->Callback:
    "The tool's accumulation callback with its defaults, except `kwargs`; fastxtend_accum with `remainder='step'`"
    if tool=='fastai':
        from fastai.callback.training import GradientAccumulation
        return GradientAccumulation(accum_bs, **kwargs)
    if tool=='fastxtend':
        from fastxtend.callback.gradaccum import GradientAccumulation  # just the callback: no fastxtend.vision
        return GradientAccumulation(accum_bs, **kwargs)
    from fastxtend_accum import GradientAccumulation
    return GradientAccumulation(accum_bs, **{'remainder': 'step', **kwargs})

def synthetic_classification(n:int, n_valid:int=32, n_in:int=6, n_classes:int=3, seed:int=0)->tuple:
    "Float64 class means plus noise, as lists of `(x, y)` (as `fastxtend_accum.reference`, which fastai's worker must not import)"
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, n_in, generator=g, dtype=torch.float64)*2
    y = torch.randint(0, n_classes, (n+n_valid,), generator=g)
    items = list(zip(centres[y] + torch.randn(n+n_valid, n_in, generator=g, dtype=torch.float64), y))
    return items[:n], items[n:]

def tiny_mlp(seed:int=0)->nn.Module:
    "Float64 MLP 6 -> 16 -> 3 whose initial weights depend only on `seed`"
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)).double()

def flat_params(model:nn.Module)->Tensor: return torch.cat([p.detach().flatten().clone() for p in model.parameters()])

def grad_left(model:nn.Module)->float:
    "Largest absolute gradient still on the parameters (0 when none has one)"
    return max([p.grad.abs().max().item() for p in model.parameters() if p.grad is not None], default=0.)

class StepRecorder(Callback):
    "Flattened parameters after every optimizer step (a step that a callback cancels has no `after_step`), and training micro-batches"
    order = 100
    def before_fit(self): self.steps,self.micro_batches = [],0
    def after_step(self): self.steps.append(flat_params(self.model))
    def after_batch(self): self.micro_batches += self.training

class Float32Record(Callback):
    "fastai's Recorder and loggers compute in float32: hand them a float32 loss; the gradient still comes from float64"
    order = -20
    def after_loss(self): self.learn.loss = self.loss.float()

class RaiseAt(Callback):
    "Raise at the end of training micro-batch `iter`, to see what a fit that fails mid-window leaves"
    order = 100
    def __init__(self, iter): self.at = iter
    def after_batch(self):
        if self.training and self.iter==self.at: raise RuntimeError('raised on purpose')

OPTS = {'sgd': partial(SGD, mom=0.9), 'adam': Adam}

def learner(bs:int, cbs=(), n:int=192, opt:str='sgd', drop_last:bool=False, path=None)->Learner:
    "A float64 learner on `n` samples in a fixed order, micro- (or plain) batches of `bs`"
    train,valid = synthetic_classification(n)
    dls = DataLoaders(DataLoader(train, bs=bs, drop_last=drop_last), DataLoader(valid, bs=64))
    return Learner(dls, tiny_mlp(), loss_func=nn.CrossEntropyLoss(), opt_func=OPTS[opt],
                   cbs=[StepRecorder(), Float32Record(), *cbs], path=ifnone(path, tempfile.gettempdir()))

def trained(bs:int, cbs=(), epochs:int=2, lr:float=1e-2, one_cycle:bool=False, **kwargs)->Learner:
    learn = learner(bs, cbs, **kwargs)
    with learn.no_bar(), learn.no_logging():
        if one_cycle: learn.fit_one_cycle(epochs, lr)
        else: learn.fit(epochs, lr)
    return learn

def message(e:BaseException)->str:
    "An exception in one line for a table cell: fastai's 'Exception occured in `X` when calling event `y`:' goes last"
    lines = [l.strip() for l in str(e).strip().splitlines() if l.strip()]
    where = ''
    if lines and lines[0].startswith('Exception occured in'):
        where = ' (in ' + lines[0][len('Exception occured in '):].replace(' when calling event ', ' at ').rstrip(':') + ')'
        lines = lines[1:]
    return f"{type(e).__name__}: {' '.join(lines)}"[:200] + where

# ----------------------------------------------------------------------------------------------- worker: cases
def window(micro:int, accum:int)->int:
    "Samples in a full window: it closes at the first micro-batch that brings it to `accum` or more"
    return math.ceil(accum/micro)*micro

def versus_plain(tool:str, micro:int, accum:int, plain_bs:int, drop_last:bool, **kwargs)->dict:
    "Train with the tool on micro-batches and plainly on batches of `plain_bs`; compare every step and the final weights"
    plain = trained(plain_bs, drop_last=drop_last, **kwargs)   # first: an error of the set-up raises here, not as a refusal
    try: accumulated = trained(micro, [tool_callback(tool, accum)], **kwargs)
    except Exception as e: return {'refused': message(e)}
    steps,ref = accumulated.step_recorder.steps,plain.step_recorder.steps
    r = {'steps': len(steps), 'plain_steps': len(ref),
         'final_diff': (flat_params(accumulated.model)-flat_params(plain.model)).abs().max().item()}
    r['max_step_diff'] = max([(a-b).abs().max().item() for a,b in zip(steps, ref)], default=0.) if len(steps)==len(ref) else None
    r['exact'] = r['max_step_diff'] is not None and r['max_step_diff'] < EXACT
    return r

def random_configs(count:int, seed:int)->list:
    "Micro-batch size, accum_bs (a multiple of it half the time), dataset size (at least one full window; a multiple of it a third of the time), epochs, optimizer: the same in every worker"
    rng,configs = random.Random(seed),[]
    for i in range(count):
        micro = rng.randint(2, 16)
        accum = micro*rng.randint(1, 5) if rng.random() < 0.5 else rng.randint(micro, 5*micro)
        w = window(micro, accum)
        n = w*rng.randint(math.ceil(24/w), 160//w) if rng.random() < 1/3 else rng.randint(max(24, w), 160)
        configs.append(dict(n=n, micro=micro, accum=accum, epochs=rng.randint(1, 3), opt=rng.choice(list(OPTS))))
    return configs

def random_case(tool:str, configs:list)->list:
    "Every random config against plain batches of the window's size, with the tool's `drop_last`"
    return [dict(c, window=window(c['micro'], c['accum']), drop_last=REFERENCE_DROP_LAST[tool],
                 **versus_plain(tool, c['micro'], c['accum'], window(c['micro'], c['accum']), REFERENCE_DROP_LAST[tool],
                                n=c['n'], epochs=c['epochs'], opt=c['opt'], lr=1e-2))
            for c in configs]

def grad_after_fit(tool:str, **kwargs)->dict:
    "Gradient on the parameters after `fit(1)` on 100 samples, micro 8 to 32: the last 4 samples make a short window"
    learn = trained(8, [tool_callback(tool, 32, **kwargs)], n=100, epochs=1)
    return {'max_abs_grad': grad_left(learn.model), 'steps': len(learn.step_recorder.steps)}

def grad_after_exception(tool:str)->dict:
    "Gradient on the parameters after a fit that raises at micro-batch 5 (the second of the second window of 4)"
    learn = learner(8, [tool_callback(tool, 32), RaiseAt(5)], n=192)
    try:
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    except RuntimeError: pass
    return {'max_abs_grad': grad_left(learn.model), 'steps': len(learn.step_recorder.steps)}

def tensorboard_case(tool:str)->dict:
    "fastai's TensorBoardCallback next to the tool, 192 samples, micro 8 to 32, one epoch; the events read back"
    from fastai.callback.tensorboard import TensorBoardCallback
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    with tempfile.TemporaryDirectory() as d:
        tb = TensorBoardCallback(log_dir=d, trace_model=False, log_preds=False)
        try: learn = trained(8, [tool_callback(tool, 32), tb], epochs=1)
        except Exception as e: return {'crash': message(e)}
        events = EventAccumulator(d); events.Reload()
        points = events.Scalars('train_loss') if 'train_loss' in events.Tags()['scalars'] else []
    return {'works': True, 'train_loss_points': len(points), 'steps': len(learn.step_recorder.steps),
            'micro_batches': learn.step_recorder.micro_batches, 'x': [p.step for p in points]}

def lr_find_case(tool:str)->dict:
    "`lr_find()` with its defaults (100 iterations), micro 8 to 32"
    with tempfile.TemporaryDirectory() as d:   # lr_find saves and reloads the weights under `learn.path`
        learn = learner(8, [tool_callback(tool, 32)], path=d)
        try:
            with learn.no_bar(): suggestion = learn.lr_find(show_plot=False)
        except Exception as e: return {'crash': message(e), 'lr_find_from': Learner.lr_find.__module__}
    return {'works': True, 'lr_find_from': Learner.lr_find.__module__, 'valley': float(suggestion.valley), 'steps': len(learn.step_recorder.steps),
            'iterations': len(learn.recorder.lrs), 'max_abs_grad': grad_left(learn.model)}

def import_module(name:str)->dict:
    "Import `name`; whether that worked, and whether torchvision came with it"
    import importlib
    try: importlib.import_module(name)
    except Exception as e: return {'imports': False, 'crash': message(e)}
    return {'imports': True, 'torchvision_loaded': 'torchvision' in sys.modules}

def versions(tool:str)->dict:
    import fastai, platform
    v = {'python': platform.python_version(), 'torch': torch.__version__, 'fastai': fastai.__version__, 'executable': sys.executable}
    if tool=='fastxtend':
        import fastxtend; v['fastxtend'] = fastxtend.__version__
    if tool=='fastxtend_accum':
        import fastxtend_accum; v['fastxtend_accum'] = fastxtend_accum.__version__
    return v

def worker(tool:str, configs:list)->dict:
    "Every case for one tool; an exception in a case is recorded, not raised"
    torch.set_num_threads(1)
    warnings.simplefilter('ignore')   # drop warnings and deprecations: what happened is in the numbers
    def run(f, *args, **kwargs):
        try: return f(*args, **kwargs)
        except Exception as e: return {'error': message(e)}
    start = time.perf_counter()
    r = {'versions': versions(tool), 'reference_drop_last': REFERENCE_DROP_LAST[tool],
         'random': run(random_case, tool, configs),
         'micro32_accum48': run(versus_plain, tool, 32, 48, 64, False, opt='sgd', epochs=2),
         'one_cycle': run(versus_plain, tool, 8, 32, 32, False, opt='adam', epochs=2, one_cycle=True),
         'grad_after_fit': run(grad_after_fit, tool),
         'grad_after_exception': run(grad_after_exception, tool),
         'tensorboard': run(tensorboard_case, tool),
         'lr_find': run(lr_find_case, tool)}
    if tool=='fastxtend':
        r['grad_after_fit_drop_last_false'] = run(grad_after_fit, tool, drop_last=False)
        r['imports'] = {m: run(import_module, m) for m in ('fastxtend.callback.all', 'fastxtend.callback.lr_finder')}
        r['lr_find_fastxtend_lr_finder'] = run(lr_find_case, tool)   # now with fastxtend's `lr_find` patched in (last: it stays)
    r['seconds'] = time.perf_counter()-start
    return r

# ------------------------------------------------------------------------------------------------------ driver
def setup_fastxtend(python:Path, torch_pin:str):
    "Create fastxtend 0.1.7's virtual environment, with the project's torch and fastai pinned (no CUDA torch pulled)"
    import fastai
    venv = python.parent.parent
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
    subprocess.run([str(python), '-m', 'pip', 'install', '-q', torch_pin, f'fastai=={fastai.__version__}',
                    'fastxtend==0.1.7', 'tensorboard'], check=True)

def run_worker(tool:str, python:Path, args, tmp:Path)->dict:
    "Run one tool's worker in `python`; a missing or failing worker gives the reason instead of numbers"
    if not python.exists():
        return {'not_measured': f'no Python at {python}: run with --setup-fastxtend, or pass --fastxtend-python'}
    out = tmp/f'{tool}.json'
    cmd = [str(python), __file__, '--worker', tool, '--configs', str(args.configs), '--seed', str(args.seed), '--json', str(out)]
    print(f'{tool}: {python}', flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode or not out.exists():
        return {'not_measured': f'the worker failed (exit {p.returncode}): ' + (p.stderr.strip().splitlines() or [''])[-1][:200]}
    return json.loads(out.read_text())

def fmt(x:float)->str: return f'{x:.2g}'

def random_summary(rows:list, keep=lambda c: True)->str:
    "Exact, refused and differing configs among those that `keep` selects"
    rows = [r for r in rows if keep(r)]
    exact = sum(bool(r.get('exact')) for r in rows)
    refused = sum('refused' in r for r in rows)
    differ = [r for r in rows if 'refused' not in r and not r.get('exact')]
    parts = [f'**{exact}/{len(rows)} exact**']
    if refused: parts.append(f'{refused} refused')
    if differ:
        n_steps = sum(r['max_step_diff'] is None for r in differ)
        parts.append(f"{len(differ)} differ (by up to {fmt(max(r['final_diff'] for r in differ))}"
                     + (f'; {n_steps} with another number of steps' if n_steps else '') + ')')
    return ', '.join(parts)

def versus_cell(r:dict)->str:
    if 'refused' in r: return f"refuses: \"{r['refused']}\""
    if r['max_step_diff'] is None: return f"{fmt(r['final_diff'])} ({r['steps']} steps, plain {r['plain_steps']})"
    return f"{fmt(r['final_diff'])} (every step within {fmt(r['max_step_diff'])})"

def grad_cell(r:dict)->str: return f"yes, up to {fmt(r['max_abs_grad'])}" if r['max_abs_grad'] > 0 else 'none'

def tensorboard_cell(r:dict)->str:
    if 'crash' in r: return f"crashes: {r['crash']}"
    per_step = r['train_loss_points']/max(r['steps'], 1)
    return (f"works: {r['train_loss_points']} `train_loss` points for {r['steps']} steps ({per_step:.3g} per step) "
            f"and {r['micro_batches']} micro-batches, at x = {', '.join(map(str, r['x'][:4]))}, ..., {r['x'][-1]}")

def lr_find_cell(r:dict)->str:
    if 'crash' in r: return f"crashes: {r['crash']}"
    return f"works: {r['iterations']} iterations, {r['steps']} optimizer steps, valley {r['valley']:.2g}"

def divides(c:dict)->bool: return c['accum'] % c['micro']==0
def no_remainder(c:dict)->bool: return divides(c) and c['n'] % c['accum']==0

def table(results:dict, configs:list)->list:
    "The comparison table: one row per case, one column per tool"
    def cells(key, f):
        out = []
        for t in TOOLS:
            r = results[t]
            if 'not_measured' in r: out.append(f"not measured: {r['not_measured']}" if key=='random' else 'not measured')
            elif isinstance(r[key], dict) and 'error' in r[key]: out.append(f"error: {r[key]['error']}")
            else: out.append(f(r[key]))
        fx = results['fastxtend']
        if key=='grad_after_fit' and 'grad_after_fit_drop_last_false' in fx:
            out[1] += f" (`drop_last=True`, its default); with `drop_last=False`: {grad_cell(fx['grad_after_fit_drop_last_false'])}"
        if key=='lr_find' and 'lr_find_fastxtend_lr_finder' in fx:
            out[1] += f"; with fastxtend's own `lr_find` (`fastxtend.callback.lr_finder`): {lr_find_cell(fx['lr_find_fastxtend_lr_finder'])}"
        return out
    version = lambda t, k: results[t].get('versions', {}).get(k, '')
    head = [f"fastai {version('fastai', 'fastai')} `GradientAccumulation`".replace('  ', ' '), f"fastxtend {version('fastxtend', 'fastxtend') or '0.1.7'}",
            f"`fastxtend_accum` {version('fastxtend_accum', 'fastxtend_accum')}".strip()]
    rows = [(f'{len(configs)} random configs: exact at every step vs plain batches of the window', cells('random', random_summary)),
            (f'... of which `accum_bs` is a multiple of the micro-batch ({sum(map(divides, configs))})',
             cells('random', lambda rs: random_summary(rs, divides))),
            (f'... and the dataset a multiple of `accum_bs`, so no short window ({sum(map(no_remainder, configs))})',
             cells('random', lambda rs: random_summary(rs, no_remainder))),
            ('micro 32, `accum_bs=48`, vs batches of 64 (SGD, 2 epochs): largest weight difference', cells('micro32_accum48', versus_cell)),
            ('micro 8 to 32 vs plain 32, `fit_one_cycle(2)`, Adam: largest weight difference', cells('one_cycle', versus_cell)),
            ('gradient left on the parameters after `fit` (100 samples, micro 8 to 32)', cells('grad_after_fit', grad_cell)),
            ('gradient left after a `fit` that raises mid-window', cells('grad_after_exception', grad_cell)),
            ('`TensorBoardCallback` (read back with `EventAccumulator`)', cells('tensorboard', tensorboard_cell)),
            ('`lr_find()`', cells('lr_find', lr_find_cell))]
    return ['| case | ' + ' | '.join(head) + ' |', '|---|---|---|---|',
            *[f"| {case} | {' | '.join(c.replace('|', '/') for c in row)} |" for case,row in rows]]

def config_table(results:dict, configs:list)->list:
    "Every random config and each tool's result on it"
    def cell(r, i):
        if not isinstance(r.get('random'), list): return 'not measured'
        c = r['random'][i]
        if 'refused' in c: return 'refused'
        steps = '' if c['max_step_diff'] is not None else f" ({c['steps']} vs {c['plain_steps']} steps)"
        return ('exact' if c['exact'] else fmt(c['final_diff'])) + steps
    lines = ['| # | samples | micro | `accum_bs` | window | epochs | optimizer | ' + ' | '.join(TOOLS) + ' |', '|' + '---|'*(7+len(TOOLS))]
    for i,c in enumerate(configs):
        lines.append(f"| {i} | {c['n']} | {c['micro']} | {c['accum']} | {window(c['micro'], c['accum'])} | {c['epochs']} | {c['opt']} | "
                     + ' | '.join(cell(results[t], i) for t in TOOLS) + ' |')
    return lines

METHOD = """
## What each row measures

Every run trains a float64 MLP 6 -> 16 -> 3 (`nn.CrossEntropyLoss`, mean) in fastai's `Learner`, on synthetic
classification data (class means plus noise, a fixed seed) in a fixed order, with the same initial weights, and
records the weights after every optimizer step. Float64, so that float rounding (about 1e-16) cannot be mistaken
for a difference; "exact" means that every step's weights are within 1e-10 of the plain run's, with as many steps.
Each tool runs with its defaults, except `remainder='step'` passed to fastxtend_accum explicitly.

- **Random configs**: micro-batch 2-16, `accum_bs` from the micro-batch to 5 times it (a multiple of it half the
  time), dataset size from 24 (or one full window, if more) to 160 (a multiple of the window a third of the time),
  1-3 epochs, `fit` at lr 1e-2 with SGD (momentum 0.9) or fastai's Adam; the same
  configs (seed {seed}) for every tool. A window closes at the first micro-batch that brings it to `accum_bs` samples
  or more, so a full window holds ceil(accum_bs/micro)*micro samples (the *window* column). The reference trains on
  plain batches of the window's size in the same order, with the `drop_last` of the tool's policy for a short window
  at an epoch's end: fastai's has none (its count runs on across epochs and a last partial window is never
  stepped), so its reference is the DataLoader's default `drop_last=False`; fastxtend 0.1.7 drops it
  (`drop_last=True`, its default), so its reference is `drop_last=True`; fastxtend_accum with `remainder='step'`
  steps it, as `drop_last=False` does. A tool that raises on a config counts as *refused*.
- **micro 32, `accum_bs=48`**: 192 samples, 2 epochs of `fit(2, 1e-2)`, SGD with momentum 0.9; windows of two
  micro-batches (64 samples), compared with plain batches of 64.
- **`fit_one_cycle(2)`**: 192 samples, micro-batches of 8 to `accum_bs=32`, fastai's Adam, `fit_one_cycle(2, 1e-2)`,
  compared with plain batches of 32. In both of these rows the dataset is a multiple of the window.
- **Gradient left after `fit`**: 100 samples, micro 8 to 32, `fit(1)`: 3 full windows and 4 samples left over;
  the largest absolute `.grad` on the parameters after `fit` returns. **After an exception**: 192 samples, a
  callback raises at the end of micro-batch 5, the second of the second window; the `.grad` after `fit` raised.
- **TensorBoard**: fastai's `TensorBoardCallback(trace_model=False, log_preds=False)` with the tool, 192 samples,
  micro 8 to 32, one epoch (6 optimizer steps); the `train_loss` scalars are read back from the event file with
  tensorboard's `EventAccumulator`; *x* is the step axis TensorBoard shows.
- **`lr_find()`**: fastai's defaults (100 iterations, `show_plot=False`), micro 8 to 32; works or the exception.

Not measured here: W&B and DDP (`ddp_nosync.py` counts all-reduce rounds for fastai's callback and this one).

## Why, as read in the tools' sources (explanations, not measurements)

- fastai 2.8.12 (`fastai/callback/training.py`): each micro-batch's loss is scaled by its size over `n_acc`, so a
  window of W samples gets W/`n_acc` times its mean gradient (4/3 for windows of 64 with `accum_bs=48`); the count
  is reset only in `before_fit`, so windows run across epochs and a partial window at the end of `fit` (or an
  exception) keeps its gradient on the parameters; schedulers set the hyper-parameters at every micro-batch, so a
  step uses those of its window's last micro-batch.
- fastxtend 0.1.7 (`fastxtend/callback/gradaccum.py`): `before_fit` refuses an `accum_bs` that is not a multiple
  of the micro-batch size; `before_batch` cancels every micro-batch once fewer than `accum_bs` samples of the epoch
  remain (counted per micro-batch, from `bs*len(dl)`), so a full window that ends less than `accum_bs - bs`
  samples before the epoch's end loses its last micro-batches, and `after_train` zeroes what it had: one full
  window fewer per epoch in those configs. For micro-batches that do not step it sets `run_train=False` on the
  Recorder, so `learn.smooth_loss` does not exist yet when `TensorBoardCallback` or `LRFinder` reads it at the first
  micro-batch (fastai's `Learner` forwards the missing attribute to the model, hence `'Sequential'`).
"""

def report(results:dict, configs:list, info:dict, args)->list:
    versions = {t: results[t].get('versions', {'not measured': results[t].get('not_measured')}) for t in TOOLS}
    return ['# fastai, fastxtend and fastxtend_accum: gradient accumulation on the same configurations', '',
            'Largest weight difference to plain large batches (float64, so only real differences show), and behaviours:', '',
            *table(results, configs), '',
            f"Measured by `{info['command']}` on {info['date_utc']} (UTC), {info['cpus_usable']} CPUs ({info['cpu']}), "
            f"git {info['git']}, in {info['seconds']:.0f} s (1-minute load average {info['load_average_start'][0]:.2f} at the start, "
            f"{info['load_average_end'][0]:.2f} at the end: it changes the run time only, as nothing here is a timing).", '',
            '## Versions', '', *[f"- {t}: " + ', '.join(f'{k} {v}' for k,v in versions[t].items()) for t in TOOLS],
            *[f"- fastxtend's worker, `import {m}`: " + ('works' if r.get('imports') else f"fails: {r.get('crash', r.get('error'))}")
              for m,r in results['fastxtend'].get('imports', {}).items()],
            '- So the fastxtend worker imports `fastxtend.callback.gradaccum` alone (no `fastxtend.vision`, no torchvision), '
            'and `fastxtend.callback.lr_finder` only for the last `lr_find` run.', '',
            METHOD.strip().format(seed=args.seed), '',
            '## Every random config', '',
            'Each tool against its reference: *exact*, *refused*, or the largest final weight difference (and the numbers '
            'of steps when they differ).', '', *config_table(results, configs), '',
            'Raw numbers: `compare_tools.json`, next to this file.', '']

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--configs', type=int, default=60, help='random configurations')
    p.add_argument('--seed', type=int, default=0, help='seed of the random configurations')
    p.add_argument('--python', type=Path, default=Path(sys.executable), help="Python of fastai's and fastxtend_accum's workers")
    p.add_argument('--fastxtend-python', type=Path, default=FASTXTEND_PYTHON, help="Python of fastxtend 0.1.7's environment")
    p.add_argument('--setup-fastxtend', action='store_true', help='create that environment first if it is missing (pip)')
    p.add_argument('--torch', default=f"torch=={torch.__version__.split('+')[0]}", help='torch pin for that environment')
    p.add_argument('--out', type=Path, default=Path(__file__).parent/'compare_tools.md', help='markdown report (JSON next to it)')
    p.add_argument('--worker', choices=TOOLS, help=argparse.SUPPRESS)
    p.add_argument('--json', type=Path, help=argparse.SUPPRESS)
    return p.parse_args()

def main():
    args = parse_args()
    configs = random_configs(args.configs, args.seed)
    if args.worker:
        args.json.write_text(json.dumps(dict(worker(args.worker, configs)), indent=1))
        return
    info,start = dict(machine(), command=command()),time.perf_counter()
    if args.setup_fastxtend and not args.fastxtend_python.exists(): setup_fastxtend(args.fastxtend_python, args.torch)
    pythons = {'fastai': args.python, 'fastxtend': args.fastxtend_python, 'fastxtend_accum': args.python}
    with tempfile.TemporaryDirectory() as tmp:
        results = {t: run_worker(t, pythons[t], args, Path(tmp)) for t in TOOLS}
    info['seconds'],info['load_average_end'] = time.perf_counter()-start,os.getloadavg()
    lines = report(results, configs, info, args)
    args.out.write_text('\n'.join(lines))
    args.out.with_suffix('.json').write_text(json.dumps({'info': info, 'configs': configs, 'results': results}, indent=1))
    print('\n'.join(lines[:16]) + f'\n\nwritten to {args.out} and {args.out.with_suffix(".json")}')

if __name__=='__main__': main()
