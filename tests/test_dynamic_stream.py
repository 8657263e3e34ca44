"""The dynamic score's streaming mode (measure.mimic_stream) on the tiny generated SceneMotion of
tests/test_dynamic_score.py: no frame bank is built, the automatic rule, the same centre crops
and the same mimic as in memory, and the recipe option streaming refuses."""
import dataclasses
import os

import pytest
import torch

from core.errors import UserError
from engine.checkpoint import save_checkpoint
from measure import mimic as M
from measure import mimic_stream as S
from measure.dynamic import dynamic_score
from models import build_model
from tests.test_bias_card import bad
from tests.test_dynamic_score import FAST, TINY, FrameMean, cfg  # noqa: F401  (cfg is a fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def no_bank(*a, **k):
    raise AssertionError('a frame bank was built')


def test_automatic_rule_streams_without_a_frame_bank(cfg, monkeypatch):  # noqa: F811
    monkeypatch.setattr(S, 'BANK_BUDGET', 1024)
    monkeypatch.setattr(M, 'load_bank', no_bank)  # guard: streaming never decodes a split into memory
    r = dynamic_score(FrameMean(seed=1).eval(), cfg, device='cpu', seed=5, progress=False, recipe=FAST)
    assert r['stream'] is True and r['split'] == 'transfer/test' and r['n'] == 16 and r['n_train'] == 30
    assert 0.0 <= r['value'] <= 1.0 and r['ci95'][0] <= r['value'] + 1e-9 and r['value'] <= r['ci95'][1] + 1e-9
    assert r['per_class'] and all(0.0 <= v <= 1.0 for v in r['per_class'].values())
    assert 0.0 <= r['agreement_train'] <= 1.0


def test_rule_compares_the_bank_estimate_with_the_budget(cfg, monkeypatch):  # noqa: F811
    specs = [M.scoring_splits(cfg)[0], *M.scoring_splits(cfg)[1]]
    # 46 videos × 1 clip × 4 frames × 32² × 3 bytes
    splits = [S.SplitStream(cfg, s) for s in specs]
    assert S.bank_bytes(cfg, splits) == 46 * 4 * 32 * 32 * 3
    stream, why, opened = S.choose(cfg, specs, None)
    assert stream is False and 'fit the budget of 2.00 GiB' in why and len(opened) == 5  # the default budget
    monkeypatch.setattr(S, 'BANK_BUDGET', 46 * 4 * 32 * 32 * 3 - 1)
    stream, why, _ = S.choose(cfg, specs, None)
    assert stream is True and 'exceed' in why
    monkeypatch.setattr(S, 'BANK_BUDGET', 46 * 4 * 32 * 32 * 3)
    assert S.choose(cfg, specs, None)[0] is False
    # forced either way, nothing is opened
    assert S.choose(cfg, specs, True)[::2] == (True, None) and S.choose(cfg, specs, False)[::2] == (False, None)


def test_same_centre_crops_and_same_mimic_as_in_memory(cfg):  # noqa: F811
    teacher = FrameMean(seed=1).eval()
    scored, train = M.scoring_splits(cfg)
    bank, split = M.load_bank(cfg, scored), S.SplitStream(cfg, scored)
    o_bank, o_stream = M.predict(teacher, bank, device='cpu'), S.predict(teacher, split, device='cpu')
    assert o_stream.shape == (16, 8) and torch.allclose(o_stream, o_bank, atol=1e-5)
    assert torch.equal(split.labels, bank.labels) and split.good.tolist() == list(range(16))
    # the mimic: same order, random crops, blends and frames drawn; so the same weights
    banks, splits = [M.load_bank(cfg, s) for s in train[:2]], [S.SplitStream(cfg, s) for s in train[:2]]
    cached = [S.predict(teacher, s, device='cpu') for s in splits]
    recipe = M.MimicRecipe.from_dict({**FAST, 'crop': 'random', 'mix': 0.25})
    g_bank = M.train_mimic(teacher, banks, recipe, seed=3, device='cpu', n_class=8, cached=cached)
    g_stream = S.train_mimic(teacher, splits, recipe, seed=3, device='cpu', n_class=8, cached=cached)
    assert torch.allclose(S.predict(g_stream, split, device='cpu'), M.predict(g_bank, bank, device='cpu'), atol=1e-5)


def test_undecodable_video_skipped_rows_stay_aligned(cfg, tmp_path):  # noqa: F811
    teacher = FrameMean(seed=1).eval()
    scored = M.scoring_splits(cfg)[0]
    bank, split = M.load_bank(cfg, scored), S.SplitStream(cfg, scored)
    broken = tmp_path / ('broken' + os.path.splitext(split.dataset.records[3].path)[1])
    broken.write_bytes(b'not a video')
    split.dataset.records[3] = dataclasses.replace(split.dataset.records[3], path=str(broken))
    o = S.predict(teacher, split, device='cpu')
    keep = [i for i in range(16) if i != 3]
    assert split.n_bad == 1 and split.good.tolist() == keep and torch.equal(split.labels, bank.labels[keep])
    assert torch.allclose(o, M.predict(teacher, bank, device='cpu')[keep], atol=1e-5)
    g = S.train_mimic(teacher, [split], M.MimicRecipe.from_dict(FAST), seed=0, device='cpu', n_class=8, cached=[o])
    assert S.predict(g, split, device='cpu').shape == (15, 8)


def test_streaming_refuses_frozen_frames(cfg, tmp_path, monkeypatch, capsys):  # noqa: F811
    with pytest.raises(UserError, match='frozen=2'):
        dynamic_score(FrameMean(), cfg, device='cpu', progress=False, recipe={**FAST, 'frozen': 2}, stream=True)
    # from the command line: one line, exit 2 (the card's recipe is the default one, made to ask for frozen clips)
    monkeypatch.setattr(M, 'default_recipe', lambda c: M.MimicRecipe.from_dict({**FAST, 'frozen': 2}))
    ckpt = tmp_path / 'r3d.pth.tar'
    save_checkpoint({'state_dict': build_model(cfg['model']).state_dict(), 'epoch': 1}, str(ckpt))
    over = [*TINY, f"dataset.scenemotion.cache_dir={cfg['dataset']['scenemotion']['cache_dir']}",
            'model.args.widen_factor=0.125']
    line = bad(capsys, [os.path.join(ROOT, 'configs/scenemotion-transfer/res3d18.yaml'), *over,
                        '--pretrain', str(ckpt), '--output-dir', str(tmp_path / 'o'), '--measures', 'dynamic',
                        '--mimic-stream', 'on'])
    assert 'frozen=2' in line and '--mimic-stream off' in line
