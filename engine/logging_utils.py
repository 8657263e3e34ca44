"""Logging: rank 0 logs INFO to stdout and ``log.txt``; other ranks only warnings and errors,
to stderr and appended to the same ``log.txt`` (prefixed with their rank)."""
import logging
import os
import sys

_FMT = '%(asctime)s %(levelname).1s %(message)s'


def setup_logging(out_dir, rank=0):
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, '_drl', False):
            root.removeHandler(h)
            h.close()
    prefix = '' if rank == 0 else f'[rank {rank}] '
    fmt = logging.Formatter(_FMT.replace('%(message)s', prefix + '%(message)s'), '%H:%M:%S')
    level = logging.INFO if rank == 0 else logging.WARNING
    stream = logging.StreamHandler(sys.stdout if rank == 0 else sys.stderr)
    handlers = [stream]
    if out_dir:
        handlers.append(_LogFile(os.path.join(out_dir, 'log.txt'), mode='a'))
    for h in handlers:
        h.setFormatter(fmt)
        h.setLevel(level)
        h._drl = True
        root.addHandler(h)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)


class _LogFile(logging.FileHandler):
    """``log.txt``: a write that fails for lack of space or permission stops the run (the caller
    gets the ``OSError``, which the entry script prints as one line) instead of logging's default
    of a traceback on stderr for every record and going on without a log."""

    def handleError(self, record):
        import errno
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS):
            stream, self.stream = self.stream, None   # drop what cannot be written (reopened if used again)
            try:
                stream.close()
            except OSError:
                pass
            raise OSError(exc.errno, os.strerror(exc.errno), self.baseFilename) from None
        super().handleError(record)
