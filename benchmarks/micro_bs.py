"""Time of a training epoch with `GradientAccumulation(micro_bs=k)` (and `micro_bs=('auto', k)`) on batches of `accum_bs`, against a DataLoader of `bs=k` with `accum_bs`.

Both train the same model from the same weights on the same samples in the same order, with the same windows
(one optimizer step per `accum_bs` samples): one splits each large batch into views of `k` samples, the other
gets batches of `k` from its DataLoader; `auto` is `split` with `micro_bs=('auto', k)`, which never runs out of memory
on the CPU, so it measures what 'auto' keeps to redo a window. Runs alternate (the order swaps each round), the first round is a
discarded warm-up, and the ratio is of the medians. Writes `benchmarks/micro_bs.md`.

    python benchmarks/micro_bs.py                 # about 2 minutes on a quiet 2-core machine
"""
from __future__ import annotations
import argparse, gc, statistics, time
from pathlib import Path

import torch
from fastai.basics import *
from fastxtend_accum.accumulation import GradientAccumulation

from common import command, machine, write_results
from overhead import mlp, data, TrainTimer

CONFIGS = ('loader', 'split', 'auto')

OPTIONS = {  # name: (default, help); all positive integers
    'runs': (9, 'timed rounds, each running the three configurations once (>= 5)'),
    'micro-bs': (64, 'samples per micro-batch, the same in both'),
    'accum-bs': (512, 'samples per optimizer step: the large batch of `split` (a multiple of --micro-bs)'),
    'batches': (128, 'micro-batches per epoch'),
    'width': (1024, 'width of the two hidden layers of the MLP'),
    'threads': (1, 'PyTorch threads (1: steadier when the machine is shared)')}

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name,(default,help) in OPTIONS.items(): p.add_argument(f'--{name}', type=int, default=default, help=help)
    p.add_argument('--out', type=Path, default=Path(__file__).parent/'micro_bs.md')
    args = p.parse_args()
    bad = [name for name in OPTIONS if getattr(args, name.replace('-', '_')) < (5 if name=='runs' else 1)]
    if bad or args.accum_bs % args.micro_bs: p.error(f'--runs must be >= 5, the others >= 1, --accum-bs a multiple of --micro-bs; got {vars(args)}')
    return args

def learner(config:str, train:list, valid:list, args)->Learner:
    "`loader`: batches of `micro_bs` accumulated to `accum_bs`; `split`: batches of `accum_bs` split into `micro_bs`; `auto`: the same, found"
    if config=='loader': bs,cb = args.micro_bs,GradientAccumulation(args.accum_bs)
    else: bs,cb = args.accum_bs,GradientAccumulation(micro_bs=args.micro_bs if config=='split' else ('auto', args.micro_bs))
    dls = DataLoaders(DataLoader(train, bs=bs), DataLoader(valid, bs=args.micro_bs), device='cpu')
    return Learner(dls, mlp(args.width), loss_func=CrossEntropyLossFlat(), cbs=cb)

def epoch(config:str, round:int, train:list, valid:list, args)->dict:
    "Train one epoch with `config`; wall seconds, CPU seconds, optimizer steps and micro-batches of its training phase"
    learn,timer = learner(config, train, valid, args),TrainTimer()
    gc.collect()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=timer)
    print(f"round {round} {config:7s} {timer.seconds:7.3f} s wall {timer.cpu_seconds:7.3f} s CPU {timer.steps} steps", flush=True)
    return dict(config=config, round=round, seconds=timer.seconds, cpu_seconds=timer.cpu_seconds, steps=timer.steps,
                micro_batches=learn.gradient_accumulation.micro_batches, weights=float(sum(p.sum() for p in learn.model.parameters())))

def measure(args)->list:
    "Every run; round 0 is the warm-up, and the order of the three reverses each round"
    train,valid = data(args.micro_bs*args.batches),data(args.micro_bs)
    return [epoch(config, r, train, valid, args) for r in range(args.runs+1) for config in (CONFIGS if r%2 else CONFIGS[::-1])]

def summarize(runs:list, key:str, config:str='split')->tuple:
    "Medians of `key` by configuration, the ratio `config` / loader of the medians, and the median of the ratios of each round"
    timed = {c: [run[key] for run in runs if run['config']==c and run['round']] for c in CONFIGS}
    median = {c: statistics.median(v) for c,v in timed.items()}
    return median, median[config]/median['loader'], statistics.median(a/b for a,b in zip(timed[config], timed['loader']))

def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    info = dict(machine(), command=command())
    runs = measure(args)
    (wall,ratio,paired),(cpu,cpu_ratio,cpu_paired) = summarize(runs, 'seconds'),summarize(runs, 'cpu_seconds')
    (_,auto_ratio,auto_paired),(_,auto_cpu_ratio,auto_cpu_paired) = summarize(runs, 'seconds', 'auto'),summarize(runs, 'cpu_seconds', 'auto')
    last = {run['config']: run for run in runs}
    same = {c: (last[c]['steps'], last[c]['micro_batches']) for c in CONFIGS}
    weights_gap = max(abs(last[c]['weights'] - last['loader']['weights']) for c in CONFIGS)
    summary = [f"Training epoch of {args.batches*args.micro_bs} samples, one optimizer step per {args.accum_bs}, micro-batches of "
               f"{args.micro_bs}; median of {args.runs} alternating runs each:", '',
               '| configuration | median wall (s) | median CPU (s) | optimizer steps | micro-batches |', '|---|---|---|---|---|',
               f"| loader: `DataLoader(bs={args.micro_bs})`, `GradientAccumulation({args.accum_bs})` | {wall['loader']:.3f} | {cpu['loader']:.3f} | {same['loader'][0]} | {same['loader'][1]} |",
               f"| split: `DataLoader(bs={args.accum_bs})`, `GradientAccumulation(micro_bs={args.micro_bs})` | {wall['split']:.3f} | {cpu['split']:.3f} | {same['split'][0]} | {same['split'][1]} |",
               f"| auto: `DataLoader(bs={args.accum_bs})`, `GradientAccumulation(micro_bs=('auto', {args.micro_bs}))` | {wall['auto']:.3f} | {cpu['auto']:.3f} | {same['auto'][0]} | {same['auto'][1]} |", '',
               '| ratio / loader | wall time | CPU time |', '|---|---|---|',
               f'| split, ratio of medians | {ratio:.4f} | {cpu_ratio:.4f} |', f'| split, median of paired rounds | {paired:.4f} | {cpu_paired:.4f} |',
               f'| auto, ratio of medians | {auto_ratio:.4f} | {auto_cpu_ratio:.4f} |', f'| auto, median of paired rounds | {auto_paired:.4f} | {auto_cpu_paired:.4f} |', '',
               f"Target: split / loader <= 1.03 (wall time, ratio of medians): **{'met' if ratio <= 1.03 else 'NOT met'}** ({ratio:.4f}). "
               f"Sum of the weights after the epoch differs by at most {weights_gap:.2e} from `loader` (float32)."]
    details = f"""
## Method

- Workload: the MLP of `overhead.py`, 784 -> {args.width} -> {args.width} -> 10, fastai's default Adam and
  `CrossEntropyLossFlat`, random MNIST-sized inputs from fastai's `DataLoader` (collation included), on the CPU
  with {args.threads} PyTorch thread(s).
- `loader`: a DataLoader of `bs={args.micro_bs}` and `GradientAccumulation({args.accum_bs})`. `split`: a DataLoader of
  `bs={args.accum_bs}` and `GradientAccumulation(micro_bs={args.micro_bs})` (a window is one batch of the DataLoader).
  `auto`: `split` with `micro_bs=('auto', {args.micro_bs})`: nothing runs out of memory, so this is the cost of what
  'auto' keeps to redo a window. Same samples, same order, same windows, the same steps.
- Each run builds a fresh `Learner` (not timed) and trains one epoch; time from `before_train` to `after_train`,
  wall (`time.perf_counter`) and CPU (`time.process_time`). Round 0 is a discarded warm-up; each of the
  {args.runs} timed rounds runs the three, in an order that reverses each round. The machine is shared with other
  engineers' test runs: wall time includes waiting for a CPU, CPU time does not.
"""
    raw = {'args': {k: str(v) for k,v in vars(args).items()}, 'median_wall_seconds': wall, 'median_cpu_seconds': cpu,
           'ratio_wall': ratio, 'ratio_cpu': cpu_ratio, 'paired_wall': paired, 'paired_cpu': cpu_paired,
           'auto_ratio_wall': auto_ratio, 'auto_ratio_cpu': auto_cpu_ratio, 'runs': runs}
    write_results(args.out, 'micro_bs: splitting large batches against a DataLoader of small ones', summary, info, details, raw)

if __name__=='__main__': main()
