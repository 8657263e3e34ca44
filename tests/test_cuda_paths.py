"""The CUDA paths of the de-biasing methods (issue 21) and of the bias card (issue 25): the same
checks as their CPU tests, on the GPU, compared with the CPU where the arithmetic is deterministic.

Skipped where no CUDA device is. ``CUDA_PATHS_DEVICE=cpu`` runs every check on the CPU instead:
that is how the checks themselves are tried on a machine without a GPU. On a lent GPU they run
as part of the CUDA test cases (``pytest tests/test_cuda_paths.py``; docs/gpu.md)."""
import csv
import json
import math
import os
import subprocess
import sys

import pytest
import torch
from torch.nn import functional as F

from debias.albar import ALBAR
from debias.fame import foreground_mask
from debias.mix import TorchvisionMix
from engine.runner import engine_kernels
from supervised.step import ClassifierStep
from tests.test_bias_card import CFG, ENV, ROOT, tiny  # noqa: F401 (fixture)
from tests.test_debias_methods import _bn_net, _moving_square
from tests.test_distributed import launch
from tests.test_main import run_main, tiny_config, ucf_root  # noqa: F401 (fixture)

DEVICE = os.environ.get('CUDA_PATHS_DEVICE', 'cuda')
pytestmark = pytest.mark.skipif(DEVICE == 'cuda' and not torch.cuda.is_available(), reason='needs a CUDA device')


def test_fame_mask_on_the_device_is_the_cpu_mask():
    """The same share of pixels, the moving square's path among them; on a clip of noise (no
    ties among the scores) the same pixels, up to swaps at the threshold from float rounding
    (top-k breaks exact ties in its own order on each device)."""
    raw, path = _moving_square()
    for refine in (False, True):
        cpu, dev = foreground_mask(raw, refine=refine), foreground_mask(raw.to(DEVICE), refine=refine)
        assert dev.device.type == DEVICE and dev.sum().item() == cpu.sum().item() == 512
    assert foreground_mask(raw.to(DEVICE), refine=False).cpu()[0][path].all()
    noise = torch.rand(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    for refine, most in ((False, 4), (True, 40)):
        cpu, dev = foreground_mask(noise, refine=refine), foreground_mask(noise.to(DEVICE), refine=refine).cpu()
        assert (cpu != dev).sum().item() <= most, refine


def test_albar_bf16_on_the_device_follows_fp32():
    """The double backprop of ALBAR's gradient penalty under bf16 autocast on the device: finite,
    and the gradient points where the fp32 one does."""
    model, net = _bn_net()
    model.to(DEVICE)
    torch.manual_seed(0)
    batch = {'video': torch.randn(4, 1, 3, 4, 8, 8, device=DEVICE), 'label': torch.tensor([0, 1, 2, 3], device=DEVICE)}
    step = ClassifierStep(net, torch.nn.CrossEntropyLoss(), method=ALBAR())
    grads = {}
    for amp in (False, True):
        model.zero_grad()
        with torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=amp):
            out = step.train_step(batch)
        out.loss.backward()
        grads[amp] = torch.cat([p.grad.flatten() for p in model.parameters()])
        assert torch.isfinite(out.loss) and torch.isfinite(grads[amp]).all()
        assert out.metrics['loss_grad_penalty'] > 0
    assert F.cosine_similarity(grads[False], grads[True], dim=0).item() > 0.9


@pytest.mark.parametrize('kt,frames,side', [(3, 2, 12), (7, 4, 28), (5, 3, 12)])
def test_bf16_conv3d_weight_gradients_on_short_clips(kt, frames, side):
    """The geometry where oneDNN's bf16 weight gradients are wrong on the CPU (fewer frames than
    the temporal kernel; docs/bad-input.md): on the device, with the kernels the engine uses there
    (on the CPU: oneDNN off, ``engine.runner.cpu_bf16_guard``), bf16 is within rounding of fp32."""
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(16, 16, (kt, 3, 3), padding=(kt // 2, 1, 1), bias=False).to(DEVICE)
    x = torch.randn(8, 16, frames, side, side, device=DEVICE)
    grads = []
    for amp in (True, False):
        conv.weight.grad = None
        with engine_kernels(torch.device(DEVICE), 'bf16'):
            with torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=amp):
                y = conv(x)
            y.float().square().mean().backward()
        grads.append(conv.weight.grad.clone())
    assert ((grads[0] - grads[1]).norm() / grads[1].norm()).item() < 0.02


@pytest.mark.parametrize('name,alpha', [('mixup', 0.8), ('cutmix', 1.0)])
def test_mixup_cutmix_on_the_device_match_the_cpu(name, alpha):
    torch.manual_seed(0)
    x, y = torch.randn(4, 2, 3, 4, 8, 10), torch.tensor([0, 1, 2, 3])
    torch.manual_seed(5)
    cpu = TorchvisionMix(name, alpha, 5).transform(x, y)
    torch.manual_seed(5)
    dev = TorchvisionMix(name, alpha, 5).transform(x.to(DEVICE), y.to(DEVICE))
    assert dev.video.device.type == DEVICE and dev.target.device.type == DEVICE
    assert torch.allclose(dev.video.cpu(), cpu.video, atol=1e-6)
    assert torch.allclose(dev.target.cpu(), cpu.target, atol=1e-6)


def _log_device(out):
    return next(line for line in (out / 'log.txt').read_text().splitlines() if '| device ' in line)


def test_main_each_method_bf16_on_the_device(tmp_path, ucf_root):  # noqa: F811
    """One epoch of each new method through main.py on the device in bf16 (ALBAR also with
    gradient clipping): finite losses, and the run says which device it used."""
    cfg = tiny_config(tmp_path / 'tiny.yaml', ucf_root)
    runs = {'fame': [], 'mixup': [], 'cutmix': [], 'albar': ['optimizer.clip_grad=0.5'], 'stillmix': []}
    for name, extra in runs.items():
        out = tmp_path / name
        run_main([cfg, '--output-dir', out, '--device', DEVICE, '--amp', 'bf16', 'optimizer.epochs=1',
                  f'augment.name={name}', *extra], timeout=600)
        assert f'device {DEVICE}' in _log_device(out), name
        row = next(csv.DictReader(open(out / 'metrics.csv')))
        assert math.isfinite(float(row['train_loss'])) and math.isfinite(float(row['val_loss'])), name


def test_albar_under_torchrun_on_the_device(tmp_path, ucf_root):  # noqa: F811
    """ALBAR's double backprop through DistributedDataParallel (NCCL on a GPU, gloo on the CPU),
    one process per device; its losses are the single-process run's."""
    cfg = tiny_config(tmp_path / 'tiny.yaml', ucf_root, epochs=1)
    nproc = 2 if DEVICE == 'cpu' else max(1, min(2, torch.cuda.device_count()))
    rows = {}
    for n in sorted({1, nproc}):
        out = tmp_path / f'np{n}'
        args = ['main.py', cfg, '--output-dir', str(out), '-j', '0', '--device', DEVICE, 'augment.name=albar']
        if n == 1:  # through torchrun as well: the DDP wrapper with a world of one
            args = ['-m', 'torch.distributed.run', '--nproc_per_node', '1',
                    '--master_port', str(29600 + os.getpid() % 1000), *args]
        launch(args, n, timeout=600)
        assert f'device {DEVICE}' in _log_device(out)
        rows[n] = next(csv.DictReader(open(out / 'metrics.csv')))
    for key in ('train_loss', 'train_loss_grad_penalty', 'val_loss'):
        assert float(rows[1][key]) == pytest.approx(float(rows[nproc][key]), abs=1e-3), key


def _card(args, device):
    res = subprocess.run([sys.executable, 'tools/bias_card.py', *args, '--device', device], cwd=ROOT,
                         capture_output=True, text=True, timeout=900, env=ENV)
    assert res.returncode == 0, res.stderr[-3000:]


def test_bias_card_on_the_device_matches_the_cpu(tiny, tmp_path):  # noqa: F811
    """Every measure of the card on the device. The accuracy-based ones evaluate fixed weights on
    fixed clips, so they give the CPU's figures (up to a video whose top two logits are within
    float rounding); the dynamic score trains a mimic, so it is only checked to be a score."""
    over, ckpt = tiny
    docs = {}
    for device in sorted({'cpu', DEVICE}):
        out = tmp_path / device
        _card([CFG, '--pretrain', str(ckpt), '--output-dir', str(out), '--mimic-epochs', '1', *over], device)
        docs[device] = json.loads((out / 'bias_card.json').read_text())
        assert docs[device]['device'].startswith(device)
    cpu, dev = docs['cpu']['measures'], docs[DEVICE]['measures']
    assert list(dev) == list(cpu)
    n = docs['cpu']['n_videos']
    for name in ('temporality', 'conflict'):
        assert abs(dev[name]['value'] - cpu[name]['value']) <= 1.0 / n + 1e-9, name
    assert abs(dev['representation']['value'] - cpu['representation']['value']) < 0.05
    assert 0.0 <= dev['dynamic']['value'] <= 1.0 and len(dev['dynamic']['ci95']) == 2
