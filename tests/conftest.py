import os

os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")

import uuid
from collections.abc import Iterator

import pytest

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def pg_db() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (dropped after), so runs never see each other's rows."""
    import psycopg

    name = f"rg_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
