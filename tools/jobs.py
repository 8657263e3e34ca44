"""A small resumable job graph for tools/study.py: entry-script commands with dependencies, run
``jobs`` at a time, each skipped when its result file already exists.

Every command is a plain ``python <script> ...`` line run from the repository root, so each
figure of a results page can be reproduced by hand.
"""
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Job:
    """One command. ``result``: the file (relative to the repo) whose existence means done."""
    key: str
    cmd: list
    result: str
    deps: list = field(default_factory=list)
    seconds: float = 0.0
    state: str = 'todo'  # todo | held (filtered out, not run) | running | done | failed | skipped

    @property
    def shown(self):
        return 'python ' + ' '.join(self.cmd)


class Graph:
    """Runs :class:`Job` s respecting ``deps``; a failed job skips its dependants, others go on.

    Args:
        jobs: how many commands run at once; threads: ``OMP_NUM_THREADS`` of each.
        on_done: called with the graph after every finished job (e.g. to rewrite a page).
    """

    def __init__(self, jobs=2, threads=1, log=print, on_done=None):
        self.items, self.jobs, self.threads, self.log, self.on_done = {}, jobs, threads, log, on_done

    def add(self, key, cmd, result, deps=()):
        if key in self.items:
            return self.items[key]
        missing = [d for d in deps if d not in self.items]
        if missing:
            raise KeyError(f'job {key}: unknown dependencies {missing}')
        job = Job(key, list(cmd), result, list(deps))
        if os.path.isfile(os.path.join(ROOT, result)):
            job.state = 'done'
        self.items[key] = job
        return job

    def select(self, keep):
        """Hold every job still to do whose key fails ``keep(key)``: it is not run (nor what
        depends on it), and keeps its place in the graph (the page lists it as not run)."""
        for job in self.items.values():
            if job.state == 'todo' and not keep(job.key):
                job.state = 'held'
        return self

    def times(self):
        """``(wall, busy)`` seconds of the finished jobs: first start to last end, and their sum,
        read from the ``job_time.json`` files (so a resumed study reports all its runs)."""
        spans = []
        for job in self.items.values():
            path = os.path.join(ROOT, os.path.dirname(job.result), 'job_time.json')
            if job.state == 'done' and os.path.isfile(path):
                with open(path) as f:
                    t = json.load(f)
                spans.append((t['start'], t['end']))
        if not spans:
            return 0.0, 0.0
        return max(e for _, e in spans) - min(s for s, _ in spans), sum(e - s for s, e in spans)

    def _ready(self, job):
        return job.state == 'todo' and all(self.items[d].state == 'done' for d in job.deps)

    def _skip_blocked(self):
        for job in self.items.values():
            if job.state == 'todo' and any(self.items[d].state in ('failed', 'skipped') for d in job.deps):
                job.state = 'skipped'
                self.log(f'[skipped: a dependency failed] {job.shown}')

    def run(self):
        env = dict(os.environ, OMP_NUM_THREADS=str(self.threads), MKL_NUM_THREADS=str(self.threads))
        running = {}
        while True:
            self._skip_blocked()
            for job in self.items.values():
                if len(running) >= self.jobs:
                    break
                if self._ready(job):
                    self.log(f'$ {job.shown}')
                    job.state, job.seconds = 'running', time.time()
                    folder = os.path.join(ROOT, os.path.dirname(job.result))
                    os.makedirs(folder, exist_ok=True)
                    out = open(os.path.join(folder, 'stdout.log'), 'w')  # the full output
                    running[job.key] = (subprocess.Popen([sys.executable, *job.cmd], cwd=ROOT, env=env,
                                                         stdout=out, stderr=subprocess.STDOUT), out)
            if not running:
                break
            time.sleep(1)
            for key, (proc, out) in list(running.items()):
                if proc.poll() is None:
                    continue
                out.close()
                job = self.items[key]
                job.seconds = time.time() - job.seconds
                ok = proc.returncode == 0 and os.path.isfile(os.path.join(ROOT, job.result))
                job.state = 'done' if ok else 'failed'
                if ok:  # kept beside the result: a later run of the study reports the real times
                    with open(os.path.join(ROOT, os.path.dirname(job.result), 'job_time.json'), 'w') as f:
                        json.dump({'start': time.time() - job.seconds, 'end': time.time(), 'key': job.key}, f)
                self.log(f'  [{job.state} in {job.seconds:.0f} s, exit {proc.returncode}] {job.key}')
                if not ok:
                    with open(out.name) as f:
                        self.log('  ' + ''.join(f.readlines()[-5:]).strip())
                del running[key]
                if self.on_done is not None:
                    self.on_done(self)
        return self
