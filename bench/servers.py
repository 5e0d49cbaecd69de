"""The benchmark's server subprocesses: start one on a free loopback port, wait until it is ready, read its CPU
time and memory from /proc, stop it; and the percentile the reports use."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench._common import LOOPBACK

ROOT = Path(__file__).resolve().parent.parent


# -- the server subprocess ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(NO_PROXY="*", no_proxy="*", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), to tell a busy server from a waiting one."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class Server:
    def __init__(self, target: Any, log_path: Path):
        self.target = target
        self.port = free_port()
        self.base = f"http://{LOOPBACK}:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.target.argv(self.port), cwd=ROOT, env=child_env(self.target.env),
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    async def wait_ready(self, session: aiohttp.ClientSession, within: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.target.name} exited with {self.proc.returncode} before it was ready")
            try:
                async with session.get(self.base + self.target.ready_path,
                                       timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status == 200:
                        return
            except (TimeoutError, aiohttp.ClientError):
                pass
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.target.name} was not ready after {within:.0f} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()

    def errors(self, most: int = 5) -> list[str]:
        """The exceptions the server logged (the last line of each traceback after an ERROR line), with counts:
        why a turn got a 500, kept after the log file is gone."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        found: dict[str, int] = {}
        for i, line in enumerate(lines):
            if " ERROR " not in line:
                continue
            last = line
            for following in lines[i + 1:i + 400]:
                if following and not following[0].isspace() and following[:4].isdigit():
                    break  # the next log record
                if following and not following[0].isspace() and not following.startswith(
                        ("Traceback", "During handling", "The above exception")):
                    last = following
            key = f"{line.split(' ERROR ', 1)[1][:80]} -> {last[:220]}"
            found[key] = found.get(key, 0) + 1
        return [f"{n} x {k}" for k, n in sorted(found.items(), key=lambda kv: -kv[1])[:most]]

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""



def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]




def rss_bytes(pid: int) -> int | None:
    """The resident memory of a process (Linux /proc), in bytes."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        return None
    return None
