"""`make demo`: the project's main job on the embedded SceneMotion benchmark, end to end.

Pretrains a baseline 3D ResNet, trains one DRL variant from it, then measures both the way the
paper does: dynamic score (a static model trained to mimic each), accuracy on frozen clips,
fine-tuning transfer to the scene-independent split, and few-shot accuracy on novel motions.
Every step is a plain command of the entry scripts (printed as it runs, so each figure can be
reproduced by hand); finished steps are skipped when the demo is run again.

    python tools/demo.py [--out runs/demo] [--drl freeze|shuffle|fgsm] [--fresh]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRE = 'configs/scenemotion/res3d18.yaml'
DRL = {  # variant -> (script, DRL config, extra overrides)
    'freeze': ('main-drl-dir.py', 'configs/drl/kd0.5-freeze.yaml', []),
    'shuffle': ('main-drl-dir.py', 'configs/drl/kd0.5-shuffle.yaml', []),
    'fgsm': ('main-drl.py', 'configs/drl/fgsm-e3-i5-scratch.yaml', []),
}
SCORING = 'configs/scoring/res2d18-scratch.yaml'
TRANSFER = 'configs/scenemotion-transfer/res3d18.yaml'
FEWSHOT = 'configs/scenemotion-fs/res3d18-5shot.yaml'


def run(cmd, out_dir, result='results.json'):
    """Run one command unless ``out_dir/result`` exists; return the parsed JSON result."""
    path = os.path.join(out_dir, result)
    shown = ' '.join(cmd)
    if os.path.isfile(path):
        print(f'[done already] {shown}', flush=True)
    else:
        print(f'\n$ {shown}', flush=True)
        t0 = time.time()
        res = subprocess.run([sys.executable, *cmd], cwd=ROOT)
        if res.returncode != 0:
            sys.exit(f'demo: step failed (exit {res.returncode}): {shown}')
        print(f'  ({time.time() - t0:.0f} s)', flush=True)
    with open(path) as f:
        return json.load(f)


def measure(name, ckpt, out):
    """Dynamic score, frozen-clip accuracy, transfer and few-shot accuracy of one checkpoint."""
    d = os.path.join(out, name)
    score = run(['main-drl.py', PRE, SCORING, '--pretrain', ckpt, '--output-dir', f'{d}/scoring'],
                f'{d}/scoring')
    temp = run(['tools/temporality.py', PRE, '--pretrain', ckpt, '--output-dir', f'{d}/temporality'],
               f'{d}/temporality', 'temporality.json')
    trans = run(['main.py', TRANSFER, '--pretrain', ckpt, '--output-dir', f'{d}/transfer'], f'{d}/transfer')
    fs = run(['main-fsl.py', FEWSHOT, '--pretrain', ckpt, '--output-dir', f'{d}/fewshot'], f'{d}/fewshot')
    return {'dynamic_score': score['dynamic_score'], 'frozen': temp['Acc@1_frozen'],
            'transfer': trans['Acc@1'], 'fewshot': fs['Acc@1'], 'fewshot_ci': fs['ci95']}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default='runs/demo', help='folder for every run of the demo')
    ap.add_argument('--drl', default='freeze', choices=sorted(DRL), help='DRL variant to compare')
    ap.add_argument('--fresh', action='store_true', help='delete --out first')
    a = ap.parse_args()
    out = a.out
    if a.fresh and os.path.isdir(os.path.join(ROOT, out)):
        shutil.rmtree(os.path.join(ROOT, out))
    t0 = time.time()
    base_dir = f'{out}/baseline'
    base = run(['main.py', PRE, '--output-dir', base_dir], base_dir)
    base_ckpt = f'{base_dir}/checkpoint.pth.tar'
    script, drl_cfg, extra = DRL[a.drl]
    drl_dir = f'{out}/drl-{a.drl}'
    drl = run([script, PRE, drl_cfg, '--pretrain', base_ckpt, '--output-dir', drl_dir, *extra], drl_dir)
    rows = {'baseline': (base, measure('baseline', base_ckpt, out)),
            f'DRL-{a.drl}': (drl, measure(f'drl-{a.drl}', f'{drl_dir}/checkpoint.pth.tar', out))}
    print_table(rows, out, time.time() - t0)


def print_table(rows, out, seconds):
    head = ['model', 'pretrain-val Acc@1', 'frozen-clip Acc@1', 'dynamic score', 'transfer Acc@1',
            '5-shot Acc@1']
    print('\nSceneMotion demo (chance: 12.5% on pretrain/transfer, 20% for 5-way few-shot)')
    print(' | '.join(head))
    print(' | '.join('---' for _ in head))
    for name, (res, m) in rows.items():
        print(f"{name} | {res['Acc@1']:.1f} | {m['frozen']:.1f} | {m['dynamic_score']:.3f} | "
              f"{m['transfer']:.1f} | {m['fewshot']:.1f} ± {m['fewshot_ci']:.1f}")
    print(f'\nrun folders: {out}/ (baseline, drl-*, each with scoring/ temporality/ transfer/ fewshot/)')
    print(f'total time: {seconds / 60:.1f} min')


if __name__ == '__main__':
    main()
