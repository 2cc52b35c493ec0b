"""Time of a training epoch with fastxtend_accum's `GradientAccumulation`, fastai's, and no accumulation.

All three train the same model from the same weights on the same micro-batches; the two callbacks accumulate
the same number of samples per step. Runs alternate between the three (the order rotates each round), the
first round is a discarded warm-up, and the ratios are of the medians. Writes `benchmarks/overhead.md`.

    python benchmarks/overhead.py                 # about 1.5 minutes on a quiet 2-core machine
"""
from __future__ import annotations
import argparse, gc, statistics, time
from pathlib import Path

import torch
from fastai.basics import *
from fastai.callback.training import GradientAccumulation as FastaiGradientAccumulation
from fastxtend_accum.accumulation import GradientAccumulation

from common import command, machine, write_results

CONFIGS = ('none', 'fastai', 'fastxtend_accum')

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--runs', type=int, default=7, help='timed rounds, each running the three configurations once (>= 5)')
    p.add_argument('--micro-bs', type=int, default=64, help='samples per micro-batch, the same in all three')
    p.add_argument('--accum-bs', type=int, default=512, help='samples per optimizer step of the two callbacks')
    p.add_argument('--batches', type=int, default=128, help='micro-batches per epoch')
    p.add_argument('--width', type=int, default=1024, help='width of the two hidden layers of the MLP')
    p.add_argument('--threads', type=int, default=1, help='PyTorch threads (1: steadier when the machine is shared)')
    p.add_argument('--out', type=Path, default=Path(__file__).parent/'overhead.md')
    args = p.parse_args()
    if args.runs < 5: p.error(f'--runs must be at least 5, got {args.runs}')
    if min(args.micro_bs, args.batches, args.width, args.threads) < 1: p.error('--micro-bs, --batches, --width and --threads must be positive')
    if args.accum_bs < args.micro_bs: p.error(f'--accum-bs must be at least --micro-bs={args.micro_bs}, got {args.accum_bs}')
    return args

def mlp(width:int)->nn.Module:
    "MNIST-sized MLP: 784 -> width -> width -> 10, the same initial weights every time"
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(784, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))

def data(n:int)->list:
    "`n` random MNIST-sized samples: pixels and 10 classes (only the compute matters here)"
    g = torch.Generator().manual_seed(0)
    return list(zip(torch.rand(n, 784, generator=g), torch.randint(0, 10, (n,), generator=g)))

class TrainTimer(Callback):
    "Wall and CPU seconds of the training phase of an epoch (validation excluded), and optimizer steps taken"
    order = -1000
    def before_train(self): self.steps,self.start,self.cpu_start = 0,time.perf_counter(),time.process_time()
    def after_step(self): self.steps += 1
    def after_train(self): self.seconds,self.cpu_seconds = time.perf_counter()-self.start,time.process_time()-self.cpu_start

def callback(config:str, accum_bs:int):
    return {'none': None, 'fastai': FastaiGradientAccumulation(accum_bs), 'fastxtend_accum': GradientAccumulation(accum_bs)}[config]

def epoch(config:str, train:list, valid:list, args)->tuple:
    "Train one epoch with `config`; return wall seconds, CPU seconds and optimizer steps of its training phase"
    dls = DataLoaders(DataLoader(train, bs=args.micro_bs), DataLoader(valid, bs=args.micro_bs), device='cpu')
    learn = Learner(dls, mlp(args.width), loss_func=CrossEntropyLossFlat(), cbs=callback(config, args.accum_bs))
    timer = TrainTimer()
    gc.collect()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=timer)
    return {'seconds': timer.seconds, 'cpu_seconds': timer.cpu_seconds, 'steps': timer.steps}

def measure(args)->dict:
    "Seconds and steps of every run, by configuration; round 0 is the warm-up"
    train,valid = data(args.micro_bs*args.batches),data(args.micro_bs)
    runs = {c: [] for c in CONFIGS}
    for r in range(args.runs+1):
        for config in CONFIGS[r%3:] + CONFIGS[:r%3]:
            run = dict(round=r, **epoch(config, train, valid, args))
            runs[config].append(run)
            print(f"round {r} {config:16s} {run['seconds']:7.3f} s wall {run['cpu_seconds']:7.3f} s CPU {run['steps']} steps", flush=True)
    return runs

def summarize(runs:dict, key:str)->tuple:
    "Medians of `key` ('seconds' or 'cpu_seconds'), ratios of medians, and the median of the paired (same round) ratios"
    timed = {c: [run[key] for run in runs[c] if run['round'] > 0] for c in CONFIGS}
    median = {c: statistics.median(v) for c,v in timed.items()}
    ratios = {'fastxtend_accum / fastai': median['fastxtend_accum']/median['fastai'],
              'fastxtend_accum / none': median['fastxtend_accum']/median['none'],
              'fastai / none': median['fastai']/median['none'],
              'fastxtend_accum / fastai, median of paired rounds':
                  statistics.median(a/b for a,b in zip(timed['fastxtend_accum'], timed['fastai']))}
    return median,ratios

def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    info = dict(machine(), command=command())
    runs = measure(args)
    (wall,wall_ratios),(cpu,cpu_ratios) = summarize(runs, 'seconds'),summarize(runs, 'cpu_seconds')
    ratio = wall_ratios['fastxtend_accum / fastai']
    ms_per_batch = 1000*wall['none']/args.batches
    overhead_us = 1e6*(wall['fastxtend_accum']-wall['fastai'])/args.batches
    summary = [f"Training epoch of {args.batches} micro-batches of {args.micro_bs}, accumulated to {args.accum_bs} by the callbacks; "
               f"median of {args.runs} alternating runs each:", '',
               '| configuration | median wall (s) | median CPU (s) | optimizer steps |', '|---|---|---|---|',
               *[f"| {c} | {wall[c]:.3f} | {cpu[c]:.3f} | {runs[c][-1]['steps']} |" for c in CONFIGS], '',
               '| ratio | wall time | CPU time |', '|---|---|---|',
               *[f'| {k} | {v:.4f} | {cpu_ratios[k]:.4f} |' for k,v in wall_ratios.items()], '',
               f"Target: fastxtend_accum / fastai <= 1.02 (wall time, ratio of medians): **{'met' if ratio <= 1.02 else 'NOT met'}** "
               f"({ratio:.4f}; {overhead_us:+.0f} us per micro-batch, against {ms_per_batch:.1f} ms per micro-batch "
               f"of forward, backward and step without accumulation)."]
    details = f"""
## Method

- Workload: an MLP 784 -> {args.width} -> {args.width} -> 10 (ReLU; {sum(p.numel() for p in mlp(args.width).parameters()):,} parameters),
  fastai `Learner` with its default Adam and `CrossEntropyLossFlat`, on random MNIST-sized inputs (784 floats, 10
  classes) from fastai's `DataLoader` (collation included), micro-batches of {args.micro_bs}, on the CPU with
  {args.threads} PyTorch thread(s). Without accumulation, one micro-batch takes {ms_per_batch:.1f} ms here
  (forward, backward, Adam step): the size of a real training step, so that a ratio near 1 is not an artefact of
  microscopic batches.
- Configurations: `none` (a step per micro-batch), `fastai` (`fastai.callback.training.GradientAccumulation({args.accum_bs})`),
  `fastxtend_accum` (`GradientAccumulation({args.accum_bs})`). The two callbacks step once per {args.accum_bs} samples,
  so they do the same work; `none` also takes {args.accum_bs//args.micro_bs}x as many optimizer steps.
- Each run builds a fresh `Learner` with the same initial weights (not timed) and trains one epoch; the time is
  from `before_train` to `after_train` (validation excluded), progress bar and logging off: wall time with
  `time.perf_counter`, and CPU time of the process with `time.process_time`. On a machine shared with other work,
  wall time includes waiting for a CPU; CPU time does not, so it is the steadier of the two there (it still
  feels other work through caches and memory bandwidth). On a quiet machine the two agree. Round 0 runs each configuration once as a warm-up and is discarded; each of the {args.runs} timed
  rounds runs all three, in an order that rotates from round to round, so that slow drifts of the machine hit
  all three alike. Ratios are of the medians; the paired ratio is the median over rounds of
  (fastxtend_accum / fastai) in the same round, which is less sensitive to load that changes between rounds.
"""
    raw = {'args': {k: str(v) for k,v in vars(args).items()}, 'median_wall_seconds': wall, 'median_cpu_seconds': cpu,
           'wall_ratios': wall_ratios, 'cpu_ratios': cpu_ratios, 'runs': runs}
    write_results(args.out, 'Overhead of GradientAccumulation: time of a training epoch', summary, info, details, raw)

if __name__=='__main__': main()
