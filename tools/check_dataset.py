"""Check a dataset on disk against its annotations: annotated, found, missing, undecodable.

    python tools/check_dataset.py configs/k400/res3d18.yaml [key=value ...] [-j 8]

For every split of ``dataset.args`` the dataset is built exactly as training builds it (same
roots, same annotation parsing); every video found is then opened with the training reader
and decoded in full in parallel worker processes (``--quick``: only the training reader).
Prints a table and the problem files; exits 1 when anything is missing or undecodable,
2 on a config error. Also counted and listed, without failing: videos that carry a rotation
(a display matrix, as phones write; training reads them upright) and truncated files (fewer
frames than their header promises; training samples within the frames they hold).
"""
import argparse
import logging
import multiprocessing as mp
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.config import ConfigError, load_config  # noqa: E402

# datasets / av / cv2 are imported once the config is known to be valid (torch is slow to load)


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config', help='dataset config, e.g. configs/k400/res3d18.yaml')
    p.add_argument('overrides', nargs='*', help='key=value config overrides, e.g. dataset.root=/data/k400')
    p.add_argument('-j', '--workers', type=int, default=os.cpu_count() or 1,
                   help='decoding processes (default: all cores)')
    p.add_argument('--splits', nargs='+', help='only these splits (default: all in dataset.args)')
    p.add_argument('--quick', action='store_true',
                   help='only read one clip with the training reader instead of decoding every frame')
    p.add_argument('--show', type=int, default=50,
                   help='problem files printed per split and kind (-1: all; --out writes all)')
    p.add_argument('--out', help='write every problem file, one "<split>\\t<kind>\\t<path: reason>" per line')
    return p


def decode_all(path, kind):
    """Decode every frame (video) or read every jpg (frame folder); raise on any failure.

    Returns the number of frames decoded and the number the video's header promises (0 when
    it says nothing, and for frame folders). A file whose last packet is cut short (a
    truncated file) is not a failure: its frames up to the cut are what training uses."""
    import av
    import cv2

    from datasets.decode import VideoDecodeError

    if kind == 'frames':
        names = sorted(n for n in os.listdir(path) if n.lower().endswith(('.jpg', '.jpeg', '.png')))
        if not names:
            raise VideoDecodeError(path, 'empty frame folder')
        for n in names:
            if cv2.imread(os.path.join(path, n)) is None:
                raise VideoDecodeError(path, f'cannot read frame {n}')
        return len(names), 0
    n = 0
    try:
        with av.open(path, metadata_errors='ignore') as c:
            if not c.streams.video:
                raise VideoDecodeError(path, 'no video stream')
            stream = c.streams.video[0]
            header = stream.frames or 0
            packets = c.demux(stream)
            for packet in packets:
                try:
                    n += len(packet.decode())
                except av.FFmpegError:
                    if any(p.size > 0 for p in packets):
                        raise  # damage inside the file
                    n += len(stream.codec_context.decode(None))  # cut short at its end
                    break
    except (av.FFmpegError, OSError, EOFError) as e:
        raise VideoDecodeError(path, f'{type(e).__name__}: {e}') from e
    if n == 0:
        raise VideoDecodeError(path, 'no decodable frame')
    return n, header


def check_one(item):
    """Worker: ``(path, kind, quick) -> (path, None | 'path: reason', notes)``; ``notes``:
    ``{'rotation': 'rotated 90 degrees'}`` for a video with a display matrix (read upright),
    ``{'truncated': (frames decoded, frames the header promises)}`` for a file that holds
    fewer frames than its header says (clips are sampled within them)."""
    from datasets.decode import VideoDecodeError, read_clips

    path, kind, quick = item
    notes = {}
    try:
        _, info = read_clips(path, 1, 2, -1, 'uniform', kind=kind)  # what training does first
        if info.get('orientation'):
            notes['rotation'] = info['orientation']
        if info.get('header_frames'):
            notes['truncated'] = (info['n_src_frames'], info['header_frames'])
        if not quick:
            n, header = decode_all(path, kind)
            if header and n < header - 1:
                notes['truncated'] = (n, header)
    except VideoDecodeError as e:
        return path, str(e), {}
    return path, None, notes


def _init_worker():
    import cv2
    cv2.setNumThreads(1)
    import torch
    torch.set_num_threads(1)


def decode_paths(items, workers):
    """``{path: (error or None, notes)}`` for ``[(path, kind, quick)]`` (:func:`check_one`), in
    parallel with a progress bar."""
    from tqdm import tqdm

    out = {}
    if not items:
        return out
    bar = tqdm(total=len(items), desc='decoding', unit='video', file=sys.stderr)
    if workers <= 1:
        _init_worker()
        for path, err, notes in map(check_one, items):
            out[path] = err, notes
            bar.update()
    else:
        # fork: workers inherit the imported modules (spawn would re-import torch in each)
        method = 'fork' if 'fork' in mp.get_all_start_methods() else 'spawn'
        with mp.get_context(method).Pool(workers, initializer=_init_worker) as pool:
            for path, err, notes in pool.imap_unordered(check_one, items, chunksize=4):
                out[path] = err, notes
                bar.update()
    bar.close()
    return out


def check_split(cfg, split, checked, args):
    """Build one split and decode its files not checked yet. Returns the report row."""
    from datasets import build_dataset

    try:
        ds = build_dataset(cfg, split)
    except (FileNotFoundError, ValueError, KeyError) as e:
        return {'split': split, 'error': str(e)}
    todo = [(r.path, r.kind, args.quick) for r in ds.records if r.path not in checked]
    checked.update(decode_paths(todo, args.workers))
    bad = [checked[r.path][0] for r in ds.records if checked[r.path][0]]
    notes = [(r.path, checked[r.path][1]) for r in ds.records if checked[r.path][1]]
    rotated = [f'{p}: {n["rotation"]}' for p, n in notes if 'rotation' in n]
    truncated = [f'{p}: {n["truncated"][0]} of the {n["truncated"][1]} frames its header promises'
                 for p, n in notes if 'truncated' in n]
    missing = list(getattr(ds, 'missing', []))
    return {'split': split, 'annotated': getattr(ds, 'n_annotated', len(ds) + len(missing)),
            'found': len(ds), 'missing': missing, 'undecodable': bad, 'rotated': rotated,
            'truncated': truncated}


def print_report(rows, show, out=sys.stdout):
    """Print the table, then the problem files of each split."""
    print(f"{'split':<12}{'annotated':>11}{'found':>9}{'missing':>9}{'undecodable':>13}", file=out)
    for r in rows:
        if 'error' in r:
            print(f"{r['split']:<12}  ERROR: {r['error']}", file=out)
        else:
            print(f"{r['split']:<12}{r['annotated']:>11}{r['found']:>9}{len(r['missing']):>9}"
                  f"{len(r['undecodable']):>13}", file=out)
    for r in rows:  # usable as they are, but said: how many are turned, how many cut short
        if r.get('rotated') or r.get('truncated'):
            print(f"{r['split']}: {len(r['rotated'])} videos carry a rotation, "
                  f"{len(r['truncated'])} are truncated", file=out)
    notes = {'rotated': 'carry a rotation (display matrix); they are read upright',
             'truncated': 'hold fewer frames than their header says; clips are sampled within '
                          'the frames they hold'}
    for r in rows:
        for kind in ('missing', 'undecodable', 'rotated', 'truncated'):
            files = r.get(kind) or []
            if files:
                what = notes.get(kind, kind)
                print(f"\n{r['split']}: {len(files)} {'videos ' + what if kind in notes else what}:",
                      file=out)
                for f in files if show < 0 else files[:show]:
                    print(f'  {f}', file=out)
                if 0 <= show < len(files):
                    print(f'  ... and {len(files) - show} more (--show -1 or --out FILE)', file=out)


def main(args):
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    splits = args.splits or list((cfg['dataset'].get('args') or {}))
    checked, rows = {}, []
    for split in splits:
        rows.append(check_split(cfg, split, checked, args))
    print_report(rows, args.show)
    if args.out:
        with open(args.out, 'w') as f:
            for r in rows:
                for kind in ('missing', 'undecodable'):
                    f.writelines(f"{r['split']}\t{kind}\t{p}\n" for p in r.get(kind) or [])
    bad = any('error' in r or r['missing'] or r['undecodable'] for r in rows)
    print('\nproblems found' if bad else '\nall videos found and decodable')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main(get_args_parser().parse_args()))
