"""`make demo`: the project's main job on the embedded SceneMotion benchmark, end to end.

Pretrains a baseline 3D ResNet, trains one DRL variant from it, then measures both the way the
paper does: dynamic score (a static model trained to mimic each), accuracy on frozen clips,
fine-tuning transfer to the scene-independent split, and few-shot accuracy on novel motions.
Every step is a plain command of the entry scripts (printed as it runs, so each figure can be
reproduced by hand); finished steps are skipped when the demo is run again.

    python tools/demo.py [--out runs/demo] [--drl freeze|shuffle|fgsm] [--fresh]
"""
import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools.runs import DRL_SHORT, ROOT, measure, run  # noqa: E402

PRE = 'configs/scenemotion/res3d18.yaml'
TRANSFER = 'configs/scenemotion-transfer/res3d18.yaml'
FEWSHOT = 'configs/scenemotion-fs/res3d18-5shot.yaml'
DRL = {  # variant -> (script, DRL config)
    'freeze': ('main-drl-dir.py', 'configs/drl/kd0.5-freeze.yaml'),
    'shuffle': ('main-drl-dir.py', 'configs/drl/kd0.5-shuffle.yaml'),
    'fgsm': ('main-drl.py', 'configs/drl/fgsm-e3-i5-scratch.yaml'),
}


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
    base = run(['main.py', PRE, '--output-dir', f'{out}/baseline'], f'{out}/baseline')
    base_ckpt = f'{out}/baseline/checkpoint.pth.tar'
    script, drl_cfg = DRL[a.drl]
    drl_dir = f'{out}/drl-{a.drl}'
    drl = run([script, PRE, drl_cfg, *DRL_SHORT, '--pretrain', base_ckpt, '--output-dir', drl_dir], drl_dir)
    rows = {}
    for name, res, ckpt, d in (('baseline', base, base_ckpt, f'{out}/baseline'),
                               (f'DRL-{a.drl}', drl, f'{drl_dir}/checkpoint.pth.tar', drl_dir)):
        rows[name] = (res, measure(ckpt, PRE, TRANSFER, d, fewshot_cfg=FEWSHOT))
    print_table(rows, out, time.time() - t0)


def print_table(rows, out, seconds):
    head = ['model', 'pretrain-val Acc@1', 'frozen-clip Acc@1', 'dynamic score', 'transfer Acc@1',
            '5-way 5-shot Acc@1']
    print('\nSceneMotion demo (chance: 12.5 % for the 8 pretrain/transfer classes, 20 % for 5-way)')
    print(' | '.join(head))
    print(' | '.join('---' for _ in head))
    for name, (res, m) in rows.items():
        print(f"{name} | {res['Acc@1']:.1f} | {m['frozen']:.1f} | {m['dynamic_score']:.3f} | "
              f"{m['transfer']:.1f} | {m['fewshot']:.1f} ± {m['fewshot_ci']:.1f}")
    print(f'\nrun folders: {out}/baseline and {out}/drl-*, each with scoring/ temporality/ transfer/ fewshot/')
    print(f'total time: {seconds / 60:.1f} min')


if __name__ == '__main__':
    main()
