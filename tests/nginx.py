"""A real nginx (Debian's) running a site, for the tests and the streaming benchmark."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.postgres import free_port


def nginx_binary() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


@dataclass
class Nginx:
    process: subprocess.Popen[bytes]
    base: str
    root: Path

    def stop(self) -> None:
        self.process.send_signal(signal.SIGQUIT)
        self.process.wait(timeout=30)


def start_nginx(folder: Path, site: str, port: int | None = None) -> Nginx:
    """nginx with one worker serving ``site`` (``server { … }`` blocks, as a site file
    holds them, listening on 127.0.0.1:``port``), once it accepts connections."""
    port = port or free_port()
    root = folder / f"nginx-{port}"
    (root / "logs").mkdir(parents=True)
    (root / "site.conf").write_text(site)
    user = "user root;\n" if os.geteuid() == 0 else ""
    (root / "nginx.conf").write_text(
        f"{user}worker_processes 1;\ndaemon off;\nerror_log {root}/logs/error.log;\n"
        f"pid {root}/nginx.pid;\nevents {{ worker_connections 1024; }}\n"
        f"http {{ access_log off; keepalive_requests 1000000;\n"
        f"  client_body_temp_path {root}/body; proxy_temp_path {root}/proxy;\n"
        f"  include {root}/site.conf;\n}}\n"
    )
    command = [nginx_binary(), "-p", str(root), "-c", str(root / "nginx.conf")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    if checked.returncode != 0:
        raise RuntimeError(f"nginx refused the site: {checked.stderr}")
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while True:  # nginx has no readiness signal: it is ready once it accepts
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                _out, err = process.communicate()
                raise RuntimeError(f"nginx did not start: {err.decode(errors='replace')}") from None
            time.sleep(0.02)
    return Nginx(process, f"http://127.0.0.1:{port}", root)
