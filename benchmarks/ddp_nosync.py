"""DDP on 2 CPU processes (gloo): wall time and gradient all-reduce rounds, fastxtend_accum's `GradientAccumulation` vs fastai's.

Both callbacks accumulate 8 micro-batches per optimizer step on the same data, model and weights. fastxtend_accum's
runs the backward of the 7 micro-batches that do not close a window under DDP's `no_sync()`, fastai's all-reduces
after every micro-batch. The model is wide and the micro-batches tiny, so the gradients are large relative to the
compute: the case accumulation is for. Rounds alternate between the two (the order swaps each round), the first
round is a discarded warm-up, and the ratio is of the medians. Writes `benchmarks/ddp_nosync.md`.

    python benchmarks/ddp_nosync.py             # about 1.5 minutes on a quiet 2-core machine
"""
from __future__ import annotations
import argparse, gc, json, os, statistics, sys, tempfile, time
from pathlib import Path

import torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from fastai.basics import *
from fastai.callback.training import GradientAccumulation as FastaiGradientAccumulation
from fastxtend_accum.accumulation import GradientAccumulation
from fastxtend_accum.distributed import AllReduceCounter, launch_local, rank_items

CONFIGS = ('fastai', 'fastxtend_accum')

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--runs', type=int, default=7, help='timed rounds, each training once with each callback (>= 5)')
    p.add_argument('--micro-bs', type=int, default=2, help='samples per micro-batch and process')
    p.add_argument('--accum', type=int, default=8, help='micro-batches per optimizer step')
    p.add_argument('--steps', type=int, default=8, help='optimizer steps per timed training epoch')
    p.add_argument('--width', type=int, default=1536, help='width of the hidden layers of the MLP')
    p.add_argument('--out', type=Path, default=Path(__file__).parent/'ddp_nosync.md')
    p.add_argument('--results', type=Path, help=argparse.SUPPRESS)  # where process 0 writes its raw numbers
    args = p.parse_args(argv)
    if args.runs < 5: p.error(f'--runs must be at least 5, got {args.runs}')
    if min(args.micro_bs, args.accum, args.steps, args.width) < 1: p.error('--micro-bs, --accum, --steps and --width must be positive')
    return args

def mlp(width:int)->nn.Module:
    "512 -> width -> width -> 10: 3.2 million parameters at width 1536, the same initial weights every time"
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(512, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))

def data(n:int)->list:
    "`n` random samples of 512 features and 10 classes (only the compute and communication matter here)"
    g = torch.Generator().manual_seed(0)
    return list(zip(torch.randn(n, 512, generator=g), torch.randint(0, 10, (n,), generator=g)))

class TrainTimer(Callback):
    "Wall seconds of the training phase of an epoch (validation excluded), started together on every process"
    order = -1000
    def before_train(self):
        dist.barrier()
        self.start = time.perf_counter()
    def after_train(self): self.seconds = time.perf_counter()-self.start

def train_once(config:str, args, rank:int, world:int)->dict:
    "One training epoch with `config` on this process's share of the data; its time and communication"
    accum_bs,n_micro = args.micro_bs*args.accum,args.steps*args.accum
    train = rank_items(data(world*args.micro_bs*n_micro), args.micro_bs, rank, world)
    dls = DataLoaders(DataLoader(train, bs=args.micro_bs), DataLoader(data(2), bs=2), device='cpu')
    accumulation = FastaiGradientAccumulation(accum_bs) if config=='fastai' else GradientAccumulation(accum_bs)
    learn = Learner(dls, DistributedDataParallel(mlp(args.width)), loss_func=nn.CrossEntropyLoss(), opt_func=SGD,
                    cbs=[accumulation, AllReduceCounter(), TrainTimer()])
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    return {'seconds': learn.train_timer.seconds, 'rounds': learn.all_reduce_counter.rounds,
            'steps': learn.all_reduce_counter.steps, 'micro_batches': learn.train_iter}

def worker(args):
    "Run in each process: a warm-up round, then `runs` timed rounds alternating the two callbacks"
    dist.init_process_group('gloo')
    rank,world = dist.get_rank(),dist.get_world_size()
    torch.set_num_threads(1)
    raw = {c: [] for c in CONFIGS}
    for round_ in range(args.runs+1):
        for config in (CONFIGS if round_%2 else CONFIGS[::-1]):
            result = train_once(config, args, rank, world)
            if round_: raw[config].append(result)
    if rank==0: args.results.write_text(json.dumps({'world_size': world, 'runs': raw}))
    gc.collect()   # DDP models in reference cycles go before the group: gloo otherwise aborts at exit, now and then
    dist.barrier()
    dist.destroy_process_group()

def summary(raw:dict, args)->list:
    "Markdown lines: medians, rounds and the ratio"
    med = {c: statistics.median(r['seconds'] for r in raw[c]) for c in CONFIGS}
    first = {c: raw[c][0] for c in CONFIGS}
    rows = [f"| {c} | {med[c]:.3f} | {first[c]['rounds']} | {first[c]['steps']} | {first[c]['micro_batches']} |" for c in CONFIGS]
    ratio = med['fastxtend_accum']/med['fastai']
    params = sum(p.numel() for p in mlp(args.width).parameters())
    return [f"2 processes on gloo (CPU), an MLP of {params/1e6:.2f} M parameters ({4*params/2**20:.1f} MiB of float32 gradients), "
            f"micro-batches of {args.micro_bs} samples per process, {args.accum} micro-batches per optimizer step, "
            f"{args.steps} steps per timed epoch; median of {args.runs} alternating runs each:", '',
            '| callback | median wall (s) | all-reduce rounds | optimizer steps | micro-batches |', '|---|---|---|---|---|', *rows, '',
            f"fastxtend_accum / fastai, wall time (ratio of medians): **{ratio:.3f}** ({1/ratio:.2f}x faster); "
            f"all-reduce rounds: {first['fastxtend_accum']['rounds']} vs {first['fastai']['rounds']}."]

def main():
    args = parse_args()
    if 'RANK' in os.environ: return worker(args)
    sys.path.insert(0, str(Path(__file__).parent))
    from common import command, machine, write_results
    info = {'command': command(), **machine()}
    with tempfile.TemporaryDirectory() as d:
        results = Path(d)/'results.json'
        start = time.perf_counter()
        launch_local(__file__, *sys.argv[1:], f'--results={results}', nproc=2, timeout=600)
        info['launch_seconds'] = round(time.perf_counter()-start, 1)
        raw = json.loads(results.read_text())
    info['world_size'] = raw['world_size']
    details = ("## Method\n\nOne `torch.distributed.run` launch of 2 processes on this machine (loopback, gloo, one PyTorch thread "
               "each) by `fastxtend_accum.distributed.launch_local`. Each round trains one epoch with each callback from the same "
               "initial weights, in alternating order; the time is the training phase on process 0, started after a barrier. "
               "Rounds are counted by `AllReduceCounter`, a DDP communication hook.")
    write_results(args.out, 'DDP: all-reduce once per optimizer step (no_sync) vs every micro-batch', summary(raw['runs'], args),
                  info, details, raw)

if __name__ == '__main__': main()
