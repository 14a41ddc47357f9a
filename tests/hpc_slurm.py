"""A single-node SLURM cluster on localhost for the tests: munged, slurmctld and slurmd started
without systemd from a configuration written to a temporary folder, stopped afterwards.

The packages come from ``scripts/install_system.sh`` (run by ``scripts/test.sh``); the cluster
needs root (slurmd starts jobs as their owner). ``sbatch``, ``squeue`` ... find it through
``SLURM_CONF`` (set in :attr:`Cluster.env`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch")


def unavailable() -> str | None:
    """Why a local cluster cannot be started here, or None."""
    if os.geteuid() != 0:
        return "a local SLURM cluster needs root (slurmd starts jobs as their owner)"
    missing = [d for d in DAEMONS if not shutil.which(d, path=os.environ.get("PATH", "") + ":/usr/sbin")]
    if missing:
        return (f"{', '.join(missing)} not installed (scripts/install_system.sh installs slurmctld, "
                "slurmd, slurm-client and munge with apt as root)")
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _slurm_conf(root: Path, host: str, cpus: int, mem_mb: int) -> str:
    return f"""ClusterName=qmriprep-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge/munge.socket
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge=600
InactiveLimit=0
KillWait=5
SlurmdTimeout=60
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
"""


@dataclass
class Cluster:
    """A running local cluster: ``env`` for the client commands, ``stop()`` to end it."""

    root: Path
    env: dict = field(default_factory=dict)
    procs: list = field(default_factory=list)

    def run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        """A SLURM client command on this cluster (``check=True``, text output)."""
        return subprocess.run(list(args), env=self.env, check=True, capture_output=True, text=True, **kw)

    def wait(self, job_ids, timeout: float) -> dict[str, str]:
        """Wait until the jobs (and their array tasks) left the queue; their final states
        (``scontrol show job``; MinJobAge keeps finished jobs visible)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = self.states(job_ids)
            if states and all(s not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING") for s in states.values()):
                return states
            time.sleep(2)
        raise TimeoutError(f"jobs {job_ids} not finished after {timeout} s: {self.states(job_ids)}\n"
                           + self.logs())

    def states(self, job_ids) -> dict[str, str]:
        """``{job id (array tasks as 12_0): state}`` of the given jobs."""
        out = {}
        for job in job_ids:
            text = self.run("scontrol", "-o", "show", "job", str(job)).stdout
            for line in text.splitlines():
                fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
                task = fields.get("ArrayTaskId")
                key = f"{fields['ArrayJobId']}_{task}" if task and task.isdigit() else fields["JobId"]
                out[key] = fields["JobState"]
        return out

    def jobs(self, name_contains: str) -> list[dict]:
        """Every job the controller remembers whose name contains ``name_contains``: the fields
        of ``scontrol show job``, plus ``EndEpoch`` (seconds since 1970)."""
        found = []
        for line in self.run("scontrol", "-o", "show", "job").stdout.splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            if name_contains in fields.get("JobName", ""):
                end = fields.get("EndTime", "Unknown")
                fields["EndEpoch"] = (time.mktime(time.strptime(end, "%Y-%m-%dT%H:%M:%S"))
                                      if end[:1].isdigit() else float("inf"))
                found.append(fields)
        return found

    def logs(self) -> str:
        return "".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                       for p in sorted(self.root.glob("*.log")))

    def stop(self) -> None:
        subprocess.run(["scancel", "--quiet", "--user", "root"], env=self.env, check=False)
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_cluster(root: Path, cpus: int = 2, mem_mb: int = 4000, timeout: float = 60) -> Cluster:
    """munged, slurmctld and slurmd in the foreground (children of this process), the
    configuration and state in ``root``; returns when the node accepts jobs."""
    host = socket.gethostname().split(".")[0]
    for sub in ("munge", "state", "spool"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "munge", 0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(128))
    os.chmod(key, 0o400)
    conf = root / "slurm.conf"
    conf.write_text(_slurm_conf(root, host, cpus, mem_mb))
    env = {**os.environ, "SLURM_CONF": str(conf), "PATH": os.environ.get("PATH", "") + ":/usr/sbin"}
    cluster = Cluster(root=root, env=env)
    munge = root / "munge"
    daemons = [
        ["munged", "-F", "-f", f"--key-file={key}", f"--socket={munge}/munge.socket",
         f"--pid-file={munge}/munged.pid", f"--log-file={root}/munged.log", f"--seed-file={munge}/seed"],
        ["slurmctld", "-D", "-i", "-f", str(conf)],
        ["slurmd", "-D", "-f", str(conf), "-N", host],
    ]
    try:
        for argv in daemons:
            cluster.procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                                  stderr=(root / f"{argv[0]}.err").open("w")))
            _wait_ready(cluster, argv[0], timeout)
    except Exception:
        cluster.stop()
        raise
    return cluster


def _wait_ready(cluster: Cluster, daemon: str, timeout: float) -> None:
    checks = {"munged": lambda: (cluster.root / "munge" / "munge.socket").exists(),
              "slurmctld": lambda: subprocess.run(["scontrol", "ping"], env=cluster.env, capture_output=True,
                                                  text=True).stdout.count("UP") > 0,
              "slurmd": lambda: "idle" in subprocess.run(["sinfo", "-h", "-o", "%t"], env=cluster.env,
                                                         capture_output=True, text=True).stdout}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cluster.procs[-1].poll() is not None:
            break
        if checks[daemon]():
            return
        time.sleep(0.5)
    err = (cluster.root / f"{daemon}.err").read_text(errors="replace")
    raise RuntimeError(f"{daemon} did not start within {timeout} s: {err[-2000:]}\n{cluster.logs()}")
