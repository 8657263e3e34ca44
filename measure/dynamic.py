"""The dynamic score and its companions, computed from gathered logits.

Notation: ``p_v = softmax(video logits)``, ``p_s = softmax(spatial logits)``, ``y`` labels.

- ``dynamic_score`` = 1 − mean[argmax p_s == argmax p_v]: the share of the video model's
  decisions that the (converged) static model does not reproduce.
- ``kl`` = mean KL(p_v ‖ p_s) in nats.
- ``dynamic_score_sample`` = mean of 1 − exp(−max(0, CE(p_s, y) − CE(p_v, y))): per sample, how
  much more the video model knows about the true class than the static one (0 when the static
  model is at least as good, → 1 when it is far worse).
- ``Acc@1`` / ``Acc@1_sp``: top-1 accuracy of the video / spatial model against ``y`` (percent);
  ``agreement`` = 1 − ``dynamic_score``.

:func:`dynamic_score` is the measure itself (model + config in, result dict out): it trains the
frame-wise mimic (:mod:`measure.mimic`) and reports the score with its CIs, per class and the
static reference's floor (docs/drl.md, docs/results/dynamic-score-calibration.md).
"""
import math

import torch
from torch.nn import functional as F

from engine.losses import KDLoss


def sample_scores(logits, logits_sp, labels):
    """Per-sample quantities.

    Args:
        logits: ``N × n`` video-model logits; logits_sp: ``N × n`` spatial-model logits;
        labels: ``N`` int64.
    Returns:
        dict of ``N`` float tensors: ``correct``, ``correct_sp``, ``agree``, ``kl``, ``score``.
    """
    logits, logits_sp = logits.float(), logits_sp.float()
    pred, pred_sp = logits.argmax(1), logits_sp.argmax(1)
    ce = F.cross_entropy(logits, labels, reduction='none')
    ce_sp = F.cross_entropy(logits_sp, labels, reduction='none')
    return {
        'correct': (pred == labels).float(),
        'correct_sp': (pred_sp == labels).float(),
        'agree': (pred == pred_sp).float(),
        'kl': KDLoss(reduction='none')(logits_sp, logits),
        'score': 1 - torch.exp(-(ce_sp - ce).clamp(min=0)),
    }


def _summary(s):
    return {
        'Acc@1': 100 * s['correct'].mean().item(),
        'Acc@1_sp': 100 * s['correct_sp'].mean().item(),
        'agreement': s['agree'].mean().item(),
        'dynamic_score': 1 - s['agree'].mean().item(),
        'kl': s['kl'].mean().item(),
        'dynamic_score_sample': s['score'].mean().item(),
    }


def dynamic_scores(logits, logits_sp, labels):
    """Split-level figures (see the module docstring) from ``N × n`` logits and ``N`` labels."""
    if len(labels) == 0:
        raise ValueError('no samples to score')
    return _summary(sample_scores(logits, logits_sp, labels))


def per_class_scores(logits, logits_sp, labels, n_class):
    """The same figures per true class.

    Returns:
        list of ``n_class`` dicts with ``n`` and the keys of :func:`dynamic_scores`; a class
        with no sample has ``n = 0`` and NaN figures (never a division by zero).
    """
    s = sample_scores(logits, logits_sp, labels)
    rows = []
    for c in range(n_class):
        mask = labels == c
        n = int(mask.sum())
        if n == 0:
            row = {k: math.nan for k in _summary(s)}
        else:
            row = _summary({k: v[mask] for k, v in s.items()})
        rows.append({'class': c, 'n': n, **row})
    return rows


def agreement(logits_sp, pseudo_labels):
    """Top-1 agreement (percent) of the spatial model with the video model's predictions."""
    return 100 * (logits_sp.argmax(1) == pseudo_labels).float().mean().item()


# ---------------------------------------------------------------- the measure

def dynamic_score(model, cfg, *, device, mimic_seeds=1, seed=0, static_reference=None, workers=0,
                  batch_size=None, progress=True, log=None, recipe=None, stream=None):
    """The paper's dynamic score of a video model, with its CIs (docs/drl.md, "Dynamic score").

    A frame-wise mimic learns the video model's outputs (KD, :mod:`measure.mimic`) on the
    training pool of :func:`measure.mimic.scoring_splits` and is measured on the scored split:
    ``value`` = 1 − agreement of the argmaxes, averaged over ``mimic_seeds`` mimics.

    Args:
        model: the video model (``nn.Module``, eval mode, on ``device``); never changed.
        cfg: the loaded config (:func:`core.config.load_config`) of the data the model is scored
            on. SceneMotion: any subset's config (scored on transfer-test, see
            :func:`measure.mimic.scoring_splits`).
        device: where the mimic trains. mimic_seeds: mimics trained (≥ 1), seeds ``seed``,
            ``seed + 1``, ...
        static_reference: a frame-wise model (``nn.Module``) scored by the same mimics' recipe
            and seeds: its score is the ``floor``.
        workers: DataLoader workers for decoding; batch_size: the mimic's batch (default: the
            recipe's). progress: a progress bar per mimic; log: a ``logging.Logger``.
        recipe: a :class:`measure.mimic.MimicRecipe` or a dict of its fields (default:
            :func:`measure.mimic.default_recipe`).
        stream: ``None`` (automatic): stream the splits (:mod:`measure.mimic_stream`) when
            their frame banks would exceed :data:`measure.mimic_stream.BANK_BUDGET`, else hold
            them in memory; ``True`` / ``False`` force it. Streaming keeps only logits and
            labels, decodes the pool at every mimic epoch and refuses ``recipe.frozen``
            (:class:`core.errors.UserError`); with the same seeds it trains the same mimics.
    Returns:
        :func:`measure.stats.result` with ``value``, ``ci95`` (bootstrap over videos of the
        seed-averaged disagreement), ``ci95_mimic`` (Student-t over mimic seeds, ``None`` for
        one seed), ``sd_mimic`` and its two parts ``sd_mimic_videos`` / ``sd_mimic_shared``
        (:func:`measure.stats.mimic_spread`; ``None`` for one seed), ``per_seed``, ``split``,
        ``train_splits``, ``n_train``,
        ``per_class`` (class → score), ``floor`` / ``floor_per_seed`` (with a reference),
        ``Acc@1`` (video model) and ``Acc@1_mimic`` (percent, on the scored split),
        ``agreement_train`` (the mimic's agreement on its own training pool, centre crops),
        ``recipe``, ``time_s`` (wall) and ``cpu_s`` (this process's CPU time: on a shared
        machine, the wall time it would take alone on one core, roughly), ``cpu_decode_s`` (of
        it, decoding the splits; streaming: only opening them, the decoding is in the next) and
        ``cpu_model_s`` (the model's logits and its mimics), ``stream`` (the splits were
        streamed), ``per_video`` (the seed-averaged disagreement of each scored video, in the
        scored split's order; :func:`measure.stats.per_video_values`).
    """
    import logging
    import time

    from . import mimic as M
    from . import mimic_stream as S
    from .stats import bootstrap_mean_ci, mean_ci, mimic_spread, per_video_values, result

    log = log or logging.getLogger('measure')
    if int(mimic_seeds) < 1:
        raise ValueError(f'mimic_seeds must be at least 1, got {mimic_seeds}')
    if recipe is None:
        recipe = M.default_recipe(cfg)
    elif isinstance(recipe, dict):
        base = M.default_recipe(cfg).as_dict()
        if 'epochs' in recipe:   # a shorter run keeps its all-frame end, cut to its length
            full = recipe.get('full_epochs', base['full_epochs'])
            recipe = {**recipe, 'full_epochs': min(int(full), int(recipe['epochs']))}
        recipe = M.MimicRecipe.from_dict({**base, **recipe})
    if batch_size:
        recipe = M.MimicRecipe.from_dict({**recipe.as_dict(), 'batch_size': int(batch_size)})
    t0, c0 = time.perf_counter(), time.process_time()
    pinned = M.scoring_config(cfg)
    if pinned is not cfg:
        log.info('dynamic score: SceneMotion at the benchmark\'s bias %s for the mimic\'s pool and the scored '
                 'split (the config\'s bias %s is the training data\'s), as for every model',
                 pinned['dataset']['scenemotion']['bias'], cfg['dataset']['scenemotion']['bias'])
        cfg = pinned
    scored_spec, train_specs = M.scoring_splits(cfg, recipe.pool)
    streaming, why, splits = S.choose(cfg, [scored_spec, *train_specs], stream, workers=workers)
    log.info('dynamic score: %s (%s)', 'streams its splits' if streaming else 'holds its splits in memory', why)
    if streaming:
        S.check_recipe(recipe)
        test, *pool = splits or [S.SplitStream(cfg, s, workers=workers) for s in (scored_spec, *train_specs)]
        predict, train_mimic = S.predict, S.train_mimic
    else:
        test = M.load_bank(cfg, scored_spec, workers=workers)
        pool = [M.load_bank(cfg, s, workers=workers) for s in train_specs]
        predict, train_mimic = M.predict, M.train_mimic
    cpu_decode = time.process_time() - c0
    if len(set(test.labels.tolist())) < 2:
        raise ValueError(f'{test.name}: the dynamic score needs at least 2 classes, found '
                         f'{len(set(test.labels.tolist()))}')
    log.info('dynamic score: mimic trains on %s (%d videos), scored on %s (%d videos); %d mimic seed(s)',
             ', '.join(b.name for b in pool), sum(len(b) for b in pool), test.name, len(test), mimic_seeds)
    seeds = [int(seed) + j for j in range(int(mimic_seeds))]

    def run(teacher, tag):
        o = predict(teacher, test, device=device)
        n_class = o.shape[1]
        cached = [predict(teacher, b, device=device) for b in pool]
        agree, acc_sp, agree_train = [], [], []
        cpu_mimic.append(-time.process_time())
        for s in seeds:
            bar = None
            if progress:
                from tqdm import tqdm
                bar = tqdm(desc=f'{tag} mimic seed {s}', leave=False, dynamic_ncols=True)

            def tick(step, steps, loss, bar=bar):
                if bar is not None:
                    bar.total = steps
                    bar.update(1)
                    bar.set_postfix(loss=f'{loss:.3f}', refresh=False)
            g = train_mimic(teacher, pool, recipe, seed=s, device=device, n_class=n_class, cached=cached,
                              progress=tick)
            if bar is not None:
                bar.close()
            o_sp = predict(g, test, device=device)
            agree.append((o_sp.argmax(1) == o.argmax(1)).float())
            acc_sp.append(100 * (o_sp.argmax(1) == test.labels).float().mean().item())
            n_tr = sum(len(b) for b in pool)
            agree_train.append(sum((predict(g, b, device=device).argmax(1) == c.argmax(1)).sum().item()
                                   for b, c in zip(pool, cached)) / n_tr)
            log.info('%s mimic seed %d: dynamic score %.4f (agreement on its training pool %.4f)',
                     tag, s, 1 - agree[-1].mean().item(), agree_train[-1])
        cpu_mimic[-1] += time.process_time()
        return o, torch.stack(agree), acc_sp, agree_train

    cpu_mimic = []  # CPU seconds per scored model: its logits, the mimics' training and evaluation

    o, agree, acc_sp, agree_train = run(model, 'model')
    per_video = 1 - agree.mean(0)  # N: disagreement averaged over mimic seeds
    per_seed = [1 - a.mean().item() for a in agree]
    mean, sd, hw = mean_ci(per_seed)
    sd_videos, sd_shared = mimic_spread(agree)
    extra = {}
    floor = None
    if static_reference is not None:
        _, agree_ref, acc_ref, agree_train_ref = run(static_reference, 'reference')
        floor_seeds = [1 - a.mean().item() for a in agree_ref]
        floor = sum(floor_seeds) / len(floor_seeds)
        extra.update(floor_per_seed=floor_seeds,
                     floor_ci95=list(bootstrap_mean_ci(1 - agree_ref.mean(0))),
                     **{'Acc@1_mimic_reference': sum(acc_ref) / len(acc_ref),
                        'agreement_train_reference': sum(agree_train_ref) / len(agree_train_ref)})
    # where the disagreements sit: by the video model's own margin (top-1 minus top-2 logit)
    top2 = o.topk(2, 1).values
    margin = top2[:, 0] - top2[:, 1]
    by_margin = {}
    for lo, hi in ((0.0, 0.5), (0.5, 1.0), (1.0, 2.0), (2.0, math.inf)):
        m = (margin >= lo) & (margin < hi)
        by_margin[f'{lo:g}-{hi:g}'] = {'n': int(m.sum()),
                                       'score': per_video[m].mean().item() if m.any() else math.nan}
    per_class = {}
    for c, name in enumerate(test.classes):
        m = test.labels == c
        if m.any():
            per_class[name] = per_video[m].mean().item()
    return result(
        mean, bootstrap_mean_ci(per_video), split=test.name, n=len(test), per_class=per_class, floor=floor,
        ci95_mimic=None if hw is None else [mean - hw, mean + hw], sd_mimic=sd, sd_mimic_videos=sd_videos,
        sd_mimic_shared=sd_shared, per_seed=per_seed, per_video=per_video_values(torch.arange(len(per_video)), per_video),
        mimic_seeds=seeds, train_splits=[b.name for b in pool], n_train=sum(len(b) for b in pool),
        **{'Acc@1': 100 * (o.argmax(1) == test.labels).float().mean().item(),
           'Acc@1_mimic': sum(acc_sp) / len(acc_sp)},
        agreement_train=sum(agree_train) / len(agree_train), by_margin=by_margin, recipe=recipe.as_dict(),
        time_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0, cpu_decode_s=cpu_decode,
        cpu_model_s=cpu_mimic[0], stream=streaming, **extra)
