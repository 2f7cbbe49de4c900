"""qgt.simulate called from inside a user's mpi4py program with its own communicator:
each communicator runs its own circuit, and every rank of it gets the same result."""

import json
import sys

from tests.conftest import ROOT, run_mpi


def test_simulate_on_user_communicators(tmp_path):
    p = run_mpi(4, [sys.executable, str(ROOT / "tests" / "comm_driver.py"), str(tmp_path)])
    assert p.returncode == 0, p.stderr
    res = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(4)]
    assert res[0] == res[1] and res[2] == res[3]  # the same result on every rank of a half
    assert res[0]["circuit"] == "ghz:8" and res[0]["ranks"] == 2
    assert set(res[0]["counts"]) <= {"0" * 8, "1" * 8} and sum(res[0]["counts"].values()) == 200
    assert abs(res[0]["expect"]["ZZZZZZZZ"] - 1.0) < 1e-12  # GHZ: even parity only
    assert res[2]["circuit"] == "qft:8" and abs(res[2]["expect"]["ZZZZZZZZ"]) < 1e-12
