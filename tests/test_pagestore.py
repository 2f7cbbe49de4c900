"""The page store alone: real files in a scratch directory, zero pages never stored,
slots reused, the file removed at the end."""

import numpy as np
import pytest

from qgt.errors import UserError
from qgt.runtime.pagestore import PageStore, aligned_empty


@pytest.mark.parametrize("direct", [False, True])
def test_pages_round_trip_and_zero_pages_are_not_stored(tmp_path, direct):
    st = PageStore(str(tmp_path), 0, local_bits=12, page_qubits=8, direct_io=direct)
    buf = aligned_empty(256)
    rng = np.random.default_rng(1)
    data = {p: rng.normal(size=256) + 1j * rng.normal(size=256) for p in (0, 5, 15)}
    for p, d in data.items():
        buf[:] = d
        st.write(p, buf)
    assert st.stored_pages() == 3
    for p in range(16):
        st.read(p, buf)
        assert np.array_equal(buf, data.get(p, np.zeros(256)))
    buf[:] = 0
    st.write(5, buf)  # a page that turns zero gives its slot back
    assert st.stored_pages() == 2 and st.is_zero(5)
    buf[:] = data[0]
    st.write(9, buf)
    assert st.n_slots == 3  # the freed slot was reused
    assert st.allocated_bytes() <= 3 * 4096 + 4096
    assert list(tmp_path.iterdir()) == []  # nameless while open: nothing to leak
    st.close()


def test_direct_io_refuses_small_pages(tmp_path):
    with pytest.raises(UserError, match="4KiB"):
        PageStore(str(tmp_path), 0, local_bits=10, page_qubits=4, direct_io=True)


def test_missing_scratch_dir_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="scratch_dir"):
        PageStore(str(tmp_path / "nope"), 0, local_bits=10, page_qubits=8, direct_io=False)
