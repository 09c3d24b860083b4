"""``plexhub up``: the whole local deployment on 127.0.0.1, stopped with Ctrl-C.

1. configurable-http-proxy (npm, installed when missing) and the synthetic samples;
2. JupyterHub (``hub/jupyterhub_config.py``) in its own session: it starts the proxy and the
   API service; its log goes to ``<data_dir>/hub/jupyterhub.log``;
3. waits for ``/hub/api/`` (200, not just an open port) and the API's health;
4. the demo studies through the API (idempotent), then prints the URL and the demo logins;
5. SIGINT/SIGTERM: SIGTERM to the hub, which stops the servers, the service and the proxy;
   anything of its process tree still alive afterwards is terminated too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import httpx
import psutil

from plexhub.errors import ConfigurationError, PlexhubError
from plexhub.hub.config import CONFIG_FILE
from plexhub.private import private_dir, private_file
from plexhub.settings import Settings, get_settings

STOP_TIMEOUT = 60.0
READY_TIMEOUT = 180.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=None,
                   help="port of the hub on 127.0.0.1 (default: PLEXHUB_HUB_PORT, 8000)")


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _say(text: str) -> None:
    print(text, flush=True)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class Deployment:
    """The hub process (and what it started), from start to a clean stop."""

    def __init__(self, settings: Settings, env: dict[str, str]) -> None:
        self.settings = settings
        self.env = env
        host = "127.0.0.1" if settings.hub_bind in ("0.0.0.0", "::", "") else settings.hub_bind
        self.base = f"http://{host}:{settings.hub_port}"
        self.log_path = settings.hub_dir.absolute() / "jupyterhub.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.tree: dict[int, psutil.Process] = {}

    def start(self) -> None:
        private_dir(self.log_path.parent)
        private_file(self.log_path, create=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n==== plexhub up {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(CONFIG_FILE)],
                cwd=self.settings.hub_dir.absolute(), env=self.env, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                umask=0o077,  # what the hub, the proxy and the service create is theirs alone
                start_new_session=True)  # Ctrl-C reaches plexhub up only; it stops the hub

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def remember_tree(self) -> None:
        """Note the hub's descendants (proxy, service, servers, kernels) for the stop."""
        if not self.alive() or self.proc is None:
            return
        try:
            for p in psutil.Process(self.proc.pid).children(recursive=True):
                self.tree.setdefault(p.pid, p)
        except psutil.Error:
            pass

    def wait_for(self, url: str, what: str, headers: dict[str, str] | None = None) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if not self.alive():
                raise PlexhubError("JupyterHub", f"exited while waiting for {what}",
                                   f"see {self.log_path}:\n{self.log_tail()}")
            try:
                if httpx.get(url, headers=headers, timeout=5).status_code == 200:
                    self.remember_tree()
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise PlexhubError(what, f"not ready after {READY_TIMEOUT:.0f} s",
                                   f"see {self.log_path}")
            time.sleep(0.25)

    def stop(self) -> None:
        """SIGTERM to the hub (it stops servers, service and proxy); then make sure."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            self.remember_tree()
            proc.terminate()
            deadline = time.monotonic() + STOP_TIMEOUT
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    proc.wait(0.5)
                except subprocess.TimeoutExpired:
                    pass
                except KeyboardInterrupt:  # a second Ctrl-C: do not wait any longer
                    break
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # give what the hub stopped a moment to exit on its own, then stop the rest
        _, left = psutil.wait_procs([p for p in self.tree.values() if p.is_running()],
                                    timeout=5)
        for p in left:
            with contextlib.suppress(psutil.Error):
                p.terminate()
        _, still = psutil.wait_procs(left, timeout=10)
        for p in still:
            with contextlib.suppress(psutil.Error):
                p.kill()
        if left:
            print(f"plexhub: stopped {len(left)} process(es) the hub left behind",
                  file=sys.stderr)


def _banner(settings: Settings, base: str, password: str, generated: bool, admin: str,
            admin_generated: bool, counts: dict[str, int], log_path: Path) -> str:
    lines = [
        "",
        f"plexhub is up: {base}/hub/",
        "",
        "  logins (user / password):",
        f"    scientist / {password}    JupyterLab",
        f"    analyst   / {password}    JupyterLab",
        f"    sponsor   / {password}    the sponsor portal (organisation acme)",
    ]
    if generated:
        lines.append("    (password generated for this run; set PLEXHUB_DEMO_PASSWORD to choose)")
    lines += [
        f"  studies: DEMO ({counts.get('DEMO', 0)} images, granted to sponsor), "
        f"DEMO-2 ({counts.get('DEMO-2', 0)} images, not granted)",
        f"  API: {base}/services/plexhub/api/v1/ (Authorization: Bearer <admin token>)",
        f"  admin token{' (generated for this run)' if admin_generated else ''}: {admin}",
        f"  data: {settings.data_dir}   hub log: {log_path}",
        "",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def run_up(args: argparse.Namespace) -> int:
    """Start everything, seed the demo, print the logins, run until SIGINT/SIGTERM."""
    from plexhub.client import ApiClient
    from plexhub.hub.demo import make_samples, seed_demo
    from plexhub.hub.proxy import ensure_chp

    settings = get_settings()
    if getattr(args, "port", None):
        settings = settings.model_copy(update={"hub_port": args.port})
    settings = settings.model_copy(update={"data_dir": settings.data_dir.absolute()})
    if not _port_free(settings.hub_bind, settings.hub_port):
        raise ConfigurationError(f"port {settings.hub_port}", "is already in use",
                                 "stop what uses it or choose another with --port")
    generated = settings.demo_password is None
    password = secrets.token_urlsafe(9) if settings.demo_password is None \
        else settings.demo_password.get_secret_value()
    admin_generated = settings.admin_token is None
    admin = secrets.token_urlsafe(32) if settings.admin_token is None \
        else settings.admin_token.get_secret_value()

    old = {s: signal.signal(s, _raise_interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    deployment: Deployment | None = None
    try:
        chp = ensure_chp(settings)
        incoming = next((Path(r) for r in settings.ingest_root_list if "://" not in r), None)
        if incoming is None:
            raise ConfigurationError("PLEXHUB_INGEST_ROOTS", "has no local folder for samples")
        samples = make_samples(incoming, log=_say)
        env = {**os.environ,
               "PLEXHUB_DATA_DIR": str(settings.data_dir),
               "PLEXHUB_HUB_PORT": str(settings.hub_port),
               "PLEXHUB_DEMO_PASSWORD": password,
               "PLEXHUB_ADMIN_TOKEN": admin,
               "PLEXHUB_CHP_COMMAND": chp}
        private_dir(settings.data_dir)
        private_dir(settings.hub_dir)
        deployment = Deployment(settings, env)
        print(f"plexhub: starting JupyterHub on {deployment.base} (log: "
              f"{deployment.log_path})", flush=True)
        deployment.start()
        deployment.wait_for(f"{deployment.base}/hub/api/", "the hub")
        api_base = f"{deployment.base}/services/plexhub/api/v1"
        deployment.wait_for(f"{api_base}/health", "the API service")
        with ApiClient(api_base, admin) as api:
            counts = seed_demo(api, samples, log=_say)
        deployment.remember_tree()
        print(_banner(settings, deployment.base, password, generated, admin, admin_generated,
                      counts, deployment.log_path), flush=True)
        while deployment.alive():
            time.sleep(1.0)
            deployment.remember_tree()
        print(f"plexhub: JupyterHub exited; see {deployment.log_path}:\n"
              f"{deployment.log_tail()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nplexhub: stopping (the hub stops the servers, the API and the proxy)...",
              flush=True)
        return 0
    finally:
        if deployment is not None:
            deployment.stop()
            print("plexhub: stopped", flush=True)
        for s, handler in old.items():
            signal.signal(s, handler)
