"""One rank's slice on node-local disk, as pages of 2^p amplitudes.

Called by the out-of-core engine (``qgt.runtime.ooc``).  Storage is compact: a page
occupies a slot in the scratch file only while it is non-zero; an all-zero page is a
flag and never touches the disk, in either direction.  Slots freed by pages that turn
zero are reused, so the file never grows beyond the largest number of non-zero pages
seen at once (and a sparse 45-qubit GHZ state needs two pages, not 512 TiB or a file
larger than ext4's 16 TiB limit, which a hole-per-page layout would need).

With ``direct_io`` the file is opened with O_DIRECT, so pages bypass the page cache:
buffers come from ``aligned_empty`` and pages are multiples of 4 KiB.  The file is
removed by ``close()``, at interpreter exit, and when the store is garbage-collected,
so a failed run does not leave tens of GiB behind: the file is unlinked as soon as it is
open, so even a rank killed by SIGKILL or MPI_Abort gives its space back when the
process ends.
"""

from __future__ import annotations

import mmap
import os
import threading
import uuid
import weakref

import numpy as np

from qgt.errors import CapacityError, UserError

_DIRECT_ALIGN = 4096


def aligned_empty(n_amps: int, huge_pages: bool = False, dtype=np.complex128) -> np.ndarray:
    """A page-aligned, zero-filled complex128 (or complex64) buffer (anonymous mmap),
    usable with O_DIRECT.  Its pages are mapped now (MAP_POPULATE), by this thread, i.e.
    after the rank bound itself (``qgt.placement``): a sweep whose strided gathers touched
    them first would take 13x as long (3.7 s against 0.28 s for a 1 GiB sweep here).
    ``huge_pages`` asks for transparent huge pages instead, which fault 2 MiB at a time."""
    nbytes = max(n_amps * np.dtype(dtype).itemsize, mmap.PAGESIZE)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    if not huge_pages:
        flags |= getattr(mmap, "MAP_POPULATE", 0)
    buf = mmap.mmap(-1, nbytes, flags=flags)
    if huge_pages and hasattr(mmap, "MADV_HUGEPAGE"):
        buf.madvise(mmap.MADV_HUGEPAGE)
    return np.frombuffer(buf, dtype=dtype, count=n_amps)


def free_space(directory: str) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def _remove(fd_box: list, path: str) -> None:
    if fd_box:
        try:
            os.close(fd_box.pop())
        except OSError:
            pass
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class PageStore:
    """2^L amplitudes of one rank in 2^(L-p) pages of 2^p amplitudes."""

    def __init__(self, directory: str, rank: int, local_bits: int, page_qubits: int,
                 direct_io: bool = True, sparse: bool = True, amp_bytes: int = 16):
        self.page_amps = 1 << page_qubits
        self.page_bytes = self.page_amps * amp_bytes
        self.n_pages = 1 << (local_bits - page_qubits)
        self.sparse = sparse
        if direct_io and self.page_bytes % _DIRECT_ALIGN:
            raise UserError(f"direct_io needs ssd_page_size >= 4KiB, got {self.page_bytes} "
                            "bytes: set direct_io=false or use larger pages")
        if not os.path.isdir(directory):
            raise UserError(f"scratch_dir '{directory}' is not a directory")
        self.path = os.path.join(directory, f"qgt-{os.getpid()}-rank{rank}-"
                                            f"{uuid.uuid4().hex[:8]}.pages")
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | (os.O_DIRECT if direct_io else 0)
        try:
            self.fd = os.open(self.path, flags, 0o600)
        except OSError as e:
            raise UserError(f"cannot create the page file in scratch_dir '{directory}': "
                            f"{e.strerror}") from e
        os.unlink(self.path)  # nameless from now on: the space goes with the process
        self._fd_box = [self.fd]
        self._finalizer = weakref.finalize(self, _remove, self._fd_box, self.path)
        self._lock = threading.Lock()  # I/O threads allocate slots concurrently
        # page -> slot of the stored pages only: an index of all 2^(L-p) pages would cost
        # 8 bytes a page (4 TiB for a 60-qubit state), absent pages are zero
        self.slot: dict[int, int] = {}
        self.free: list[int] = []
        self.n_slots = 0
        self.bytes_read = 0
        self.bytes_written = 0
        self.max_pages_stored = 0

    # ---- pages ---------------------------------------------------------------------
    def is_zero(self, page: int) -> bool:
        return page not in self.slot

    def zero_flags(self, pages) -> np.ndarray:
        slot = self.slot
        return np.fromiter((int(p) not in slot for p in pages), dtype=bool, count=len(pages))

    def stored(self) -> np.ndarray:
        """The indices of the stored pages, sorted."""
        with self._lock:
            keys = list(self.slot)
        return np.sort(np.array(keys, dtype=np.int64))

    def read(self, page: int, out: np.ndarray) -> None:
        s = self.slot.get(page, -1)
        if s < 0:
            out.fill(0)
            return
        n = os.preadv(self.fd, [memoryview(out).cast("B")], s * self.page_bytes)
        if n != self.page_bytes:
            raise OSError(f"short read of page {page} from {self.path}")
        self.bytes_read += n

    def write(self, page: int, data: np.ndarray) -> None:
        if self.sparse and not data.any():
            self.drop(page)
            return
        with self._lock:
            s = self.slot.get(page, -1)
            if s < 0:
                s = self.free.pop() if self.free else self._new_slot()
                self.slot[page] = s
        try:
            n = os.pwritev(self.fd, [memoryview(data).cast("B")], s * self.page_bytes)
        except OSError as e:
            if e.errno == 28:
                raise CapacityError(
                    f"scratch_dir is full writing page {page} to {self.path}: "
                    f"{self.stored_pages()} pages of {self.page_bytes} bytes stored") from e
            raise
        if n != self.page_bytes:
            raise OSError(f"short write of page {page} to {self.path}")
        self.bytes_written += n
        self.max_pages_stored = max(self.max_pages_stored, self.stored_pages())

    def drop(self, page: int) -> None:
        """The page is all zero: forget it (its slot is reused)."""
        with self._lock:
            s = self.slot.pop(page, -1)
            if s >= 0:
                self.free.append(s)

    def clear(self) -> None:
        with self._lock:
            self.slot = {}
            self.free = list(range(self.n_slots))

    def _new_slot(self) -> int:
        self.n_slots += 1
        return self.n_slots - 1

    # ---- accounting ----------------------------------------------------------------
    def stored_pages(self) -> int:
        return len(self.slot)

    def allocated_bytes(self) -> int:
        """Bytes the file really occupies on disk."""
        return os.fstat(self.fd).st_blocks * 512

    def close(self) -> None:
        self._finalizer()
