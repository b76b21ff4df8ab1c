"""The API tests' fixtures: a host row with no MTA behind it (real messages: the root conftest's `submit`)."""

from __future__ import annotations

import pytest

from testing.api import remote_server


@pytest.fixture
def remote(db):
    return remote_server("remote")
