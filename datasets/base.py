"""The dataset class every family builds: records in, normalised clip tensors out."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import torch

from .decode import VideoDecodeError, check_decode_device
from .sampling import sparse_transpose
from .transforms import load_clips

log = logging.getLogger(__name__)


@dataclass
class VideoRecord:
    """One annotated video: file (or frame folder), label index, video id, ``'video'|'frames'``."""
    path: str
    label: int
    vid: str
    kind: str = 'video'


class VideoDataset(torch.utils.data.Dataset):
    """Clips of annotated videos (docs/data.md, "Clip sampling").

    Args:
        records: list of :class:`VideoRecord`.
        classes: class names, index = label.
        clip_args: one ``dataset.args.<split>`` block: ``n_clips``, ``n_frames``, ``fps``
            (-1 = source rate), optional ``sparse``.
        transform: ``(uint8 K × T × H × W × 3, generator) -> float K × C × T × H × W``
            (see :func:`datasets.transforms.build_transform`).
        train: ``random`` temporal positions if true, else ``uniform``.
        seed: base seed; item ``i`` of epoch ``e`` draws everything from a generator seeded
            by ``(seed, e, i)``, so a sample does not depend on the worker that loads it.
        fps_default: frame rate of frame folders (``kind='frames'``); 12 if ``None``.
        decode_device: ``'cpu'`` or ``'cuda'`` (``dataset.decode_device``: hardware decoding,
            see :func:`datasets.decode.hw_decoder`); also settable with
            :meth:`set_decode_device`.

    A transform with ``device_augment`` makes items carry uint8 clips and their draws
    (``aug``); :attr:`finish_batch` then completes batches on the training device.
    """

    def __init__(self, records: Iterable[VideoRecord], classes: Sequence[str], clip_args: Mapping[str, Any],
                 transform: Callable[..., Any], train: bool, seed: int = 0, fps_default: Optional[float] = None,
                 decode_device: str = 'cpu') -> None:
        self.records = list(records)
        self.classes = list(classes)
        self.labels = [r.label for r in self.records]
        self.n_class = len(self.classes)
        self.n_clips = int(clip_args.get('n_clips', 1))
        self.n_frames = int(clip_args['n_frames'])
        self.fps = clip_args.get('fps', -1)
        self.sparse = bool(clip_args.get('sparse', False))
        self.transform = transform
        self.train = train
        self.seed = int(seed)
        self.fps_default = fps_default
        self.epoch = 0
        self.set_decode_device(decode_device)

    def __len__(self) -> int:
        return len(self.records)

    def set_decode_device(self, device: str) -> None:
        """Decode on ``'cpu'`` or ``'cuda'``; checks the value (and, for ``'cuda'``, whether
        this machine can decode on the GPU at all: if not, the one warning is given now)."""
        self.decode_device = check_decode_device(device)

    @property
    def finish_batch(self) -> Optional[Callable[[dict[str, Any], torch.device], dict[str, Any]]]:
        """``(batch, device) -> batch`` that completes this dataset's batches on the training
        device (the transform's :meth:`~datasets.transforms.VideoTransform.finisher`), or
        ``None`` when the workers' batches are already final (then only moved)."""
        finisher = getattr(self.transform, 'finisher', None)
        return finisher(self.sparse) if finisher is not None else None

    def set_epoch(self, epoch: int) -> None:
        """Called by the engine before each epoch: changes every item's random draws."""
        self.epoch = int(epoch)

    def generator(self, index: int) -> torch.Generator:
        """The item's private generator, seeded from ``(seed, epoch, index)``."""
        g = torch.Generator()
        # mix the triple into one 63-bit seed (plain arithmetic: identical in every process)
        p = 1_000_003
        g.manual_seed(((self.seed * p + self.epoch) * p + int(index)) % (1 << 63))
        return g

    def __getitem__(self, i: int) -> dict[str, Any]:
        """Returns ``{'video': K × C × T × H × W, 'label', 'index', 'vid'}`` or, when the
        video cannot be decoded, ``{'index', 'vid', 'error': '<path>: <reason>'}``.
        With ``sparse`` the video is ``T × C × K × H × W`` (T clips of K frames).
        With a ``device_augment`` transform, ``video`` is the uint8 ``K × T × H × W × 3``
        and ``aug`` the ``K × 9`` draws (the finisher does the sparse transposition)."""
        r = self.records[i]
        g = self.generator(i)
        kw = {} if self.fps_default is None else {'frames_fps': self.fps_default}
        if self.decode_device != 'cpu':
            kw['decode_device'] = self.decode_device
        try:
            video, _ = load_clips(r.path, self.n_clips, self.n_frames, self.fps,
                                  'random' if self.train else 'uniform', g, self.transform,
                                  kind=r.kind, **kw)
        except VideoDecodeError as e:
            log.warning('skipping undecodable video %s', e)
            return {'index': i, 'vid': r.vid, 'error': str(e)}
        item = {'label': r.label, 'index': i, 'vid': r.vid}
        if getattr(self.transform, 'device_augment', False):
            item['video'], item['aug'] = video
        else:
            item['video'] = sparse_transpose(video) if self.sparse else video
        return item
