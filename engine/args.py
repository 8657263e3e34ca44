"""Command-line flags shared by the entry scripts (the authors' flags plus ours)."""
import argparse


def base_parser(description, two_configs=False):
    """Parser with every flag the entry scripts share.

    Trailing ``key=value`` words are config overrides; in the two-config scripts, keys of the
    second (spatial / DRL) config take the prefix ``sp.`` (e.g. ``sp.optimizer.epochs=1``).
    """
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('config', help='YAML config (e.g. configs/k400/res3d18.yaml)')
    if two_configs:
        p.add_argument('sp_config', help='second config: spatial model and DRL settings '
                                         '(e.g. configs/drl/fgsm-e3-i5.yaml); override its keys as sp.KEY=VALUE')
    p.add_argument('overrides', nargs='*', default=[],
                   help='config overrides KEY=VALUE, values parsed as YAML (e.g. optimizer.epochs=1)')
    p.add_argument('--pretrain', default=None, help='checkpoint to start from (head re-initialised unless model.copy_head)')
    p.add_argument('--output-dir', default=None, help='run folder (default: checkpoints/<config path>)')
    p.add_argument('--no-resume', action='store_true',
                   help='start over even if the run folder has a checkpoint (a finished run is trained again)')
    p.add_argument('--resume-changed', action='store_true',
                   help='resume although the config differs from the checkpoint\'s: weights and optimiser '
                        'state are kept, the new lr / schedule / epochs apply (README, "Resuming")')
    p.add_argument('-e', '--evaluate', action='store_true', help='only run the final multi-clip test')
    p.add_argument('--debug', action='store_true', help='tiny run: batch 2, 4 batches per loop, folder suffix _debug')
    p.add_argument('-j', '--workers', type=int, default=None,
                   help='DataLoader workers per process (default: dataset.num_workers, else min(4, CPUs))')
    p.add_argument('-b', '--batch-size', type=int, default=None, help='global batch size (overrides dataset.batch_size)')
    p.add_argument('-p', '--print-freq', type=int, default=20, help='log every N batches when not on a terminal')
    p.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'], help='auto = CUDA when available')
    p.add_argument('--gpu', type=int, default=None, help='GPU index for single-process runs (authors\' flag)')
    p.add_argument('--seed', type=int, default=None, help='random seed (default: config seed, else 0)')
    p.add_argument('--log', action='store_true', help='authors\' flag, a no-op: logging to log.txt and TensorBoard is always on')
    p.add_argument('--dist-url', default='env://', help='process-group init method (torchrun sets env://)')
    p.add_argument('--dist-backend', default=None, help='gloo (CPU) or nccl (CUDA); default by device')
    p.add_argument('--amp', default='off', choices=['off', 'bf16', 'fp16'],
                   help='mixed precision; bf16 is recommended on recent GPUs, keep off on CPUs')
    p.add_argument('--channels-last', action='store_true', help='channels-last(-3d) memory format')
    p.add_argument('--compile', action='store_true', help='torch.compile the models')
    if two_configs:
        p.add_argument('--scratch', action='store_true', help='do not load the baseline video model')
        p.add_argument('--ckp', default='checkpoint.pth.tar',
                       help='file name of the baseline checkpoint inside its run folder')
    return p
