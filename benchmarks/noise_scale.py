"""Time of a training epoch with `GradientAccumulation` alone and with `GradientNoiseScale` added.

Both train the same model from the same weights on the same micro-batches with the same windows. Runs alternate
between the two (the order flips each round), the first round is a discarded warm-up, and the ratio is of the
medians. Writes `benchmarks/noise_scale.md`.

    python benchmarks/noise_scale.py              # about a minute on a quiet 2-core machine
"""
from __future__ import annotations
import argparse, gc, statistics, time
from pathlib import Path

import torch
from fastai.basics import *
from fastxtend_accum.accumulation import GradientAccumulation
from fastxtend_accum.noise_scale import GradientNoiseScale

from common import command, machine, write_results
from overhead import mlp, data, TrainTimer

CONFIGS = ('accumulation', 'accumulation + noise scale')

OPTIONS = {'runs': (9, 'timed rounds, each running both configurations once (>= 5)'),
           'micro-bs': (64, 'samples per micro-batch'), 'accum-bs': (512, 'samples per optimizer step'),
           'batches': (64, 'micro-batches per epoch'), 'width': (1024, 'width of the two hidden layers of the MLP'),
           'threads': (1, 'PyTorch threads (1: steadier when the machine is shared)')}

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name,(default,help) in OPTIONS.items(): p.add_argument(f'--{name}', type=int, default=default, help=help)
    p.add_argument('--out', type=Path, default=Path(__file__).parent/'noise_scale.md')
    args = p.parse_args()
    if args.runs < 5 or args.accum_bs < 2*args.micro_bs: p.error('--runs must be at least 5, and --accum-bs hold two micro-batches (>= 2 * --micro-bs)')
    return args

def epoch(config:str, train:list, valid:list, args)->dict:
    "Train one epoch with `config`; wall and CPU seconds of its training phase, and optimizer steps"
    cbs = [GradientAccumulation(args.accum_bs)] + ([GradientNoiseScale()] if 'noise' in config else [])
    learn = Learner(DataLoaders(DataLoader(train, bs=args.micro_bs), DataLoader(valid, bs=args.micro_bs), device='cpu'),
                    mlp(args.width), loss_func=CrossEntropyLossFlat(), cbs=cbs)
    timer = TrainTimer()
    gc.collect()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=timer)
    return {k: getattr(timer, k) for k in ('seconds', 'cpu_seconds', 'steps')}

def measure(args)->dict:
    "Seconds of every run, by configuration; round 0 is the warm-up"
    train,valid = data(args.micro_bs*args.batches),data(args.micro_bs)
    runs = {c: [] for c in CONFIGS}
    for r in range(args.runs+1):
        for config in (CONFIGS if r%2 else CONFIGS[::-1]):
            run = dict(round=r, **epoch(config, train, valid, args))
            runs[config].append(run)
            print(f"round {r} {config:28s} {run['seconds']:7.3f} s wall {run['cpu_seconds']:7.3f} s CPU {run['steps']} steps", flush=True)
    return runs

def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    info = dict(machine(), command=command())
    runs = measure(args)
    median = {key: {c: statistics.median(run[key] for run in runs[c] if run['round'] > 0) for c in CONFIGS} for key in ('seconds', 'cpu_seconds')}
    ratio = {key: m[CONFIGS[1]]/m[CONFIGS[0]] for key,m in median.items()}
    paired = statistics.median(a['seconds']/b['seconds'] for a,b in zip(runs[CONFIGS[1]], runs[CONFIGS[0]]) if a['round'] > 0)
    summary = [f"Training epoch of {args.batches} micro-batches of {args.micro_bs}, accumulated to {args.accum_bs}; median of {args.runs} alternating runs each:", '',
               '| configuration | median wall (s) | median CPU (s) | optimizer steps |', '|---|---|---|---|',
               *[f"| {c} | {median['seconds'][c]:.3f} | {median['cpu_seconds'][c]:.3f} | {runs[c][-1]['steps']} |" for c in CONFIGS], '',
               f"Ratio with / without `GradientNoiseScale` (ratio of medians): **{ratio['seconds']:.4f}** wall time, {ratio['cpu_seconds']:.4f} CPU time; "
               f"median of the paired (same round) wall ratios {paired:.4f}.", '',
               f"Target <= 1.05 (wall, ratio of medians): **{'met' if ratio['seconds'] <= 1.05 else 'NOT met'}**."]
    details = f"""
## Method

- Workload: the MLP of `benchmarks/overhead.py` (784 -> {args.width} -> {args.width} -> 10), fastai's Adam and
  `CrossEntropyLossFlat`, random MNIST-sized inputs, micro-batches of {args.micro_bs}, `GradientAccumulation({args.accum_bs})`,
  on the CPU with {args.threads} PyTorch thread(s).
- `GradientNoiseScale()` adds, per micro-batch, one norm per parameter in its gradient hook (kept on the device) and a
  stack of them; per step, the norm of the window's gradient, a few small tensor operations and one read back to the host.
- Each run builds a fresh `Learner` with the same initial weights (not timed) and trains one epoch, timed from
  `before_train` to `after_train`. Round 0 is a discarded warm-up; the order of the two configurations flips each round.
"""
    raw = {'args': {k: str(v) for k,v in vars(args).items()}, 'median': median, 'ratio': ratio, 'paired_wall_ratio': paired, 'runs': runs}
    write_results(args.out, 'Overhead of GradientNoiseScale: time of a training epoch', summary, info, details, raw)

if __name__=='__main__': main()
