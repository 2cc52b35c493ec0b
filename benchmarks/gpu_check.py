"""Issue 16: one prepared script that checks `GradientAccumulation` on a GPU, in one call of the device tool.

Sections, each in its own try/except (a failure is recorded and the next section still runs):

1. `precision`: fp16 (fastai's `MixedPrecision` with its `GradScaler`) and bf16. Every step of an accumulated run
   against the same run at `accum_bs ==` batch size (one micro-batch per window), within the large batch's own
   rounding (its distance from the fp32 large-batch run); the scaler unscales, checks inf/NaN and updates once per
   window; a window with an overflow is skipped whole and the scale halves once.
2. `syncs`: host-device syncs per micro-batch (`torch.cuda.set_sync_debug_mode('warn')`, warnings counted) on the
   micro-batches that do not close a window: this callback (also with `count_items` returning tensors) against
   fastai's `GradientAccumulation` in the same loop, in fp32 and fp16.
3. `memory`: peak `torch.cuda.max_memory_allocated` above the model's, micro-batches of 16 accumulated to 256 vs
   plain batches of 256, on a transformer whose activations dominate (target <= 0.2).
4. `throughput`: samples/s of this callback vs fastai's vs no accumulation, same micro-batches (target this/fastai >= 0.98).
5. `micro_bs_auto`: if `GradientAccumulation` accepts `micro_bs`: a real OOM at a known size (a capped allocator),
   the size found, and the result against the plain large-batch run. Otherwise 'skipped: not landed'.
6. `noise_scale`: if `fastxtend_accum` exports `GradientNoiseScale`: its time overhead (target <= 1.05x). Otherwise skipped.
7. `nbdev_cuda`: `nbdev-test --flags cuda` on the notebooks that hold `#| cuda` cells.

    python benchmarks/gpu_check.py --device cuda --out $OUT     # on the GPU (expected 2-4 minutes on an H200; not yet run)
    python benchmarks/gpu_check.py --device cpu --out benchmarks # CPU dry run at toy sizes: about 30-40 s on 2 cores

The GPU image has torch but neither fastai nor nbdev: `benchmarks/gpu_check_wheels.sh` downloads them as wheels to
carry there, and its header holds the device command.

Writes `gpu_check_cuda.md/.json` (or `gpu_check_cpu_dryrun.md/.json` with `--device cpu`) under `--out`, again after
every section, so that a run stopped at the device's time limit still leaves what it measured. Synthetic data only.
On the CPU, what needs CUDA is marked 'n/a on CPU'; fp16 and bf16 run through CPU autocast and an enabled CPU
`GradScaler` (fastai's `MixedPrecision` with only those two swapped), and memory has a rough stand-in.
"""
from __future__ import annotations
import argparse, dataclasses, gc, inspect, json, os, signal, statistics, subprocess, sys, time, traceback, warnings
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO/'benchmarks')]   # the working tree's package, also where it is not installed

import torch
from torch.amp import GradScaler
from fastai.basics import *
from fastai.callback.fp16 import MixedPrecision, AMPMode
from fastai.callback.training import GradientAccumulation as FastaiGA
import fastai, fastxtend_accum
from fastxtend_accum import GradientAccumulation, count_targets
from fastxtend_accum.reference import synthetic_classification, tiny_dls, tiny_mlp, StepRecorder, max_step_difference

from common import command, machine

# Sizes per device: the CPU dry run runs every code path at toy sizes; the GPU sizes fit a 10-minute call with room
SIZES = {
    'cuda': dict(prec_n=256, prec_micro=8, prec_accum=32, prec_hidden=64, prec_epochs=2,
                 sync_n=128, sync_micro=8, sync_accum=32,
                 model=dict(vocab=1024, d=512, layers=6, heads=8, seq=128),
                 mem_micro=16, mem_accum=256, mem_windows=2,
                 tp_micro=32, tp_accum=256, tp_batches=96, tp_rounds=7,
                 auto_accum=256),
    'cpu':  dict(prec_n=256, prec_micro=8, prec_accum=32, prec_hidden=64, prec_epochs=2,
                 sync_n=64, sync_micro=8, sync_accum=32,
                 model=dict(vocab=64, d=32, layers=2, heads=4, seq=16),
                 mem_micro=16, mem_accum=256, mem_windows=1,
                 tp_micro=16, tp_accum=64, tp_batches=48, tp_rounds=7,
                 auto_accum=64),
}
# Seconds a section is expected to need, at most: it is not started with less time left than this
NEEDS = {'cuda': dict(precision=30, syncs=30, memory=40, throughput=90, micro_bs_auto=60, noise_scale=60, nbdev_cuda=60),
         'cpu':  dict(precision=20, syncs=20, memory=20, throughput=60, micro_bs_auto=30, noise_scale=30, nbdev_cuda=0)}
SECTIONS = tuple(NEEDS['cuda'])
NA_CPU = 'n/a on CPU'

# ---------------------------------------------------------------------------------------------------------------
# Results

@dataclass
class Row:
    "One line of the results table"
    check: str
    figure: str
    target: str
    status: str   # PASS, FAIL, ERROR, INFO, 'n/a on CPU', 'skipped: ...'
    note: str = ''

def verdict(ok:bool)->str: return 'PASS' if ok else 'FAIL'

@dataclass
class Run:
    "What the whole run knows: arguments, sizes, clock, and each section's rows and raw numbers"
    args: argparse.Namespace
    sizes: dict
    start: float = field(default_factory=time.perf_counter)
    sections: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def cuda(self)->bool: return self.args.device=='cuda'
    def elapsed(self)->float: return time.perf_counter()-self.start
    def time_left(self)->float: return self.args.budget_s-self.elapsed()

# ---------------------------------------------------------------------------------------------------------------
# Learners, models and data

class CPUMixedPrecision(MixedPrecision):
    "fastai's `MixedPrecision` with CPU autocast and a CPU `GradScaler` (enabled for fp16), for the dry run without CUDA"
    def before_fit(self):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')   # fastai's CUDA `GradScaler` warns that CUDA is not available, then is replaced
            super().before_fit()
        dtype = torch.float16 if self.amp_mode==AMPMode.FP16 else torch.bfloat16
        self.autocast,self.learn.scaler = torch.autocast('cpu', dtype=dtype),GradScaler('cpu', **self.kwargs)

def add_precision(learn:Learner, precision:str, device:str)->Learner:
    "fp32 as is; fp16/bf16 with fastai's `to_fp16()`/`to_bf16()` on CUDA, `CPUMixedPrecision` on the CPU"
    if precision=='fp32': return learn
    if device=='cuda': return learn.to_fp16() if precision=='fp16' else learn.to_bf16()
    return learn.add_cb(CPUMixedPrecision(amp_mode=precision))

def mlp_learner(run:Run, n:int, bs:int, cbs:list, precision:str='fp32', hidden:int=64)->Learner:
    "The reference helpers' classification problem and two-layer MLP, on the run's device"
    train,valid = synthetic_classification(n=n, n_valid=32)
    dls = tiny_dls(train, valid, bs).to(run.args.device)
    learn = Learner(dls, tiny_mlp(hidden=hidden).to(run.args.device), loss_func=nn.CrossEntropyLoss(), cbs=cbs)
    return add_precision(learn, precision, run.args.device)

def fit_quietly(learn:Learner, epochs:int=1, lr:float=1e-2)->Learner:
    with learn.no_bar(), learn.no_logging(): learn.fit(epochs, lr)
    return learn

class TokenClassifier(nn.Module):
    "A transformer encoder over token sequences with a mean-pooled linear head: few parameters, large activations"
    def __init__(self, vocab:int, d:int, layers:int, heads:int, seq:int, n_classes:int=10):
        super().__init__()
        self.emb,self.pos = nn.Embedding(vocab, d),nn.Parameter(torch.randn(seq, d)*0.02)
        layer = nn.TransformerEncoderLayer(d, heads, 4*d, dropout=0., batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, n_classes)
    def forward(self, x): return self.head(self.encoder(self.emb(x)+self.pos).mean(1))

def token_model(run:Run)->nn.Module:
    "The transformer at this device's size, the same initial weights every time"
    torch.manual_seed(0)
    return TokenClassifier(**run.sizes['model']).to(run.args.device)

def token_data(run:Run, n:int, seed:int=0)->list:
    "`n` random token sequences with 10 classes (only the compute and memory matter here)"
    m,g = run.sizes['model'],torch.Generator().manual_seed(seed)
    return list(zip(torch.randint(0, m['vocab'], (n, m['seq']), generator=g), torch.randint(0, 10, (n,), generator=g)))

def token_learner(run:Run, train:list, bs:int, cbs=None, opt_func=Adam)->Learner:
    "fastai `Learner` of the transformer on `train`, micro-batches of `bs`, 16 samples of it to validate"
    valid = train[:min(len(train), 16)]
    dls = DataLoaders(DataLoader(train, bs=bs), DataLoader(valid, bs=16), device=run.args.device)
    return Learner(dls, token_model(run), loss_func=CrossEntropyLossFlat(), cbs=cbs, opt_func=opt_func)

def sync_device(run:Run):
    if run.cuda: torch.cuda.synchronize()

def release(run:Run):
    "Free what earlier runs left, between sections and runs"
    gc.collect()
    if run.cuda: torch.cuda.empty_cache()

def param_bytes(model:nn.Module)->int: return sum(p.numel()*p.element_size() for p in model.parameters())

# ---------------------------------------------------------------------------------------------------------------
# 1. Mixed precision

class ScalerProbe(Callback):
    "Counts the calls of the `GradScaler` that `MixedPrecision` made (unscale_ = the inf/NaN check), and the scale after each update"
    order = MixedPrecision.order+1   # its `before_fit` runs after `MixedPrecision` made the scaler
    def before_fit(self):
        self.calls,self.scales,self.found_inf = dict(unscale_=0, step=0, update=0),[],[]
        scaler = self.learn.scaler
        unscale,step,update = scaler.unscale_,scaler.step,scaler.update
        def counted_unscale(opt):
            self.calls['unscale_'] += 1
            out = unscale(opt)
            found = scaler._per_optimizer_states[id(opt)]['found_inf_per_device'] if scaler.is_enabled() else {}
            self.found_inf.append(sum(v.item() for v in found.values()))
            return out
        def counted_step(opt, *a, **k): self.calls['step'] += 1; return step(opt, *a, **k)
        def counted_update(*a, **k):
            self.calls['update'] += 1
            out = update(*a, **k)
            self.scales.append(scaler.get_scale())
            return out
        scaler.unscale_,scaler.step,scaler.update = counted_unscale,counted_step,counted_update

class Overflow(Callback):
    "Make one training micro-batch's loss infinite, so that its window's gradient overflows"
    order = GradientAccumulation.order-1
    def __init__(self, at:int): self.at = at
    def after_loss(self):
        if self.training and self.train_iter==self.at: self.learn.loss_grad = self.loss_grad*float('inf')

class WindowStartGrads(Callback):
    "Whether the gradients are all zero before the backward of each micro-batch that opens a window"
    order = 1000
    def __init__(self, per_window:int): self.per_window = per_window
    def before_fit(self): self.clean = []
    def before_backward(self):
        if self.training and self.train_iter % self.per_window==0:
            self.clean.append(all(p.grad is None or not p.grad.any() for p in self.model.parameters()))

def precision_runs(run:Run, precision:str)->dict:
    "Steps of the accumulated run, of the callback at accum_bs == batch size, and of plain batches, in `precision`"
    s = run.sizes
    def steps(bs, *cbs):
        learn = fit_quietly(mlp_learner(run, s['prec_n'], bs, [StepRecorder(), *cbs], precision, s['prec_hidden']), s['prec_epochs'])
        return learn
    acc = steps(s['prec_micro'], GradientAccumulation(s['prec_accum']), ScalerProbe())
    one = steps(s['prec_accum'], GradientAccumulation(s['prec_accum']))
    plain = steps(s['prec_accum'])
    return dict(acc=acc, one=one, plain=plain)

def step_diffs(a:list, b:list)->list: return [(x-y).abs().max().item() for x,y in zip(a, b)]

def check_precision(run:Run, precision:str, fp32_steps:list)->tuple:
    "Rows and raw numbers of one precision: step equality, scaler calls per window"
    r = precision_runs(run, precision)
    acc,one,plain = (r[k].step_recorder.steps for k in ('acc','one','plain'))
    probe = r['acc'].scaler_probe
    d_acc = max_step_difference(acc, one)
    d_own = max_step_difference(one, fp32_steps)
    d_plain = max_step_difference(one, plain)
    windows = len(acc)
    s = run.sizes
    label = f"{precision}: micro {s['prec_micro']} -> accum {s['prec_accum']}"
    rows = [Row(f"{label}: max |param diff| over {windows} steps vs the same run at accum_bs == bs",
                f"{d_acc:.3g}", f"<= the large batch's own {precision} rounding (|{precision} - fp32| = {d_own:.3g})",
                verdict(d_acc <= d_own)),
            Row(f"{precision}: callback at accum_bs == bs vs plain batches (no callback)", f"{d_plain:.3g}", "0 (bitwise)",
                verdict(d_plain==0))]
    scaler_on = precision=='fp16'
    want = dict(unscale_=windows if scaler_on else 0, step=windows, update=windows)
    if not scaler_on: want['unscale_'] = probe.calls['unscale_']   # a disabled scaler returns before unscaling; not checked
    rows.append(Row(f"{precision}: scaler calls in {windows} windows (unscale_ = inf/NaN check, step, update)",
                    ', '.join(f"{k} {v}" for k,v in probe.calls.items()),
                    f"one per window: {windows} each" if scaler_on else f"step and update once per window ({windows}); no scaling in bf16",
                    verdict(probe.calls==want)))
    raw = dict(windows=windows, max_diff_accumulated_vs_one_window=d_acc, max_diff_large_batch_vs_fp32=d_own,
               max_diff_one_window_vs_plain=d_plain, per_step_diff_accumulated=step_diffs(acc, one),
               per_step_diff_large_batch_vs_fp32=step_diffs(one, fp32_steps), scaler_calls=probe.calls,
               scales=probe.scales, found_inf=probe.found_inf)
    return rows,raw

def check_overflow(run:Run)->tuple:
    "fp16: one micro-batch of the second window overflows; that window is skipped whole and the scale halves once"
    s = run.sizes
    per_window = s['prec_accum']//s['prec_micro']
    at = per_window+1
    cbs = [StepRecorder(), GradientAccumulation(s['prec_accum']), ScalerProbe(), Overflow(at), WindowStartGrads(per_window)]
    learn = fit_quietly(mlp_learner(run, s['prec_n'], s['prec_micro'], cbs, 'fp16', s['prec_hidden']), 1)
    steps,probe,clean = learn.step_recorder.steps,learn.scaler_probe,learn.window_start_grads.clean
    skipped = bool(torch.equal(steps[0], steps[1]))
    others_moved = all(not torch.equal(a, b) for a,b in zip(steps[1:], steps[2:]))
    scales = probe.scales
    drops = [(a, b) for a,b in zip(scales, scales[1:]) if b < a]
    halved_once = len(drops)==1 and drops[0][1]==drops[0][0]/2 and scales.index(drops[0][1])==1
    rows = [Row(f"fp16 overflow in micro-batch {at} (window 2 of {len(steps)}): window skipped whole",
                f"params unchanged by it: {skipped}; later windows step: {others_moved}; grads zero at every window start: {all(clean)}",
                "skipped, and no gradient carried into the next window", verdict(skipped and others_moved and all(clean))),
            Row("fp16 overflow: scale after each window's update", ', '.join(f"{v:g}" for v in scales),
                "halves once, at the overflow window", verdict(halved_once)),
            Row("fp16 overflow: scaler calls", ', '.join(f"{k} {v}" for k,v in probe.calls.items()),
                f"one per window, the skipped one too: {len(steps)} each",
                verdict(all(v==len(steps) for v in probe.calls.values())))]
    raw = dict(overflow_micro_batch=at, steps=len(steps), window_skipped=skipped, later_windows_step=others_moved,
               grads_zero_at_window_start=clean, scales=scales, found_inf=probe.found_inf, scaler_calls=probe.calls)
    return rows,raw

def section_precision(run:Run)->tuple:
    s = run.sizes
    fp32 = fit_quietly(mlp_learner(run, s['prec_n'], s['prec_accum'], [StepRecorder()], 'fp32', s['prec_hidden']),
                       s['prec_epochs']).step_recorder.steps
    rows,raw = [],{}
    for precision in ('fp16', 'bf16'):
        try: r,raw[precision] = check_precision(run, precision, fp32)
        except Exception as e: r,raw[precision] = [error_row(f'{precision} step equality', e)],dict(error=traceback.format_exc())
        rows += r
    try: r,raw['fp16_overflow'] = check_overflow(run)
    except Exception as e: r,raw['fp16_overflow'] = [error_row('fp16 overflow', e)],dict(error=traceback.format_exc())
    rows += r
    note = ('fastai `to_fp16()` / `to_bf16()`' if run.cuda else
            'CPU dry run: fastai `MixedPrecision` with CPU autocast and an enabled CPU `GradScaler` (init scale 65536)')
    return rows,dict(raw, how=note)

# ---------------------------------------------------------------------------------------------------------------
# 2. Host-device syncs

SYNC_MESSAGE = 'synchronizing CUDA operation'   # torch's warning in set_sync_debug_mode('warn')

class SyncLog:
    "Records torch's sync-debug warnings while open ('warn' mode on CUDA; on the CPU it sees none, there being no syncs)"
    def __init__(self, cuda:bool): self.cuda,self.records = cuda,[]
    def __enter__(self):
        self.catcher = warnings.catch_warnings(record=True)
        self.records = self.catcher.__enter__()
        warnings.simplefilter('always')
        if self.cuda: torch.cuda.set_sync_debug_mode('warn')
        return self
    def __exit__(self, *exc):
        if self.cuda: torch.cuda.set_sync_debug_mode('default')
        self.catcher.__exit__(*exc)
    def count(self)->int: return sum(SYNC_MESSAGE in str(w.message) for w in self.records)

class SyncStart(Callback):
    "Marks the sync count at the very start of each training micro-batch"
    order = -10**6
    def __init__(self, log:SyncLog): self.log = log
    def before_batch(self): self.learn.sync_mark,self.learn.sync_stepped = self.log.count(),False

class SyncEnd(Callback):
    "At the very end of each training micro-batch: the syncs since its start, and whether the optimizer stepped"
    order = 10**6
    def __init__(self, log:SyncLog): self.log,self.per_batch = log,[]
    def after_step(self): self.learn.sync_stepped = True
    def after_batch(self):
        if self.training: self.per_batch.append((self.train_iter, self.log.count()-self.learn.sync_mark, self.learn.sync_stepped))

def sync_counts(run:Run, config:str, precision:str)->dict:
    "Syncs of each training micro-batch of one fit, split by whether it closed a window (stepped)"
    s = run.sizes
    accum = {'none': None, 'fastai': FastaiGA(s['sync_accum']), 'this': GradientAccumulation(s['sync_accum']),
             'this, count_items tensors': GradientAccumulation(s['sync_accum'], count_items=count_targets())}[config]
    learn = mlp_learner(run, s['sync_n'], s['sync_micro'], [c for c in [accum] if c is not None], precision)
    with SyncLog(run.cuda) as log:
        end = SyncEnd(log)
        fit_quietly(learn.add_cbs([SyncStart(log), end]), 1)
        total = log.count()
    batches = end.per_batch
    first = batches[0][1]
    open_ = [n for i,n,stepped in batches[1:] if not stepped]   # the fit's first micro-batch is reported on its own
    closing = [n for i,n,stepped in batches if stepped]
    return dict(first_micro_batch=first, non_closing=open_, closing=closing, fit_total=total, micro_batches=len(batches))

def section_syncs(run:Run)->tuple:
    rows,raw = [],{}
    configs = ('none', 'fastai', 'this', 'this, count_items tensors')
    for precision in ('fp32', 'fp16'):
        counts = raw[precision] = {c: sync_counts(run, c, precision) for c in configs}
        base = max(counts['fastai']['non_closing'], default=0)
        for c in configs[2:]:
            worst = max(counts[c]['non_closing'], default=0)
            fig = (f"max {worst} per micro-batch over {len(counts[c]['non_closing'])} (fastai's: {base}); "
                   f"closing: {summary_of(counts[c]['closing'])} (fastai's: {summary_of(counts['fastai']['closing'])}); "
                   f"fit's first micro-batch: {counts[c]['first_micro_batch']}")
            rows.append(Row(f"{precision}, {c}: syncs per micro-batch that does not close a window", fig if run.cuda else 'n/a',
                            "no more than fastai's GradientAccumulation in the same loop", verdict(worst <= base) if run.cuda else NA_CPU,
                            '' if run.cuda else 'counter ran; all counts 0, the CPU has no host-device syncs'))
        rows.append(Row(f"{precision}, no accumulation (fastai's loop): syncs per micro-batch, each steps",
                        summary_of(counts['none']['closing']) if run.cuda else 'n/a', 'reference', 'INFO' if run.cuda else NA_CPU))
    return rows,dict(raw, how="torch.cuda.set_sync_debug_mode('warn'), warnings counted from the first `before_batch` "
                               "to the last `after_batch` of each training micro-batch (data loading excluded); progress bar and logging off")

def summary_of(values:list)->str:
    "min-max of a list of counts"
    if not values: return 'none'
    return f"{min(values)}" if min(values)==max(values) else f"{min(values)}-{max(values)}"

# ---------------------------------------------------------------------------------------------------------------
# 3. Memory

def saved_activation_bytes(run:Run, model:nn.Module, bs:int)->int:
    "Bytes autograd saves for backward in one forward of a batch of `bs`, each storage once, parameters left out"
    m = run.sizes['model']
    params,saved = {p.untyped_storage().data_ptr() for p in model.parameters()},{}
    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in params: saved[st.data_ptr()] = st.nbytes()
        return t
    x = torch.randint(0, m['vocab'], (bs, m['seq']), device=run.args.device)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t): loss = model(x).float().mean()
    del loss
    return sum(saved.values())

class SavedActivationPeak(Callback):
    "CPU stand-in for a peak: the most bytes autograd saved for backward in one training forward of the fit"
    def __init__(self, params:set): self.params,self.peak = params,0
    def before_batch(self):
        if not self.training: return
        self.saved = {}
        def pack(t):
            st = t.untyped_storage()
            if st.data_ptr() not in self.params: self.saved[st.data_ptr()] = st.nbytes()
            return t
        self.hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)
        self.hooks.__enter__()
    def after_loss(self):
        if not self.training: return
        self.hooks.__exit__(None, None, None)
        self.peak = max(self.peak, sum(self.saved.values()))

def memory_run(run:Run, config:str)->dict:
    "Peak memory growth of one epoch above what was allocated before it (the model, after a warm-up step)"
    s = run.sizes
    train = token_data(run, s['mem_windows']*s['mem_accum'])
    bs,cbs = (s['mem_micro'], [GradientAccumulation(s['mem_accum'])]) if config=='accumulated' else (s['mem_accum'], [])
    learn = token_learner(run, train, bs, cbs)
    x,y = train[0]
    F.cross_entropy(learn.model(x[None].to(run.args.device)), y[None].to(run.args.device)).backward()  # one-time set-up
    learn.model.zero_grad(set_to_none=True)
    release(run)
    if not run.cuda:
        probe = SavedActivationPeak({p.untyped_storage().data_ptr() for p in learn.model.parameters()})
        fit_quietly(learn.add_cb(probe), 1, 1e-4)
        return dict(config=config, saved_activation_peak_bytes=probe.peak)
    sync_device(run)
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fit_quietly(learn, 1, 1e-4)
    sync_device(run)
    out = dict(config=config, base_bytes=base, peak_bytes=torch.cuda.max_memory_allocated(),
               growth_bytes=torch.cuda.max_memory_allocated()-base, peak_reserved_bytes=torch.cuda.max_memory_reserved())
    del learn
    release(run)
    return out

def section_memory(run:Run)->tuple:
    s = run.sizes
    model = token_model(run)
    params = param_bytes(model)
    acts = {bs: saved_activation_bytes(run, model, bs) for bs in (s['mem_micro'], s['mem_accum'])}
    del model; release(run)
    runs = [memory_run(run, c) for c in ('accumulated', 'plain', 'accumulated')]
    key = 'growth_bytes' if run.cuda else 'saved_activation_peak_bytes'
    acc = max(r[key] for r in runs if r['config']=='accumulated')
    plain = next(r[key] for r in runs if r['config']=='plain')
    ratio = acc/plain
    dominate = acts[s['mem_accum']]/params
    label = f"micro {s['mem_micro']} accumulated to {s['mem_accum']} vs plain {s['mem_accum']}"
    if run.cuda:
        rows = [Row(f"memory: peak max_memory_allocated above the model's, {label}",
                    f"{ratio:.3f} ({acc/2**20:.0f} MiB / {plain/2**20:.0f} MiB)", "<= 0.2", verdict(ratio <= 0.2))]
    else:
        rows = [Row(f"memory, {label}", f"rough: {ratio:.3f} (most bytes saved for backward in one forward: "
                    f"{acc/2**20:.2f} / {plain/2**20:.2f} MiB)", "<= 0.2 (allocator peak, CUDA)", NA_CPU,
                    'CPU stand-in: activations only, not an allocator peak; benchmarks/memory.py measures peak RSS on the CPU')]
    rows.append(Row(f"memory: activations saved for backward at batch {s['mem_accum']} / parameter bytes", f"{dominate:.0f}x",
                    ">= 10x (activations dominate)", verdict(dominate >= 10)))
    how = (f"transformer {s['model']}, {s['mem_windows']} windows; after a warm-up step, torch.cuda.reset_peak_memory_stats(), "
           f"growth = max_memory_allocated() during one epoch - memory_allocated() before it (model, no data); "
           f"runs accumulated, plain, accumulated (the larger accumulated figure is used)" if run.cuda else
           f"transformer {s['model']}; CPU stand-in: the most bytes autograd saved for backward in one training forward "
           f"(saved_tensors_hooks, each storage once, parameters left out)")
    raw = dict(model=s['model'], parameter_bytes=params, saved_activation_bytes=acts, runs=runs, ratio=ratio, how=how)
    return rows,raw

# ---------------------------------------------------------------------------------------------------------------
# 4. Throughput

class TrainTimer(Callback):
    "Seconds of the training phase of an epoch (validation excluded), the device synchronized at both ends"
    order = -1000
    def __init__(self, cuda:bool): self.cuda = cuda
    def before_train(self):
        if self.cuda: torch.cuda.synchronize()
        self.steps,self.samples,self.start,self.cpu_start = 0,0,time.perf_counter(),time.process_time()
    def after_batch(self):
        if self.training: self.samples += find_bs(self.yb)
    def after_step(self): self.steps += 1
    def after_train(self):
        if self.cuda: torch.cuda.synchronize()
        self.seconds,self.cpu_seconds = time.perf_counter()-self.start,time.process_time()-self.cpu_start

def timed_epoch(run:Run, train:list, cbs:list)->dict:
    "Train one epoch of the transformer with `cbs`; samples per second of its training phase"
    learn = token_learner(run, train, run.sizes['tp_micro'], cbs)
    timer = TrainTimer(run.cuda)
    gc.collect()
    fit_quietly(learn.add_cb(timer), 1, 1e-4)
    out = dict(seconds=timer.seconds, cpu_seconds=timer.cpu_seconds, samples=timer.samples, steps=timer.steps,
               samples_per_s=timer.samples/timer.seconds, samples_per_cpu_s=timer.samples/timer.cpu_seconds)
    del learn
    gc.collect()   # the CUDA cache is kept: emptying it would add cudaMalloc time to the next timed epoch
    return out

def alternating_rounds(run:Run, configs:dict, rounds:int, train:list)->dict:
    "Runs of each configuration (name -> function returning its callbacks), order rotating each round; round 0 is a warm-up"
    names,runs = list(configs),{c: [] for c in configs}
    for r in range(rounds+1):
        for name in names[r%len(names):] + names[:r%len(names)]:
            runs[name].append(dict(round=r, **timed_epoch(run, train, configs[name]())))
            x = runs[name][-1]
            print(f"  round {r} {name:18s} {x['samples_per_s']:10.1f} samples/s {x['samples_per_cpu_s']:10.1f} per CPU-s", flush=True)
    return runs

def medians(runs:dict, key:str='samples_per_s')->dict:
    return {c: statistics.median(x[key] for x in v if x['round'] > 0) for c,v in runs.items()}

def paired_ratio(runs:dict, a:str, b:str, key:str='samples_per_s')->float:
    "Median over timed rounds of a/b in the same round"
    return statistics.median(x[key]/y[key] for x,y in zip(runs[a], runs[b]) if x['round'] > 0)

def throughput_key(run:Run)->str:
    "Wall-clock samples/s on the GPU (synchronized); per CPU-second of the process on the CPU, steadier on a shared machine"
    return 'samples_per_s' if run.cuda else 'samples_per_cpu_s'

def section_throughput(run:Run)->tuple:
    s,key = run.sizes,throughput_key(run)
    train = token_data(run, s['tp_micro']*s['tp_batches'])
    configs = {'none': lambda: [], 'fastai': lambda: [FastaiGA(s['tp_accum'])], 'this': lambda: [GradientAccumulation(s['tp_accum'])]}
    runs = alternating_rounds(run, configs, s['tp_rounds'], train)
    med,wall = medians(runs, key),medians(runs, 'samples_per_s')
    ratio,paired = med['this']/med['fastai'],paired_ratio(runs, 'this', 'fastai', key)
    unit = 'samples/s' if run.cuda else 'samples per CPU-second'
    best = {c: max(x[key] for x in v if x['round'] > 0) for c,v in runs.items()}
    cpu_note = (f"CPU dry run: toy transformer on a shared 2-core machine, rounds swing by up to 2x, so no verdict here; "
                f"ratio of the best rounds {best['this']/best['fastai']:.4f}, wall-clock ratio of medians {wall['this']/wall['fastai']:.4f}; "
                f"benchmarks/overhead.py measures the CPU overhead on a quiet machine")
    rows = [Row(f"throughput: this / fastai GradientAccumulation, micro {s['tp_micro']} -> accum {s['tp_accum']}",
                f"{ratio:.4f} (paired rounds {paired:.4f}); {med['this']:.0f} vs {med['fastai']:.0f} {unit}",
                ">= 0.98 (median samples/s, GPU)", verdict(ratio >= 0.98) if run.cuda else NA_CPU, '' if run.cuda else cpu_note),
            Row("throughput: this / no accumulation (a step per micro-batch)", f"{med['this']/med['none']:.4f}; none {med['none']:.0f} {unit}",
                "reference (it steps every micro-batch: more optimizer steps)", 'INFO')]
    return rows,dict(model=s['model'], ratio_key=key, median=med, median_wall_samples_per_s=wall, ratio_this_fastai=ratio,
                     paired_ratio_this_fastai=paired, runs=runs,
                     how=f"transformer {s['model']}; {s['tp_batches']} micro-batches of {s['tp_micro']} per epoch, training phase timed "
                         f"({'CUDA synchronized at both ends' if run.cuda else 'process CPU time'}); median of {s['tp_rounds']} "
                         f"rounds alternating none/fastai/this, order rotating, after a warm-up round")

# ---------------------------------------------------------------------------------------------------------------
# 5. micro_bs='auto' and 6. the gradient noise scale, when they have landed

def micro_bs_landed()->bool: return 'micro_bs' in inspect.signature(GradientAccumulation).parameters
def noise_scale_landed()->bool: return hasattr(fastxtend_accum, 'GradientNoiseScale')

def is_oom(e:BaseException)->bool: return isinstance(e, torch.cuda.OutOfMemoryError) or 'out of memory' in str(e).lower()

def section_micro_bs_auto(run:Run)->tuple:
    "A capped allocator makes the plain large batch OOM at a known size; `micro_bs='auto'` must find a size that fits"
    # Written before the feature: the API is a guess (`GradientAccumulation(accum_bs, micro_bs='auto')` with the
    # DataLoader at `accum_bs`, the size found read from `cb.micro_bs`). Adjust these lines when it lands.
    if not micro_bs_landed(): return [Row("micro_bs='auto'", '-', 'a real OOM at a known size; size found; equal to plain', 'skipped: not landed')],{}
    if not run.cuda: return [Row("micro_bs='auto'", '-', 'needs a CUDA OOM', NA_CPU)],{}
    s,accum = run.sizes,run.sizes['auto_accum']
    train = token_data(run, 2*accum)
    ref = fit_quietly(token_learner(run, train, accum, [StepRecorder()], SGD), 1, 1e-2).step_recorder.steps   # uncapped reference
    release(run)
    mem = run.sections.get('memory', {}).get('raw', {}).get('runs') or [memory_run(run, 'plain')]
    plain = next(r for r in mem if r['config']=='plain')
    cap = plain['base_bytes'] + plain['growth_bytes']//2          # half the plain batch's growth: it cannot fit
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(cap/total)
    try:
        try:
            fit_quietly(token_learner(run, train, accum), 1, 1e-4)
            oom_plain = False
        except Exception as e:
            if not is_oom(e): raise
            oom_plain = True
        release(run)
        cb = GradientAccumulation(accum, micro_bs='auto')
        learn = fit_quietly(token_learner(run, train, accum, [StepRecorder(), cb], SGD), 1, 1e-2)
        found = getattr(cb, 'micro_bs', None)
        diff = max_step_difference(learn.step_recorder.steps, ref)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        release(run)
    rows = [Row(f"micro_bs='auto': plain batch of {accum} under a cap of {cap/2**20:.0f} MiB", f"OOM: {oom_plain}", 'OOM', verdict(oom_plain)),
            Row("micro_bs='auto': size found, and max |param diff| vs the uncapped plain run", f"{found}; {diff:.3g}",
                'a size < accum_bs; diff <= 1e-5 (SGD, fp32 sum order)', verdict(isinstance(found, int) and found < accum and diff <= 1e-5))]
    return rows,dict(cap_bytes=cap, plain_oom=oom_plain, micro_bs_found=found, max_step_difference=diff)

def section_noise_scale(run:Run)->tuple:
    "Time of an epoch with `GradientNoiseScale()` added to the callback, against the callback alone"
    # Written before the feature: `GradientNoiseScale()` with no arguments, beside the callback, is a guess
    if not noise_scale_landed(): return [Row('gradient noise scale overhead', '-', '<= 1.05x', 'skipped: not landed')],{}
    s = run.sizes
    train = token_data(run, s['tp_micro']*s['tp_batches'])
    gns = fastxtend_accum.GradientNoiseScale
    configs = {'this': lambda: [GradientAccumulation(s['tp_accum'])], 'this + noise scale': lambda: [GradientAccumulation(s['tp_accum']), gns()]}
    runs = alternating_rounds(run, configs, s['tp_rounds'], train)
    med = medians(runs, 'seconds' if run.cuda else 'cpu_seconds')
    ratio = med['this + noise scale']/med['this']
    return [Row('gradient noise scale: epoch time with it / without', f"{ratio:.4f}", '<= 1.05 (GPU)',
                verdict(ratio <= 1.05) if run.cuda else NA_CPU, '' if run.cuda else 'CPU dry run, shared machine: no verdict')],\
           dict(median_seconds=med, ratio=ratio, runs=runs)

# ---------------------------------------------------------------------------------------------------------------
# 7. The notebooks' `#| cuda` cells

def cuda_notebooks()->list:
    "Notebooks in nbs/ with at least one `#| cuda` cell"
    out = []
    for nb in sorted((REPO/'nbs').glob('*.ipynb')):
        cells = json.loads(nb.read_text())['cells']
        if any(c['cell_type']=='code' and '#| cuda' in ''.join(c['source']) for c in cells): out.append(nb.name)
    return out

def nbdev_command(notebooks:list)->tuple:
    "nbdev-test through this interpreter (no console script needed) on the notebooks with `#| cuda` cells; and as typed by hand"
    file_re = rf"^({'|'.join(n.removesuffix('.ipynb') for n in notebooks)})\.ipynb$"
    call = f"from nbdev.test import nbdev_test; nbdev_test(path='nbs', flags='cuda', n_workers=2, timing=True, file_re={file_re!r})"
    return [sys.executable, '-c', call],f"nbdev-test nbs --flags cuda --n-workers 2 --timing --file-re '{file_re}'"

def run_in_group(cmd:list, timeout:float, env:dict)->tuple:
    "Exit code (or 'timeout') and output of `cmd`; at the timeout its whole process group is killed, workers too"
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out,_ = proc.communicate(timeout=timeout)
        return proc.returncode,out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return 'timeout',f"stopped after {timeout:.0f} s\n" + proc.communicate()[0]

def section_nbdev_cuda(run:Run)->tuple:
    notebooks = cuda_notebooks()
    cmd,shown = nbdev_command(notebooks)
    if not run.cuda: return [Row(f"nbdev-test --flags cuda on {', '.join(notebooks)}", 'not run', 'all cells pass', NA_CPU,
                                 f"run on the GPU: `{shown}`")],dict(notebooks=notebooks, command=shown)
    timeout = max(30, int(run.time_left()) - 10)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')]),
               MPLBACKEND='Agg', WANDB_MODE='offline', WANDB_SILENT='true')   # headless and offline, as `make test` runs them
    t = time.perf_counter()
    rc,log = run_in_group(cmd, timeout, env)
    seconds = time.perf_counter()-t
    passed = rc==0 and 'Success.' in log   # nbdev-test also exits 0 when no notebook matched
    return [Row(f"nbdev-test --flags cuda on {', '.join(notebooks)}", f"exit {rc} in {seconds:.0f} s", "exit 0 and 'Success.'", verdict(passed))],\
           dict(notebooks=notebooks, command=shown, returncode=rc, seconds=seconds, log_tail=log[-6000:])

# ---------------------------------------------------------------------------------------------------------------
# Running the sections and writing the results

RUNNERS = dict(precision=section_precision, syncs=section_syncs, memory=section_memory, throughput=section_throughput,
               micro_bs_auto=section_micro_bs_auto, noise_scale=section_noise_scale, nbdev_cuda=section_nbdev_cuda)
TITLES = dict(precision='1. fp16 / bf16 mixed precision', syncs='2. host-device syncs', memory='3. memory',
              throughput='4. throughput', micro_bs_auto="5. micro_bs='auto'", noise_scale='6. gradient noise scale',
              nbdev_cuda="7. notebooks' `#| cuda` cells")

def error_row(check:str, e:BaseException)->Row:
    return Row(check, f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}", '-', 'ERROR')

def run_section(run:Run, name:str):
    "Run one section unless the budget is too short for it; keep its rows, raw numbers, seconds, or its error"
    need = NEEDS[run.args.device][name]
    if run.time_left() < need:
        run.sections[name] = dict(rows=[dataclasses.asdict(Row(TITLES[name], '-', '-', f'skipped: time budget ({run.time_left():.0f} s left, needs {need} s)'))],
                                  raw={}, seconds=0.)
        return
    print(f"== {name} ({run.elapsed():.0f} s elapsed)", flush=True)
    t = time.perf_counter()
    try: rows,raw = RUNNERS[name](run)
    except Exception as e: rows,raw = [error_row(TITLES[name], e)],dict(error=traceback.format_exc())
    release(run)
    run.sections[name] = dict(rows=[dataclasses.asdict(r) for r in rows], raw=raw, seconds=time.perf_counter()-t)
    for r in rows: print(f"  {r.status:12s} {r.check}: {r.figure}", flush=True)

def device_name(run:Run)->str:
    return torch.cuda.get_device_name(0) if run.cuda else 'cpu dry run'

def describe(run:Run)->dict:
    "Command, date, device, versions and commit"
    try: info = machine()
    except Exception as e: info = dict(machine_error=repr(e), torch=torch.__version__, fastai=fastai.__version__, git='unknown',
                                       date_utc=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), cpus_usable=os.cpu_count(),
                                       load_average_start=load_average())
    info.update(command=command(), device=device_name(run), device_flag=run.args.device, budget_s=run.args.budget_s)
    if run.args.commit: info['git'] = run.args.commit
    if run.cuda: info.update(cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                             gpu_memory_gib=round(torch.cuda.get_device_properties(0).total_memory/2**30, 1),
                             tf32_matmul=torch.backends.cuda.matmul.allow_tf32)
    info.update(micro_bs_landed=micro_bs_landed(), noise_scale_landed=noise_scale_landed(), sizes=run.sizes)
    return info

def load_average()->tuple:
    try: return os.getloadavg()
    except OSError: return (float('nan'),)*3

def out_stem(run:Run)->str: return 'gpu_check_cuda' if run.cuda else 'gpu_check_cpu_dryrun'

def cell(text:str)->str:
    "Text for a markdown table cell: a `|` would end the cell"
    return str(text).replace('|', '\\|')

def loads(values)->str: return '/'.join(f'{v:.2f}' for v in values)

def markdown(run:Run)->str:
    m = run.meta
    lines = [f"# GPU check of GradientAccumulation (issue 16): {m['device']}", '',
             f"- date (UTC): {m['date_utc']}; device: **{m['device']}**; torch {m['torch']}; fastai {m['fastai']}; "
             f"git {m['git']}; wall time {run.elapsed():.0f} s (budget {run.args.budget_s} s)",
             f"- command (from the repository root): `{m['command']}`",
             f"- 1/5/15-minute load average at the start {loads(m['load_average_start'])}, at the end {loads(m['load_average_end'])}, "
             f"{m['cpus_usable']} CPUs usable", '',
             '| # | check | figure | target | status |', '|---|---|---|---|---|']
    for name in SECTIONS:
        sec = run.sections.get(name)
        if sec is None: continue
        for r in sec['rows']:
            note = f" ({r['note']})" if r['note'] else ''
            lines.append(f"| {TITLES[name].split('.')[0]} | {cell(r['check'])} | {cell(r['figure']+note)} | {cell(r['target'])} | **{r['status']}** |")
    lines += ['', '## How', '']
    for name in SECTIONS:
        sec = run.sections.get(name)
        if sec is None: continue
        how = sec['raw'].get('how') or sec['raw'].get('command')
        lines.append(f"- {TITLES[name]} ({sec['seconds']:.1f} s){': ' + how if how else ''}")
    lines += ['', 'Not measured on the CPU dry run (marked n/a): host-device syncs, the allocator peak, a real OOM, the '
              '`#| cuda` cells. Every figure above was measured in this run; the raw numbers are in the JSON file beside this one.']
    errors = {n: s['raw']['error'] for n,s in run.sections.items() if isinstance(s['raw'], dict) and 'error' in s['raw']}
    errors.update({f'{n}/{k}': v['error'] for n,s in run.sections.items() for k,v in s['raw'].items()
                   if isinstance(v, dict) and 'error' in v})
    for name,tb in errors.items(): lines += ['', f'## Error in {name}', '', '```', tb.strip()[-3000:], '```']
    nb = run.sections.get('nbdev_cuda', {}).get('raw', {})
    if nb.get('log_tail'): lines += ['', '## nbdev-test output (tail)', '', '```', nb['log_tail'].strip()[-3000:], '```']
    return '\n'.join(lines) + '\n'

def write_outputs(run:Run):
    "Markdown and JSON under --out, rewritten after every section"
    out = Path(run.args.out); out.mkdir(parents=True, exist_ok=True)
    stem = out/out_stem(run)
    run.meta['load_average_end'] = load_average()
    data = dict(meta=run.meta, wall_seconds=run.elapsed(), sections=run.sections)
    stem.with_suffix('.json').write_text(json.dumps(data, indent=1, default=str))
    stem.with_suffix('.md').write_text(markdown(run))

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--device', choices=('cuda', 'cpu'), default='cuda', help="'cuda' on the GPU; 'cpu': the dry run at toy sizes")
    p.add_argument('--out', type=Path, required=True, help='folder for gpu_check_<device>.md and .json ($OUT on the device)')
    p.add_argument('--budget-s', type=float, default=420, help='no section is started when less time is left than it needs')
    p.add_argument('--sections', nargs='+', choices=SECTIONS, default=list(SECTIONS), help='run only these (default: all)')
    p.add_argument('--threads', type=int, default=None, help='PyTorch CPU threads (default: 1 with --device cpu, all otherwise)')
    p.add_argument('--commit', default=None, help='commit to record when the copy has no .git (on the device)')
    args = p.parse_args()
    if args.device=='cuda' and not torch.cuda.is_available(): p.error('--device cuda but torch sees no GPU: use --device cpu for the dry run')
    return args

def main():
    args = parse_args()
    torch.set_num_threads(args.threads or (1 if args.device=='cpu' else torch.get_num_threads()))
    run = Run(args, SIZES[args.device])
    run.meta = describe(run)
    print(f"gpu_check on {run.meta['device']}, budget {args.budget_s} s, sections {args.sections}", flush=True)
    for name in SECTIONS:
        if name in args.sections:
            run_section(run, name)
            write_outputs(run)
    statuses = [r['status'] for s in run.sections.values() for r in s['rows']]
    print(f"done in {run.elapsed():.0f} s: " + ', '.join(f"{statuses.count(k)} {k}" for k in dict.fromkeys(statuses)))
    print(f"written: {Path(args.out)/out_stem(run)}.md and .json")

if __name__=='__main__': main()
