"""Operating a run (issue 10): live progress (plain lines without a terminal, a bar on
one, a Python callback), log levels with the rank in every record, the per-rank trace
and its timeline plot, the per-step table and the bottleneck report."""

from __future__ import annotations

import io
import json
import subprocess
import sys

from qgt.obs.progress import Display, ProgressEvent
from tests.conftest import QGT, ROOT, clean_env, run_mpi, run_qgt

# out of core on 2 ranks, small enough for a test: page I/O threads, page exchanges
OOC = ["--set", "storage=ssd", "--set", "memory_limit=256KiB", "--set", "ssd_page_size=4KiB",
       "--set", "block_qubits=8", "--set", "direct_io=false"]


def test_progress_lines_in_a_batch_log_and_quiet(tmp_path):
    args = ["run", "trotter:18:6", "--progress", "--set", "progress_interval=0.05",
            "--set", f"scratch_dir={tmp_path}", *OOC]
    p = run_qgt(2, args)
    assert p.returncode == 0, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("qgt: step ")]
    assert len(lines) >= 2, p.stderr  # periodic lines, plus the last one
    assert "moved" in lines[-1] and "eta" in lines[-1] and "elapsed" in lines[-1]
    last = lines[-1].split()[2]  # "N/N"
    done, total = last.split("/")
    assert done == total
    p = run_qgt(2, args + ["--quiet"])
    assert p.returncode == 0 and "qgt: step" not in p.stderr and p.stdout == ""


def test_progress_key_and_bar_on_a_terminal():
    out = io.StringIO()
    d = Display(interval=0, stream=out, tty=True)  # the rich bar
    for i in range(1, 4):
        d(ProgressEvent(i, 3, "sweep", i << 20, 0.1 * i, 0.1 * (3 - i), i / 3))
    d.close()
    assert "3/3" in out.getvalue()
    plain = io.StringIO()
    d = Display(interval=0, stream=plain, tty=False)
    d(ProgressEvent(2, 4, "global swap", 1 << 30, 61.0, 61.0, 0.5))
    d.close()
    assert plain.getvalue().strip() == (
        "qgt: step 2/4 (50%) global swap, 1 GiB moved, elapsed 0:01:01, eta 0:01:01")


def test_api_progress_callback_on_rank_0_only(tmp_path):
    cfg = tmp_path / "c.json"
    # exchanges through MPI (not the node's shared window), so that there are global swaps
    cfg.write_text(json.dumps({"block_qubits": 6, "page_qubits": 2, "shared_memory": False}))
    p = run_mpi(2, [sys.executable, str(ROOT / "tests" / "obs_driver.py"), "ghz:12", str(cfg),
                    str(tmp_path)])
    assert p.returncode == 0, p.stderr
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r1["events"] == []
    ev = r0["events"]
    steps = [e["step"] for e in ev]
    assert steps == sorted(steps) and steps[-1] == r0["plan_steps"]
    assert ev[-1]["fraction"] == 1.0 and ev[-1]["eta"] == 0.0
    assert {"global swap", "sweep", "sampling"} <= {e["phase"] for e in ev}
    # the per-step table: one row per plan step, one value per rank, adding up
    table = r0["steps"]
    assert len(table) == r0["plan_steps"] and r0["steps"] == r1["steps"]
    assert all(len(row["seconds"]) == 2 for row in table)
    exchanged = sum(sum(row.get("bytes_exchanged", [0, 0])) for row in table)
    assert exchanged == 2 * r0["exchanged"] > 0
    swaps = [row for row in table if row["kind"] == "global_swap"]
    assert all(row["bytes_exchanged"][0] == row["predicted_exchange_bytes"] for row in swaps)


def test_log_levels_carry_the_rank(tmp_path):
    base = ["run", "qft:14", "--quiet", "--set", f"scratch_dir={tmp_path}"]
    p = run_qgt(2, base)
    assert p.returncode == 0 and p.stderr == ""  # warning: nothing to say
    p = run_qgt(2, base + ["--set", "log_level=info", "--set", "checkpoint_dir=" +
                           str(tmp_path / "ck"), "--set", "checkpoint_at_end=true"])
    assert p.returncode == 0, p.stderr
    info = p.stderr.splitlines()
    assert any(ln.startswith("qgt[rank 0] INFO: 14 qubits on 2 ranks: ram tier") for ln in info)
    assert any(ln.startswith("qgt[rank 1] INFO: binding") for ln in info)  # rank-specific
    assert any("INFO: checkpoint" in ln and "written" in ln for ln in info)
    assert not any(ln.startswith("qgt[rank 1] INFO: 14 qubits") for ln in info)  # rank 0's
    assert "DEBUG" not in p.stderr
    p = run_qgt(2, base + ["--set", "log_level=debug"], env=clean_env())
    for r in (0, 1):
        assert any(ln.startswith(f"qgt[rank {r}] DEBUG: step 0 ") for ln in p.stderr.splitlines())
    p = run_qgt(1, base + ["--set", "log_level=error"])
    assert p.returncode == 0 and p.stderr == ""


def test_trace_timeline_and_report_of_an_out_of_core_run(tmp_path):
    trace, res = tmp_path / "t.json", tmp_path / "r.json"
    p = run_qgt(2, ["run", "qft:18", "--trace", str(trace), "--output", str(res), "--quiet",
                    "--observable", "X" + "Z" * 17, "--set", f"scratch_dir={tmp_path}", *OOC])
    assert p.returncode == 0, p.stderr
    doc = json.loads(trace.read_text())
    spans = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert {e["pid"] for e in spans} == {0, 1}
    cats = {e["cat"] for e in spans}
    assert {"compute", "disk", "network", "reduction", "step"} <= cats
    names = {e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "thread_name"}
    assert "main" in names and any(n.startswith("qgt-io") for n in names)
    assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in spans)
    png = tmp_path / "timeline.png"
    p = subprocess.run([QGT, "timeline", str(trace), "-o", str(png)], capture_output=True,
                       text=True, timeout=120, env=clean_env())
    assert p.returncode == 0, p.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "rank 0 main" in p.stdout and "rank 1 qgt-io" in p.stdout and "busy" in p.stdout
    p = subprocess.run([QGT, "report", str(res)], capture_output=True, text=True, timeout=120,
                       env=clean_env(XDG_CACHE_HOME=tmp_path / "cache"))
    assert p.returncode == 0, p.stderr
    r = json.loads(res.read_text())
    body = [ln for ln in p.stdout.splitlines() if ln[:5].strip().isdigit()]
    assert len(body) == r["plan"]["steps"]
    assert "default" in p.stdout  # no calibration in this cache
    p = subprocess.run([QGT, "report", str(res), "--json"], capture_output=True, text=True,
                       timeout=120, env=clean_env(XDG_CACHE_HOME=tmp_path / "cache"))
    a = json.loads(p.stdout)
    assert {x["bound"] for x in a["rows"]} <= {"memory", "compute", "disk", "network"}
    assert "disk" in {x["bound"] for x in a["rows"]}  # out of core: pages bind some steps
    assert abs(sum(a["by_resource"].values()) - a["total"]) < 1e-9
    assert r["metadata"]["trace"]["events"] == len(doc["traceEvents"])


def test_report_and_timeline_refuse_bad_input(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    for cmd in (["report", str(bad)], ["timeline", str(bad), "-o", str(tmp_path / "t.png")],
                ["report", str(tmp_path / "missing.json")]):
        p = subprocess.run([QGT, *cmd], capture_output=True, text=True, timeout=60,
                           env=clean_env())
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr


def test_records_reach_a_programs_own_handlers_with_the_rank():
    import logging

    from qgt.obs import logs

    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append((record.rank, record.levelname, record.getMessage()))

    root = logging.getLogger()
    h = Keep()
    root.addHandler(h)
    try:
        log = logs.configure("info", 3)
        assert not any(isinstance(x, logs._Handler) for x in log.handlers)  # none of qgt's
        log.propagate = True
        log.info("rank 0 only")  # dropped on rank 3
        log.info("mine", extra=logs.EVERY_RANK)
        log.warning("twice")
        log.warning("twice", extra=logs.EVERY_RANK)
        log.debug("below the level", extra=logs.EVERY_RANK)
    finally:
        root.removeHandler(h)
        logging.getLogger(logs.LOGGER).setLevel(logging.WARNING)
    assert seen == [(3, "INFO", "mine"), (3, "WARNING", "twice")]


def test_calibrate_measures_the_exchange_bandwidth():
    from qgt.bench.calibrate import measure_exchange

    res = measure_exchange()
    assert res["exchange_Bps"] > 1e8 and res["exchange_bytes"] == 64 << 20
