"What every benchmark records next to its numbers: the command, the date and the machine, and how busy it was"
from __future__ import annotations
import datetime, json, os, platform, shlex, subprocess, sys
from pathlib import Path

import fastai, torch

def command()->str:
    "The command line that ran this script, to copy and run again from the repository root"
    return 'python ' + shlex.join(sys.argv)

def cpu_model()->str:
    "Name of the CPU, from /proc/cpuinfo where there is one"
    try: return next(l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines() if l.startswith('model name'))
    except (OSError, StopIteration): return platform.processor() or 'unknown'

def git_commit()->str:
    "Commit of the repository, with `-dirty` when the working tree has changes"
    try: return subprocess.run(['git', 'describe', '--always', '--dirty'], capture_output=True, text=True,
                               cwd=Path(__file__).parent).stdout.strip() or 'unknown'
    except OSError: return 'unknown'

def machine()->dict:
    "Machine, versions and load, to judge and reproduce the numbers"
    return {'date_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            'nproc': os.cpu_count(), 'cpus_usable': len(os.sched_getaffinity(0)), 'cpu': cpu_model(),
            'platform': platform.platform(), 'python': platform.python_version(),
            'torch': torch.__version__, 'fastai': fastai.__version__, 'torch_threads': torch.get_num_threads(),
            'git': git_commit(), 'load_average_start': os.getloadavg()}

def busy(info:dict)->bool:
    "Whether other work was using the CPUs: 1-minute load average above half the CPUs at the start (at the end it counts the benchmark's own processes)"
    return info['load_average_start'][0] > info['cpus_usable']/2

def load_note(info:dict)->str:
    "A line saying whether the numbers can be trusted as final"
    loads = f"1/5/15-minute load average {info['load_average_start']} at the start, {info['load_average_end']} at the end, on {info['cpus_usable']} CPUs"
    if busy(info): return f"**PRELIMINARY: the machine was busy with other work** ({loads}). Re-run the command on a quiet machine."
    return f"The machine was quiet ({loads})."

def write_results(path:Path, title:str, summary:list, info:dict, details:str, raw:dict):
    "Write a markdown report: summary lines, command, machine, method, and the raw numbers as JSON"
    info['load_average_end'] = os.getloadavg()
    lines = [f'# {title}', '', *summary, '', load_note(info), '', '## Command', '', '```sh', info['command'], '```', '',
             '## Machine', '', *[f'- {k}: {v}' for k,v in info.items() if k!='command'], '', details.strip(), '',
             '## Raw numbers', '', '```json', json.dumps(raw, indent=1), '```', '']
    Path(path).write_text('\n'.join(lines))
    print('\n'.join(summary + ['', load_note(info), f'written to {path}']))
