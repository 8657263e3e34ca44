"""Shared by tools/demo.py and tools/study.py: run entry-script commands resumably and measure
a checkpoint the way the paper does (dynamic score, frozen clips, transfer, few-shot)."""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCORING = 'configs/scoring/res2d18-scratch.yaml'
# DRL and scoring configs keep the authors' 25-epoch recipe; on SceneMotion they run about as
# long as the pretraining (6 epochs, learning rate divided by 10 after epoch 4)
DRL_SHORT = ['sp.optimizer.epochs=6', 'sp.optimizer.schedule.args.step_size=4']


def run(cmd, out_dir, result='results.json', log=print):
    """Run ``python <cmd>`` from the repo root unless ``out_dir/result`` exists; return the JSON."""
    path = os.path.join(ROOT, out_dir, result)
    shown = 'python ' + ' '.join(cmd)
    if os.path.isfile(path):
        log(f'[done already] {shown}')
    else:
        log(f'\n$ {shown}')
        t0 = time.time()
        res = subprocess.run([sys.executable, *cmd], cwd=ROOT)
        if res.returncode != 0:
            sys.exit(f'step failed (exit {res.returncode}): {shown}')
        log(f'  ({time.time() - t0:.0f} s)')
    with open(path) as f:
        return json.load(f)


def measure(ckpt, cfg, transfer_cfg, out, extra=(), fewshot_cfg=None, log=print, score_args=DRL_SHORT):
    """Measure one checkpoint; every run goes to a sub-folder of ``out``.

    Args:
        score_args: overrides of the scoring run (its length).
    Returns:
        dict with ``dynamic_score``, ``frozen`` (frozen-clip Acc@1 on pretrain-val),
        ``transfer`` (Acc@1 after fine-tuning) and, with ``fewshot_cfg``, ``fewshot``/``fewshot_ci``.
    """
    extra = list(extra)
    score = run(['main-drl.py', cfg, SCORING, *score_args, '--pretrain', ckpt, '--output-dir', f'{out}/scoring',
                 *extra],
                f'{out}/scoring', log=log)
    temp = run(['tools/temporality.py', cfg, '--pretrain', ckpt, '--output-dir', f'{out}/temporality', *extra],
               f'{out}/temporality', 'temporality.json', log=log)
    trans = run(['main.py', transfer_cfg, '--pretrain', ckpt, '--output-dir', f'{out}/transfer', *extra],
                f'{out}/transfer', log=log)
    m = {'dynamic_score': score['dynamic_score'], 'frozen': temp['Acc@1_frozen'], 'transfer': trans['Acc@1']}
    if fewshot_cfg:
        fs = run(['main-fsl.py', fewshot_cfg, '--pretrain', ckpt, '--output-dir', f'{out}/fewshot', *extra],
                 f'{out}/fewshot', log=log)
        m.update(fewshot=fs['Acc@1'], fewshot_ci=fs['ci95'])
    return m
