"""The ``DATASETS`` registry and :func:`register_family`, the one way an annotated dataset family
registers its names and its few-shot variants.

A registered builder is ``fn(cfg, split, clip_args, transform) -> VideoDataset``
(:func:`datasets.build_dataset` calls it). The registry lives in this module, not in the package
``__init__``, so it exists before any family module registers, whatever is imported first.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

from core.registry import Registry

from .fewshot_splits import fewshot_view
from .paths import annotation_phase, explicit_layout, find_layout, finish, resolve_root

if TYPE_CHECKING:
    from .base import VideoDataset, VideoRecord
    from .paths import Layout, LayoutSpec

# fn(cfg, split, clip_args, transform) -> VideoDataset
DatasetBuilder = Callable[[dict[str, Any], str, dict[str, Any], Callable[..., Any]], 'VideoDataset']
DATASETS: Registry[DatasetBuilder] = Registry('dataset')


def register_family(family: str,
                    read: Callable[[dict[str, Any], Layout, str, dict[str, Any]], tuple[list[str], list[VideoRecord]]],
                    *, expects: str, layouts: Mapping[str, LayoutSpec], markers: Sequence[str],
                    phases: Mapping[str, str], names: Optional[Sequence[str]] = None,
                    fewshot_names: Optional[Sequence[str]] = None, default_eval: str = 'val',
                    fewshot_eval: Optional[str] = None) -> dict[str, DatasetBuilder]:
    """Register one family's builders: its full-dataset names and its few-shot variants.

    Every builder does the same steps: the annotation phase the split reads
    (:func:`datasets.paths.annotation_phase`), the annotation and video folders
    (``dataset.ann_root`` / ``dataset.video_root`` when set, :func:`datasets.paths.explicit_layout`;
    else the folder layout under the root, :func:`datasets.paths.resolve_root` and
    :func:`datasets.paths.find_layout`), the annotations (``read``); a few-shot
    name then keeps the base or novel classes (:func:`datasets.fewshot_splits.fewshot_view`);
    finally the missing files are dropped and the dataset is built (:func:`datasets.paths.finish`,
    which records the registered name as ``dataset.name``).

    Args:
        family: the root's name (``dataset.root``, ``DRL_<FAMILY>_ROOT``, default folder), the
            name in messages and the key of the shipped few-shot class lists, e.g. ``'hmdb51'``.
        read: ``read(cfg, layout, phase, clip_args) -> (classes, records)``: class names in
            official order and their :class:`datasets.base.VideoRecord` list; ``layout`` is the
            :class:`datasets.paths.Layout` found (``ann_dir``, ``video_dir``, ``root``).
        expects: the expected files, in one line (error messages).
        layouts: ``{'project': LayoutSpec, 'published': LayoutSpec}``.
        markers: annotation files (names or glob patterns) that identify a layout.
        phases: accepted ``phase`` values -> official annotation split.
        names: full-dataset names (default ``(family,)``).
        fewshot_names: few-shot variant names (default ``(family + '_fs',)``; ``()``: none).
        default_eval: the phase evaluation splits read (training splits read ``train``).
        fewshot_eval: the same for the few-shot names (default: ``default_eval``).
    Returns:
        ``{name: builder}`` of the names registered.
    """
    names = (family,) if names is None else tuple(names)
    fewshot_names = (f'{family}_fs',) if fewshot_names is None else tuple(fewshot_names)

    def builder(name, fewshot):
        eval_phase = fewshot_eval if fewshot and fewshot_eval is not None else default_eval

        def build(cfg, split, clip_args, transform):
            phase = annotation_phase(clip_args, split, phases, default_eval=eval_phase)
            layout = explicit_layout(cfg, family, layouts, markers, expects)
            if layout is None:
                layout = find_layout(cfg, resolve_root(cfg, family, expects=expects), family, layouts, markers)
            classes, records = read(cfg, layout, phase, clip_args)
            if fewshot:
                classes, records = fewshot_view(family, classes, records, clip_args, split)
            return finish(cfg, name, split, records, classes, clip_args, transform)

        build.__name__ = build.__qualname__ = name
        build.__doc__ = f'``{name}``: {"few-shot variant of " if fewshot else ""}the {family} family.'
        return build

    built = {n: builder(n, False) for n in names}
    built.update({n: builder(n, True) for n in fewshot_names})
    for name, fn in built.items():
        DATASETS.register(name)(fn)
    return built
