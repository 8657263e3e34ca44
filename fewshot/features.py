"""Encode-once per-clip features for few-shot evaluation, with an optional disk cache.

Novel videos use the deterministic test transform and uniform clip sampling, so a video's
features are the same in every episode: each video the episodes use is encoded once (several
videos per forward pass) instead of once per episode. The cache (``fewshot.cache: true``) is one
file per (checkpoint, model + data config, code version) holding the videos encoded so far;
later runs encode only the videos it lacks. It lives under the run folder
(``<output-dir>/feature_cache``) or ``fewshot.cache_dir``, never in the source tree.
"""
import hashlib
import json
import logging
import os
import time

import torch
from torch.utils.data import DataLoader, Subset

from datasets.collate import video_collate
from engine import dist as dist_utils
from engine.checkpoint import load_checkpoint, save_checkpoint, unwrap
from engine.engine import batch_finisher

log = logging.getLogger('drl')

# Bump when anything that changes the stored features changes (decoding, transforms, pooling).
FEATURE_CODE_VERSION = 1


def file_fingerprint(path, head_bytes=1 << 20):
    """Cheap identity of a checkpoint file: size, mtime and SHA-256 of its first MiB (not its
    path, so a moved or linked checkpoint keeps its cache)."""
    st = os.stat(path)
    with open(path, 'rb') as f:
        head = hashlib.sha256(f.read(head_bytes)).hexdigest()
    return {'size': st.st_size, 'mtime_ns': st.st_mtime_ns, 'sha_head': head}


def cache_key(cfg, checkpoint=None, seed=0, split='novel'):
    """Hash of everything the features depend on.

    Args:
        cfg: the resolved config (its ``model`` block and the data keys of ``dataset``; the
            episode keys ``n_way`` etc. are left out so 1-shot and 5-shot runs share a cache).
        checkpoint: weights the encoder was loaded from (None: random init, keyed by ``seed``).
        seed: run seed (matters only for random-init encoders and the dataset's seed).
        split: the encoded split.
    Returns:
        hex string (16 characters).
    """
    d = cfg.get('dataset', {})
    data = {k: d.get(k) for k in ('name', 'root', 'transform', 'subset', 'scenemotion')}
    data['split'] = (d.get('args') or {}).get(split)
    ident = {'code': FEATURE_CODE_VERSION, 'model': cfg.get('model'), 'data': data, 'split': split,
             'checkpoint': file_fingerprint(checkpoint) if checkpoint else None, 'seed': seed}
    blob = json.dumps(ident, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@torch.no_grad()
def encode_videos(model, dataset, indices, batch_size=4, num_workers=0, device=None, print_freq=20,
                  shard=True):
    """Per-clip pooled features of ``dataset[i]`` for ``i`` in ``indices``.

    The model runs in eval mode under ``no_grad``; each batch of ``batch_size`` videos is one
    forward pass of ``batch_size · K`` clips through ``forward_features``.

    Args:
        model: a video model (``forward_features``: ``N × C × T × H × W -> N × D``).
        dataset: a :class:`datasets.VideoDataset` (test transform).
        indices: ``U`` dataset indices.
        shard: under ``torchrun``, split the videos over the ranks and gather the features
            (every rank returns all of them).
    Returns:
        ``U × K × D`` float32 CPU tensor, rows in the order of ``indices``.
    Raises:
        RuntimeError: a video could not be decoded (an episode cannot do without it).
    """
    net = unwrap(model)
    device = device or next(net.parameters()).device
    indices = [int(i) for i in indices]
    if shard and dist_utils.get_world_size() > 1:
        return _encode_sharded(model, dataset, indices, batch_size, num_workers, device, print_freq)
    was_training = net.training
    net.eval()
    pos = {v: j for j, v in enumerate(indices)}
    loader = DataLoader(Subset(dataset, indices), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, collate_fn=video_collate)
    finish = batch_finisher(loader)  # uint8 clips of a device_augment transform: done here
    out, t0 = None, time.time()
    try:
        for it, batch in enumerate(loader):
            if batch['skipped']:
                raise RuntimeError(f'cannot encode few-shot videos: {"; ".join(batch["skipped"][:3])}')
            x = finish(batch, device)['video']
            b, k = x.shape[:2]
            feat = net.forward_features(x.flatten(0, 1)).unflatten(0, (b, k)).float().cpu()
            if out is None:
                out = torch.empty(len(indices), k, feat.shape[-1])
            out[[pos[int(i)] for i in batch['index']]] = feat
            if print_freq and (it + 1) % print_freq == 0:
                log.info('encoded %d / %d videos (%.1f videos/s)', (it + 1) * batch_size,
                         len(indices), (it + 1) * batch_size / (time.time() - t0))
    finally:
        net.train(was_training)
    if out is None:
        raise RuntimeError('no videos to encode')
    return out


def _encode_sharded(model, dataset, indices, *encode_args):
    """Rank ``r`` of ``w`` encodes ``indices[r::w]``; every rank gets all features back."""
    world, rank = dist_utils.get_world_size(), dist_utils.get_rank()
    mine = indices[rank::world]
    feat = encode_videos(model, dataset, mine, *encode_args, shard=False) if mine else None
    out, pos = None, {v: j for j, v in enumerate(indices)}
    for idx, part in dist_utils.all_gather_objects((mine, feat)):
        if part is None:
            continue
        if out is None:
            out = torch.empty(len(indices), *part.shape[1:])
        out[[pos[i] for i in idx]] = part
    return out


def cached_features(model, dataset, indices, cache_path=None, key=None, **encode_kw):
    """Features of ``indices`` (``U × K × D``), reusing and extending a cache file.

    Args:
        cache_path: ``.pt`` file holding ``{'key', 'index': V, 'feat': V × K × D, 'label': V}``;
            None disables caching.
        key: :func:`cache_key` of this run; a file with another key is ignored (rewritten).
        encode_kw: passed to :func:`encode_videos`.
    Returns:
        ``(feats: U × K × D, n_encoded)``: rows in the order of ``indices``, and how many
        videos had to be encoded now.
    """
    indices = torch.as_tensor(indices, dtype=torch.long)
    have_idx, have_feat = torch.empty(0, dtype=torch.long), None
    if cache_path and os.path.isfile(cache_path):
        blob = load_checkpoint(cache_path)
        if blob.get('key') == key:
            have_idx, have_feat = blob['index'], blob['feat']
        else:
            log.warning('feature cache %s has another key: ignored', cache_path)
    missing = indices[~torch.isin(indices, have_idx)]
    if len(missing):
        log.info('encoding %d videos (%d cached)', len(missing), len(indices) - len(missing))
        new = encode_videos(model, dataset, missing.tolist(), **encode_kw)
        have_idx = torch.cat([have_idx, missing])
        have_feat = new if have_feat is None else torch.cat([have_feat, new])
        if cache_path and dist_utils.get_rank() == 0:
            labels = torch.tensor([dataset.labels[i] for i in have_idx.tolist()])
            save_checkpoint({'key': key, 'index': have_idx, 'feat': have_feat, 'label': labels}, cache_path)
            log.info('feature cache: %s (%d videos)', cache_path, len(have_idx))
    else:
        log.info('all %d videos found in the feature cache %s', len(indices), cache_path)
    rows = torch.full((int(have_idx.max()) + 1,), -1, dtype=torch.long)
    rows[have_idx] = torch.arange(len(have_idx))
    return have_feat[rows[indices]], len(missing)
