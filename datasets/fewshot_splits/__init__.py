"""Base / novel class subsets of the few-shot dataset variants (``*_fs``).

A subset is a list of class ids, i.e. indices into the dataset's official class order
(SSv2: ``something-something-v2-labels.json``; SSv1 / Jester: the labels csv; UCF101:
``classInd.txt``; HMDB51: sorted class names; Diving48: ``Diving48_vocab.json``; Kinetics:
``label_map.txt``). *Novel* is always every class that is not *base*.

``dataset.args.<split>.base_cls`` chooses the base classes:

- absent / ``null`` / ``0``: no base classes, novel = all classes (the authors' configs);
- ``N`` (int): the shipped file ``<family>/base<N>.txt`` beside this module; when no file is
  shipped for N the same rule that produced the files is applied in memory;
- a list of ints: these class ids;
- a string: a path to a text file of class ids (one per line, ``#`` comments allowed).

The rule (``derive_base``): ``numpy.random.RandomState(0).permutation(n_classes)``, the first
N entries, sorted. numpy's legacy generator is frozen, so the lists never change; base lists
for a smaller N are nested in those of a larger N. ``python -m datasets.fewshot_splits``
rewrites the shipped files (developers only; nothing writes here at run time).
"""
import os
import pathlib

import numpy as np

from ..annotations import integer, parse_rows
from ..base import VideoRecord

HERE = pathlib.Path(__file__).resolve().parent
SEED = 0

# family -> (number of classes, base sizes we ship)
SHIPPED = {
    'something_v2': (174, (64, 100)),
    'something_v1': (174, (64, 100)),
    'jester': (27, (13,)),
    'ucf101': (101, (50,)),
    'hmdb51': (51, (25,)),
    'diving48': (48, (24,)),
    'kinetics_400': (400, (200,)),
}


def derive_base(n_classes, n_base, seed=SEED):
    """The base class ids for ``n_base`` of ``n_classes`` (sorted list of ints)."""
    if not 0 < n_base < n_classes:
        raise ValueError(f'base_cls={n_base} must be in 1..{n_classes - 1}')
    perm = np.random.RandomState(seed).permutation(n_classes)
    return sorted(int(c) for c in perm[:n_base])


def read_class_ids(path):
    """Class ids from a text file: one int per line, blank lines and ``#`` comments ignored."""
    return parse_rows(path, lambda line: integer(line, 'class id'),
                      'one class id (an integer) per line, # comments allowed', form='names', comment='#')


def shipped_path(family, n_base):
    return HERE / family / f'base{n_base}.txt'


def base_classes(family, n_classes, base_cls):
    """Resolve a ``base_cls`` value (see module doc) to a sorted list of class ids."""
    if base_cls is None or base_cls == 0 or base_cls == []:
        return []
    if isinstance(base_cls, bool):
        raise ValueError(f'{family}: base_cls must be an int, a list of class ids or a file, got {base_cls!r}')
    if isinstance(base_cls, int):
        path = shipped_path(family, base_cls)
        ids = read_class_ids(path) if path.is_file() else derive_base(n_classes, base_cls)
    elif isinstance(base_cls, str):
        ids = read_class_ids(os.path.expanduser(base_cls))
    else:
        ids = [int(c) for c in base_cls]
    bad = [c for c in ids if not 0 <= c < n_classes]
    if bad or len(set(ids)) != len(ids):
        raise ValueError(f'{family}: base_cls lists ids outside 0..{n_classes - 1} or repeats one: {bad or ids}')
    return sorted(ids)


def subset_classes(family, n_classes, base_cls, subset):
    """Class ids of ``subset`` ('base' or 'novel') in increasing order.

    Returns:
        list of class ids; a record of class ``c`` gets label ``ids.index(c)``.
    """
    base = base_classes(family, n_classes, base_cls)
    if subset == 'base':
        if not base:
            raise ValueError(f'{family}: the base subset needs dataset.args.<split>.base_cls '
                             f'(a number of classes, a list of class ids or a file)')
        return base
    if subset != 'novel':
        raise ValueError(f"{family}: subset must be 'base' or 'novel', got {subset!r}")
    taken = set(base)
    return [c for c in range(n_classes) if c not in taken]


def write_shipped():
    """Regenerate every shipped list from the rule (run by hand, never at run time)."""
    for family, (n_classes, sizes) in SHIPPED.items():
        (HERE / family).mkdir(exist_ok=True)
        for n in sizes:
            ids = derive_base(n_classes, n)
            header = (f'# {family}: {n} base classes of {n_classes} (class ids); rule: '
                      f'numpy RandomState({SEED}).permutation({n_classes})[:{n}], sorted\n')
            shipped_path(family, n).write_text(header + ''.join(f'{c}\n' for c in ids))



def fewshot_view(family, classes, records, clip_args, split):
    """Restrict a dataset to the base or novel classes and renumber the labels.

    Args:
        family: key of the shipped lists (e.g. ``'something_v2'``).
        classes: all class names in official order; ``records``: their ``VideoRecord`` list.
        clip_args: ``dataset.args.<split>`` (``base_cls``, optional ``subset``).
        split: the config split; ``base`` selects the base subset unless ``subset`` says otherwise.
    Returns:
        ``(subset_class_names, relabelled_records)``.
    """
    subset = clip_args.get('subset') or ('base' if split == 'base' else 'novel')
    ids = subset_classes(family, len(classes), clip_args.get('base_cls'), subset)
    pos = {c: i for i, c in enumerate(ids)}
    recs = [VideoRecord(r.path, pos[r.label], r.vid, r.kind) for r in records if r.label in pos]
    return [classes[c] for c in ids], recs
