"""One live run per output folder: an exclusive lock file, and the clean-up of what killed runs leave.

The lock is ``<run folder>/.lock``, held with ``fcntl.flock`` for the life of the process. The
kernel drops a flock when its process ends, however it ends (SIGKILL included), so a lock is
never really stale: a ``.lock`` file whose flock can be taken belonged to a process that died
without removing it. Its content (pid, host, start time) only serves the messages.
"""
import errno
import fcntl
import json
import os
import re
import socket
import time

from core.errors import UserError

LOCK_NAME = '.lock'
# temporary files of engine.checkpoint._atomic (".<name>.tmp<pid>") and of
# core.config.save_config ("config.yaml.tmp<pid>")
_TMP = re.compile(r'^(?:\.(?P<name>.+)|(?P<cfg>config(?:_sp)?\.yaml))\.tmp(?P<pid>\d+)$')


class FolderBusyError(UserError):
    """Another live process writes into the run folder."""


def pid_alive(pid):
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """The exclusive lock of a run folder (see the module docstring).

    Attributes:
        stale: the record (``pid``, ``host``, ``started``) left by a dead holder that this lock
            took over, or ``None``.
    """

    def __init__(self, folder):
        self.folder = folder
        self.path = os.path.join(folder, LOCK_NAME)
        self.fd = None
        self.stale = None

    def acquire(self):
        """Take the lock or raise :class:`FolderBusyError` naming the live holder."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                holder = read_record(self.path)
                who = (f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"
                       if holder else 'another process')
                raise FolderBusyError(f'{self.folder} is in use by a live run ({who}); wait for it to '
                                      f'end or choose another --output-dir') from None
            # the holder before us may have removed the file between our open and flock:
            # then we hold a lock on a deleted file, and must start again on the new one
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        old = _parse(os.read(fd, 4096))
        if old and old.get('pid') != os.getpid():
            self.stale = old
        record = {'pid': os.getpid(), 'host': socket.gethostname(),
                  'started': time.strftime('%Y-%m-%d %H:%M:%S %Z')}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + '\n').encode(), 0)
        self.fd = fd
        return self

    def release(self):
        """Remove the lock file and drop the lock (removal first: see :meth:`acquire`)."""
        if self.fd is None:
            return
        try:
            os.remove(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def _parse(data):
    try:
        rec = json.loads(data.decode() or 'null')
        return rec if isinstance(rec, dict) else None
    except (ValueError, UnicodeDecodeError):
        return None


def read_record(path):
    """The holder record of a lock file, or ``None``."""
    try:
        with open(path, 'rb') as f:
            return _parse(f.read(4096))
    except OSError:
        return None


def remove_stale_temporaries(folder):
    """Delete the temporary checkpoint / JSON / config files (``.<name>.tmp<pid>``,
    ``config.yaml.tmp<pid>``) of processes that are no longer alive (a run killed mid-write).
    Call with the folder's lock held.

    Returns:
        the names removed.
    """
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in sorted(names):
        m = _TMP.match(name)
        if m and int(m.group('pid')) != os.getpid() and not pid_alive(int(m.group('pid'))):
            try:
                os.remove(os.path.join(folder, name))
                removed.append(name)
            except OSError:
                pass
    return removed


_held = []


def lock_folder(folder):
    """Take ``folder``'s lock for the rest of this process (released by :func:`release_all`)."""
    lock = RunLock(folder).acquire()
    _held.append(lock)
    return lock


def release_all():
    while _held:
        _held.pop().release()
