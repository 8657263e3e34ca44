"""20BN-Jester v1 (jpg frame folders + csv, 27 classes); registered as ``jester`` and ``jester_fs``.

On-disk layout (root: see :mod:`datasets.paths`)::

    <root>/jester-v1-labels.csv                    one class name per line (class order)
    <root>/jester-v1-{train,validation}.csv        "<id>;<class name>"
    <root>/20bn-jester-v1/<id>/00001.jpg ...       (or <root>/<id>/), 12 fps

or the published code's layout: the csv files in ``<root>/anno/``, the frame folders in
``<root>/20bn-jester-v1/`` or ``<root>/frames/`` (:func:`datasets.paths.find_layout`).

``jester_fs``: ``novel`` reads the validation set (the authors' protocol), ``base`` the
training set; class subsets as in :mod:`datasets.fewshot_splits`.
"""
from .something import register_frames_family

register_frames_family('jester', 'jester-v1', '20bn-jester-v1')
