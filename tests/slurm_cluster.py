"""A real single-node Slurm cluster for tests: the `slurm_cluster` pytest fixture.

tests/conftest.py imports the fixture from here; tests that launch qgt with `srun`/`sbatch`
(preemption, requeue, checkpoint-restart) take it as an argument. The fixture starts private
daemons in a temporary directory -- munged (own socket and key), slurmctld and slurmd, each in the
foreground as a child of the test process -- with a slurm.conf generated at run time (free TCP
ports, this host's real CPUs and memory from `slurmd -C`). Nothing under /etc is used, so it can
run beside (but does not need) a system Slurm. Needs root, as CI and developers are here: slurmd
must be able to run jobs as the submitting user.

If Slurm is not installed the fixture skips (run .ci/install-slurm.sh); any other problem fails
with the daemons' logs, so a broken setup is never mistaken for a skip.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

# Job states after which a job never runs again. REQUEUED, REQUEUE_HOLD, PENDING and friends are
# not here: a requeued job comes back as PENDING and runs again. (PREEMPTED is final only because
# this cluster configures no preemption-with-requeue.)
TERMINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "BOOT_FAIL",
        "DEADLINE",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "SPECIAL_EXIT",
    }
)

START_TIMEOUT = 60.0  # seconds for the node to show up idle in sinfo
CMD_TIMEOUT = 60.0  # default timeout of one Slurm client command


class SlurmError(RuntimeError):
    """A Slurm command or daemon misbehaved; the message carries the command and its output."""


def _free_port() -> int:
    # Bind to port 0 and let the kernel pick; closed at once, so there is a tiny race with other
    # processes, acceptable on a test machine (Slurm would fail loudly, with the logs shown).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _parse_kv(text: str) -> dict[str, str]:
    """Parse `scontrol -o` / jobcomp output: `Key=value Key2=value with spaces ...`.

    Values may contain spaces (Command, WorkDir), so a field ends only where the next
    `Key=` starts.
    """
    fields: dict[str, str] = {}
    parts = re.split(r"\s+(?=[A-Za-z][\w:/]*=)", text.strip())
    for part in parts:
        key, sep, value = part.partition("=")
        if sep:
            fields[key] = value
    return fields


def _search_path() -> str:
    """PATH plus the sbin directories, where Debian puts slurmd, slurmctld and munged.

    A non-login root shell (or CI's environment) may lack them; Slurm being installed must
    not look like Slurm missing.
    """
    dirs = os.environ.get("PATH", os.defpath).split(os.pathsep)
    dirs += [d for d in ("/usr/local/sbin", "/usr/sbin", "/sbin") if d not in dirs]
    return os.pathsep.join(dirs)


def slurm_installed() -> bool:
    """True if the Slurm daemons and clients this fixture needs are on the search path."""
    path = _search_path()
    return all(shutil.which(b, path=path) for b in ("slurmctld", "slurmd", "sbatch", "srun"))


def _node_line(env: dict[str, str]) -> str:
    """NodeName line with this host's real hardware, as `slurmd -C` reports it."""
    out = subprocess.run(
        ["slurmd", "-C"], capture_output=True, text=True, timeout=30, check=True, env=env
    ).stdout
    for line in out.splitlines():
        if line.startswith("NodeName="):
            return line.strip()
    raise SlurmError(f"`slurmd -C` printed no NodeName line:\n{out}")


class SlurmCluster:
    """Handle on the running cluster; every client call goes through `.run` with a timeout."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf_path = root / "slurm.conf"
        self.log_dir = root / "log"
        self.jobcomp_path = self.log_dir / "jobcomp.txt"
        self.auth = "auth/munge"
        self.node = socket.gethostname().split(".")[0]
        self.env: dict[str, str] = {}
        self._procs: dict[str, subprocess.Popen] = {}
        self.timings: dict[str, float] = {}

    # ---- client side -------------------------------------------------------------------------

    def run(
        self,
        cmd: Sequence[str] | str,
        *,
        timeout: float = CMD_TIMEOUT,
        check: bool = True,
        env: dict[str, str] | None = None,
        **kw,
    ) -> subprocess.CompletedProcess:
        """Run a command against this cluster (SLURM_CONF set); text output captured.

        `cmd` is an argv list, or a string run by the shell. Raises SlurmError on a non-zero exit
        (unless check=False) and on timeout, with the output in the message.
        """
        full_env = dict(self.env)
        if env:
            full_env.update(env)
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        try:
            proc = subprocess.run(
                cmd, env=full_env, timeout=timeout, shell=isinstance(cmd, str), **kw
            )
        except subprocess.TimeoutExpired as exc:
            raise SlurmError(
                f"timed out after {timeout} s: {cmd}\nstdout: {exc.stdout}\nstderr: {exc.stderr}"
            ) from None
        if check and proc.returncode != 0:
            raise SlurmError(
                f"exit {proc.returncode}: {cmd}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def submit(
        self,
        script_path: str | os.PathLike,
        *sbatch_args: str,
        script_args: Sequence[str] = (),
        cwd: str | os.PathLike | None = None,
    ) -> int:
        """`sbatch [sbatch_args] script [script_args]`; returns the job id.

        The job's working directory (and so its default slurm-<id>.out) is `cwd`, by default the
        script's directory.
        """
        script = Path(script_path)
        cwd = Path(cwd) if cwd is not None else script.parent
        out = self.run(
            ["sbatch", "--parsable", *sbatch_args, str(script), *script_args], cwd=cwd
        ).stdout
        # --parsable prints "jobid" or "jobid;cluster".
        return int(out.strip().split(";")[0])

    def job_info(self, job_id: int) -> dict[str, object]:
        """`scontrol show job` fields, plus JobState, ExitCode and RestartCnt (int).

        Falls back to the jobcomp log once slurmctld has forgotten the job (MinJobAge is long,
        so that only happens in long sessions); RestartCnt is then unknown (-1).
        """
        proc = self.run(["scontrol", "-o", "show", "job", str(job_id)], check=False)
        if proc.returncode == 0 and proc.stdout.strip():
            info: dict[str, object] = dict(_parse_kv(proc.stdout.splitlines()[0]))
            info["RestartCnt"] = int(str(info.get("Restarts", "0")))
            return info
        for line in reversed(self._jobcomp_lines()):
            fields = _parse_kv(line)
            if fields.get("JobId") == str(job_id):
                info = dict(fields)
                info["RestartCnt"] = -1
                return info
        raise SlurmError(f"job {job_id} unknown to slurmctld and jobcomp:\n{proc.stderr}")

    def job_state(self, job_id: int) -> str:
        # scontrol may append flags ("CANCELLED by 0" is in Reason, but be safe with spaces).
        return str(self.job_info(job_id)["JobState"]).split()[0]

    def wait_job(self, job_id: int, timeout: float = 120.0, poll: float = 0.2) -> str:
        """Wait until the job reaches a terminal state and return it (e.g. "COMPLETED").

        Requeued jobs are waited through: REQUEUED/PENDING are not terminal. On timeout raises
        SlurmError with the job record and the daemon logs.
        """
        deadline = time.monotonic() + timeout
        state = "?"
        while time.monotonic() < deadline:
            state = self.job_state(job_id)
            if state in TERMINAL_STATES:
                return state
            time.sleep(poll)
        raise SlurmError(
            f"job {job_id} still {state} after {timeout} s\n{self.job_info(job_id)}\n" + self.logs()
        )

    def wait_state(
        self, job_id: int, states: Sequence[str], timeout: float = 60.0, poll: float = 0.1
    ) -> str:
        """Wait until the job's state is one of `states` (e.g. RUNNING); returns it."""
        deadline = time.monotonic() + timeout
        state = "?"
        while time.monotonic() < deadline:
            state = self.job_state(job_id)
            if state in states:
                return state
            if state in TERMINAL_STATES:
                break
            time.sleep(poll)
        raise SlurmError(f"job {job_id} is {state}, never reached {list(states)}\n" + self.logs())

    def signal_batch(self, job_id: int, sig: str = "USR1") -> None:
        """Send `sig` to the batch shell only, as Slurm's `--signal=B:SIG@T` would.

        This simulates a preemption warning at once, instead of waiting for the time limit to
        come near (`--time=1 --signal=B:USR1@50` fires only ~10 s after start, at best).
        """
        self.run(["scancel", f"--signal={sig}", "--batch", str(job_id)])

    def output(self, job_id: int) -> str:
        """Contents of the job's stdout file (empty if not written yet)."""
        path = Path(str(self.job_info(job_id).get("StdOut", "")))
        return path.read_text() if path.is_file() else ""

    def cancel_all(self, timeout: float = 20.0) -> None:
        """Cancel every job and wait until the queue is empty (the cluster is private)."""
        self.run(["scancel", "--user", str(os.getuid())], check=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            q = self.run(["squeue", "-h", "-o", "%i %T"], check=False)
            if q.returncode == 0 and not q.stdout.strip():
                return
            time.sleep(0.2)

    def logs(self, tail: int = 60) -> str:
        """The last `tail` lines of each daemon's log, for failure messages.

        A daemon's stderr copy is shown instead of its log file when it has no log file
        (munged, or a slurm daemon that died before opening it) or when it has exited.
        """
        chunks = []
        for name, proc in self._procs.items():
            path = self.log_dir / f"{name}.log"
            if not path.is_file() or proc.poll() is not None:
                path = self.log_dir / f"{name}.stderr"
            if not path.is_file():
                continue
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            status = "running" if proc.poll() is None else f"exited {proc.returncode}"
            chunks.append(f"==== {path.name} ({status}) ====\n" + "\n".join(lines))
        return "\n".join(chunks)

    def _jobcomp_lines(self) -> list[str]:
        if not self.jobcomp_path.is_file():
            return []
        return self.jobcomp_path.read_text(errors="replace").splitlines()

    # ---- daemons -----------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> None:
        # Own session: a Ctrl-C on pytest does not reach the daemons before teardown runs, and
        # teardown can signal exactly the processes it started.
        # Daemons in the foreground also log to stderr: that catches errors from before they
        # open their log file (a bad slurm.conf), and is munged's only log.
        out = open(self.log_dir / f"{name}.stderr", "w")  # noqa: SIM115 - the child keeps it
        self._procs[name] = subprocess.Popen(
            argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        out.close()

    def _start_munge(self) -> str | None:
        """Start a private munged; returns AuthInfo for slurm.conf, or None if munge won't work.

        A fresh key in the private dir: only our daemons and clients share it. --force because
        we run as root and /tmp is world-writable, which munged otherwise rejects.
        """
        path = self.env["PATH"]
        if not all(shutil.which(b, path=path) for b in ("munged", "mungekey", "munge")):
            return None
        mdir = self.root / "munge"
        mdir.mkdir(mode=0o755)
        key = mdir / "munge.key"
        sock = mdir / "munge.socket"
        try:
            subprocess.run(
                ["mungekey", "--create", f"--keyfile={key}"],
                check=True,
                capture_output=True,
                timeout=30,
                env=self.env,
            )
            key.chmod(0o400)
        except (subprocess.SubprocessError, OSError):
            return None
        self._spawn(
            "munged",
            [
                "munged",
                "--foreground",
                "--force",
                f"--socket={sock}",
                f"--key-file={key}",
                f"--pid-file={mdir / 'munged.pid'}",
                f"--seed-file={mdir / 'munged.seed'}",
            ],
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._procs["munged"].poll() is not None:
                return None
            probe = subprocess.run(
                f"munge -n -S {sock} | unmunge -S {sock}",
                shell=True,
                capture_output=True,
                timeout=10,
                env=self.env,
            )
            if probe.returncode == 0:
                return f"socket={sock}"
            time.sleep(0.05)
        return None

    def _write_conf(self, auth_info: str | None) -> None:
        state = self.root / "state"
        spool = self.root / "spool"
        state.mkdir()
        spool.mkdir()
        node_line = _node_line(self.env)
        # slurmd -C names the node after the host; keep its hardware fields, our node name.
        node_fields = re.sub(r"^NodeName=\S+\s*", "", node_line)
        node_fields = re.sub(r"\s*UpTime=\S+", "", node_fields)
        # cred_expire (default 120 s, minimum 5) is also how long a requeued job waits before
        # it may start again: 5 s makes a requeue test take seconds instead of two minutes.
        if auth_info is not None:
            auth = [
                "AuthType=auth/munge",
                "CredType=cred/munge",
                f"AuthInfo={auth_info},cred_expire=5",
            ]
        else:
            # Munge missing or broken: auth/none works for one node owned by root. Documented
            # here because it means any local user could submit as anyone -- tests only.
            self.auth = "auth/none"
            auth = ["AuthType=auth/none", "CredType=cred/none", "AuthInfo=cred_expire=5"]
        lines = [
            "# Generated by tests/slurm_cluster.py for one test session; do not edit.",
            "ClusterName=qgttest",
            # Explicit loopback addresses: no dependence on the host name resolving.
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            *auth,
            f"StateSaveLocation={state}",
            f"SlurmdSpoolDir={spool}",
            f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.root / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.log_dir / 'slurmctld.log'}",
            f"SlurmdLogFile={self.log_dir / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            # No cgroups needed (containers and VMs often lack a delegated cgroup tree).
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            # Final states without a database: jobcomp text log, and job records kept in
            # slurmctld for an hour after they end so `scontrol show job` still answers.
            "JobCompType=jobcomp/filetxt",
            f"JobCompLoc={self.jobcomp_path}",
            "MinJobAge=3600",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            # builtin scheduler: no backfill cycle. sched_interval=1 (default 60): the periodic
            # pass then starts a batch job ~1 s after sbatch, instead of ~3 s (batch_sched_delay).
            "SchedulerType=sched/builtin",
            "SchedulerParameters=sched_interval=1",
            "MpiDefault=pmi2",
            # A fresh job-id range per cluster. With -i (no saved state) every cluster would
            # number from 1 again, and MPICH names its node shared-memory segment after the
            # PMI kvsname (job.step): a segment a SIGKILLed job left in /dev/shm under the
            # same name makes the next job's MPI_Init read stale addresses and abort.
            f"FirstJobId={random.randrange(1000, 60_000_000)}",
            "JobRequeue=1",
            "ReturnToService=2",
            # Fast teardown and requeue: SIGKILL 2 s after SIGTERM; no grace beyond the limit.
            "KillWait=2",
            "OverTimeLimit=0",
            "MessageTimeout=10",
            "SlurmdTimeout=30",
            "InactiveLimit=0",
            "UnkillableStepTimeout=30",
            f"NodeName={self.node} NodeAddr=127.0.0.1 {node_fields} State=UNKNOWN",
            f"PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf_path.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        """Start munged, slurmctld and slurmd; return once the node is idle (a few seconds)."""
        if os.geteuid() != 0:
            # SlurmUser=root and slurmd switching to the job's user need root.
            raise SlurmError("the Slurm test cluster runs its daemons as root: run tests as root")
        t0 = time.monotonic()
        self.log_dir.mkdir()
        # Strip any SLURM_* of an enclosing real job, so clients talk only to this cluster.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        self.env["PATH"] = _search_path()
        self.env["SLURM_CONF"] = str(self.conf_path)
        auth_info = self._start_munge()
        self.timings["munge"] = time.monotonic() - t0
        self._write_conf(auth_info)
        self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf_path)])
        self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf_path), "-N", self.node])
        self._wait_idle()
        self.timings["start"] = time.monotonic() - t0

    def _wait_idle(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise SlurmError(f"{name} exited with {proc.returncode}\n" + self.logs())
            q = self.run(["sinfo", "-h", "-N", "-o", "%N %T"], check=False, timeout=15)
            last = q.stdout.strip() + q.stderr.strip()
            if q.returncode == 0 and q.stdout.split()[1:2] == ["idle"]:
                return
            time.sleep(0.2)
        raise SlurmError(f"node not idle after {START_TIMEOUT} s (sinfo: {last!r})\n" + self.logs())

    def stop(self) -> None:
        """Cancel jobs, then stop slurmd, slurmctld and munged: SIGTERM, then SIGKILL."""
        if "slurmctld" in self._procs and self._procs["slurmctld"].poll() is None:
            try:
                self.cancel_all()
            except SlurmError:
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self._procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """Session-wide single-node Slurm cluster; skips only if Slurm is not installed.

    Set QGT_SLURM_KEEP=1 to keep its directory (conf, logs, jobcomp) after the session.
    """
    if not slurm_installed():
        pytest.skip("slurm-wlm not installed: run .ci/install-slurm.sh")
    root = Path(tempfile.mkdtemp(prefix="qgt-slurm-"))
    # slurmstepd and munged need to traverse it; mkdtemp makes it 0700.
    root.chmod(0o755)
    cluster = SlurmCluster(root)
    try:
        try:
            cluster.start()
        except (SlurmError, OSError, subprocess.SubprocessError) as exc:
            pytest.fail(f"could not start the Slurm test cluster in {root}: {exc}", pytrace=False)
        yield cluster
    finally:
        cluster.stop()
        if os.environ.get("QGT_SLURM_KEEP") != "1":
            shutil.rmtree(root, ignore_errors=True)
