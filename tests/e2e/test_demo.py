"""`make demo` brings up the broker on its embedded defaults with the London demo data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import requests

from tests.support.live import free_port
from tests.support.settings import ROOT


def test_the_demo_serves_the_login_page_and_lists_the_demo_people(tmp_path) -> None:  # type: ignore[no-untyped-def]
    port, app_port = free_port(), free_port()
    env = {**os.environ, "PORT": str(port), "DEMO_APP_PORT": str(app_port), "SUPERCLOUD_DEMO_STATE": str(tmp_path)}
    env.pop("SUPERCLOUD_DATABASE_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "demo.run"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        page = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                page = requests.get(f"http://127.0.0.1:{port}/login", timeout=2)
                if page.status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        assert page is not None and page.status_code == 200, "the demo broker never served /login"
        assert "Sign in" in page.text and "Work email address" in page.text
        meta = requests.get(f"http://127.0.0.1:{port}/.well-known/openid-configuration", timeout=5).json()
        assert meta["issuer"] == f"http://127.0.0.1:{port}"
        assert (tmp_path / "master.key").exists() and (tmp_path / "supercloud.db").exists()
        assert oct((tmp_path / "master.key").stat().st_mode & 0o777) == "0o600"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode(errors="replace")
    assert "amara.okafor@camden.test" in output and "london-demo" in output
    assert "Press Ctrl-C to stop." in output
