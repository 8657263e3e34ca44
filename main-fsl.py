"""Few-shot evaluation of a video encoder (optionally trained on the base classes first).

    python main-fsl.py configs/sthv2-fs/res3d18-1shot.yaml --pretrain checkpoints/k400/res3d18/model_best.pth.tar
    python main-fsl.py configs/scenemotion-fs/res3d18-1shot.yaml --pretrain runs/sm/model_best.pth.tar --output-dir runs/fs
    python main-fsl.py CFG --pretrain CKPT dataset.n_batch=100 fewshot.cache=true

With a ``dataset.args.base`` split (and an ``optimizer``) the encoder is first trained on it (the same engine
and step as main.py); then all episodes are drawn from the ``novel`` split, the videos they use
are encoded once, and every episode's ``model_fs`` head is fitted and scored (all together).
Writes ``episodes.csv`` (per-episode accuracy) and ``results.json`` (``Acc@1``, ``ci95``,
``episodes``) in the run folder.
"""
from engine.args import base_parser
from engine.runner import run_entry
from fewshot.run import main


def get_args_parser():
    return base_parser('Few-shot evaluation (CloserBaseline / MetaBaseline) of a video encoder.')


if __name__ == '__main__':
    run_entry(main, get_args_parser().parse_intermixed_args())
