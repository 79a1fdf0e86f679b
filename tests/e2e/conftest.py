"""The live broker, served over real HTTP once per test session (per xdist worker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.databases import fresh_database
from tests.support.live import LiveBroker, start_live_broker


@pytest.fixture(scope="session")
def live_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBroker]:
    """A broker under gunicorn on a free loopback port, with the demo app beside it."""
    folder = tmp_path_factory.mktemp("live")
    with fresh_database(folder) as url:
        broker = start_live_broker(folder, url)
        try:
            yield broker
        finally:
            broker.stop()
