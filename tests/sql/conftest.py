"""Fixtures of the SQL plugin tests: the real servers must be there (never skipped)."""
from __future__ import annotations

import pytest

from tests.support import sqlrun


@pytest.fixture(scope="session")
def mysql_server():
    if not sqlrun.mysql_available():
        pytest.fail("MariaDB/MySQL not reachable at 127.0.0.1:3306 as root (the test "
                    "environment provides it)", pytrace=False)


@pytest.fixture(scope="session")
def pgsql_server():
    if not sqlrun.pgsql_available():
        pytest.fail("PostgreSQL not reachable at 127.0.0.1:5432 as postgres (the test "
                    "environment provides it)", pytrace=False)


@pytest.fixture
def server(request):
    engine = request.param if hasattr(request, "param") else None
    return engine


def need_server(request, engine: str) -> None:
    if engine == "mysql":
        request.getfixturevalue("mysql_server")
    elif engine == "pgsql":
        request.getfixturevalue("pgsql_server")
