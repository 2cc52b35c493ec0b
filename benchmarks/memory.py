"""Peak memory of training above the process's baseline: micro-batches of 16 accumulated to 256 vs plain batches of 256.

Each configuration trains in a fresh process of its own, which reports the growth of its peak resident set size
(RSS) over its baseline; the two alternate, and the ratio is of the medians. Linux only (it reads /proc).
Writes `benchmarks/memory.md`.

    python benchmarks/memory.py                   # about 1 minute on a quiet 2-core machine
"""
from __future__ import annotations
import argparse, gc, json, resource, statistics, subprocess, sys, tracemalloc
from pathlib import Path

import torch
from fastai.basics import *
from fastxtend_accum.accumulation import GradientAccumulation

from common import command, machine, write_results

CONFIGS = ('accumulated', 'plain')

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--micro-bs', type=int, default=16, help='samples per micro-batch of the accumulated run')
    p.add_argument('--accum-bs', type=int, default=256, help='samples per step: accum_bs, and the batch size of the plain run')
    p.add_argument('--windows', type=int, default=2, help='optimizer steps (training set: windows * accum_bs samples)')
    p.add_argument('--channels', type=int, default=32, help='channels of the CNN')
    p.add_argument('--repeats', type=int, default=3, help='processes per configuration')
    p.add_argument('--threads', type=int, default=1, help='PyTorch threads')
    p.add_argument('--out', type=Path, default=Path(__file__).parent/'memory.md')
    p.add_argument('--worker', choices=CONFIGS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if min(args.micro_bs, args.windows, args.channels, args.repeats, args.threads) < 1: p.error('sizes and counts must be positive')
    if args.accum_bs < args.micro_bs: p.error(f'--accum-bs must be at least --micro-bs={args.micro_bs}, got {args.accum_bs}')
    return args

def cnn(channels:int)->nn.Module:
    "A small CNN on 32x32 images: few parameters, large activations. The same initial weights every time"
    torch.manual_seed(0)
    c = channels
    return nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10))

def images(n:int)->list:
    "`n` random 3x32x32 images with 10 classes (only the memory matters here)"
    g = torch.Generator().manual_seed(0)
    return list(zip(torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)))

def saved_activation_bytes(model:nn.Module, bs:int)->int:
    "Bytes autograd saves for backward in one forward of a batch of `bs`, each storage once, parameters left out"
    params,saved = {p.untyped_storage().data_ptr() for p in model.parameters()},{}
    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in params: saved[s.data_ptr()] = s.nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = F.cross_entropy(model(torch.rand(bs, 3, 32, 32)), torch.zeros(bs, dtype=torch.long))
    del loss
    return sum(saved.values())

def proc_status_kib(field:str)->int:
    "A field of /proc/self/status in KiB: VmRSS (resident now) or VmHWM (peak resident since start or last reset)"
    line = next(l for l in Path('/proc/self/status').read_text().splitlines() if l.startswith(field+':'))
    return int(line.split()[1])

def reset_peak_rss():
    "Set the kernel's peak-RSS mark (VmHWM, also behind ru_maxrss) to the current RSS (Linux >= 4.0)"
    Path('/proc/self/clear_refs').write_text('5')

def worker(config:str, args)->dict:
    "In this fresh process: build, warm up, reset the peak, train one epoch, report the peak's growth"
    train,valid = images(args.windows*args.accum_bs),images(16)
    bs,cbs = (args.micro_bs, GradientAccumulation(args.accum_bs)) if config=='accumulated' else (args.accum_bs, None)
    learn = Learner(DataLoaders(DataLoader(train, bs=bs), DataLoader(valid, bs=16), device='cpu'), cnn(args.channels),
                    loss_func=CrossEntropyLossFlat(), cbs=cbs)
    F.cross_entropy(learn.model(train[0][0][None]), train[0][1][None]).backward()   # one-time set-up of kernels and autograd
    learn.model.zero_grad(set_to_none=True)
    gc.collect()
    peak_before = proc_status_kib('VmHWM')
    reset_peak_rss()
    baseline = proc_status_kib('VmRSS')
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    peak = proc_status_kib('VmHWM')
    return {'config': config, 'peak_rss_before_reset_kib': peak_before, 'baseline_rss_kib': baseline, 'peak_rss_kib': peak, 'growth_kib': peak-baseline,
            'ru_maxrss_kib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, 'train_batches': len(learn.dls.train)}

def run_worker(config:str)->dict:
    "Run `config` in a fresh process with this process's arguments, and read its JSON report"
    out = subprocess.run([sys.executable, __file__, *sys.argv[1:], '--worker', config], capture_output=True, text=True)
    if out.returncode: raise RuntimeError(f'worker {config} failed:\n{out.stderr}')
    return json.loads(out.stdout.strip().splitlines()[-1])

def tracemalloc_sees(mib:int=64)->int:
    "Bytes `tracemalloc` counts while a tensor of `mib` MiB is allocated: PyTorch's allocator is not Python's"
    tracemalloc.start()
    t = torch.ones(mib*2**20//4)
    seen = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del t
    return seen

def mib_list(runs:list)->str: return ', '.join(f"{run['growth_kib']/1024:.1f}" for run in runs)

def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.worker: return print(json.dumps(worker(args.worker, args)))
    info = dict(machine(), command=command())
    runs = {c: [] for c in CONFIGS}
    for r in range(args.repeats):
        for config in (CONFIGS if r%2==0 else CONFIGS[::-1]):
            runs[config].append(dict(run=r, **run_worker(config)))
            print(f"repeat {r} {config:12s} growth {runs[config][-1]['growth_kib']/1024:8.1f} MiB", flush=True)
    growth = {c: statistics.median(run['growth_kib'] for run in runs[c])/1024 for c in CONFIGS}
    ratio = growth['accumulated']/growth['plain']
    model = cnn(args.channels)
    param_mib = sum(p.numel()*p.element_size() for p in model.parameters())/2**20
    act_mib = {bs: saved_activation_bytes(model, bs)/2**20 for bs in (args.micro_bs, args.accum_bs)}
    seen = tracemalloc_sees()
    summary = [f"Peak RSS growth over the baseline, one fresh process per run, median of {args.repeats}:", '',
               '| configuration | median growth (MiB) | runs (MiB) |', '|---|---|---|',
               f"| micro-batches of {args.micro_bs} accumulated to {args.accum_bs} | {growth['accumulated']:.1f} | {mib_list(runs['accumulated'])} |",
               f"| plain batches of {args.accum_bs} | {growth['plain']:.1f} | {mib_list(runs['plain'])} |", '',
               f"Memory ratio accumulated / plain: **{ratio:.3f}**. Target <= 0.35: **{'met' if ratio <= 0.35 else 'NOT met'}**.", '',
               f"Model: activations saved for backward at batch {args.accum_bs}: {act_mib[args.accum_bs]:.1f} MiB "
               f"(at {args.micro_bs}: {act_mib[args.micro_bs]:.2f} MiB); parameters: {param_mib:.3f} MiB; "
               f"activations / parameters at batch {args.accum_bs}: **{act_mib[args.accum_bs]/param_mib:.0f}x** (>= 10x required)."]
    headroom = max(run['peak_rss_before_reset_kib']-run['baseline_rss_kib'] for c in CONFIGS for run in runs[c])
    details = f"""
## Method

- Model: a CNN on 3x32x32 images, three 3x3 convolutions of {args.channels} channels with ReLU, global average
  pooling and a linear layer to 10 classes ({sum(p.numel() for p in model.parameters()):,} parameters), fastai `Learner`
  with its default Adam and `CrossEntropyLossFlat`, on the CPU with {args.threads} PyTorch thread(s). The data:
  {args.windows*args.accum_bs} random images ({args.windows} optimizer steps of {args.accum_bs} samples in both
  configurations), from fastai's `DataLoader`.
- Activation and parameter memory are computed, not guessed: the activations are the bytes of the tensors autograd
  saves for backward in one forward (a `saved_tensors_hooks` pack hook, each storage counted once, the parameters
  left out); the parameters are `numel * element_size`.
- What is measured: the growth of the process's peak resident set size during `learn.fit(1)`. Each run is a
  fresh process (`python benchmarks/memory.py --worker accumulated|plain`), which imports, builds the data, the
  model and the `Learner`, runs one forward and backward of a single sample (one-time set-up of kernels and
  autograd, the same in both configurations, kept out of the growth), then resets the kernel's peak-RSS mark to
  the current RSS (`echo 5 > /proc/self/clear_refs`), reads the baseline (`VmRSS` in `/proc/self/status`),
  trains one epoch, and reads the peak (`VmHWM`). Growth = peak - baseline. The two configurations alternate.
- Why this and not something else: `tracemalloc` sees only Python's allocator, not PyTorch's: with a
  64 MiB tensor alive it counted {seen:,} bytes. `resource.getrusage().ru_maxrss` is the same kernel mark, but
  for the process's whole life: minus a baseline it is right only if training goes above every earlier peak (of
  the imports, of building the data), which is not guaranteed; resetting the mark first removes that
  condition. The raw numbers hold, for each worker, the peak before the reset (`peak_rss_before_reset_kib`: what
  `ru_maxrss` would have started from) and `ru_maxrss_kib` read after training (after the reset, it equals
  `peak_rss_kib` on Linux). In this run the peak before the reset was at most {headroom} KiB above the baseline, so
  `ru_maxrss` minus the baseline would have given the same growth here; the reset makes that hold wherever the
  imports or the data peak higher. RSS counts
  pages that were touched, so it includes the allocator's free-but-kept memory and fragmentation, which is real
  memory use; it also includes the gradients and Adam's state, created in the first step (the same size in both
  configurations).
"""
    raw = {'args': {k: str(v) for k,v in vars(args).items()}, 'median_growth_mib': growth, 'ratio': ratio,
           'activation_mib': act_mib, 'parameter_mib': param_mib, 'tracemalloc_bytes_for_64_mib_tensor': seen, 'runs': runs}
    write_results(args.out, 'Memory of GradientAccumulation: peak RSS growth', summary, info, details, raw)

if __name__=='__main__': main()
