"""Reliability and security tests reuse the API and daemon harnesses of tests/vpp (no new ones):
the ``api`` fixture is the real aiohttp app over a real migrated database on 127.0.0.1."""

from __future__ import annotations

from tests.vpp.api.conftest import api, api_both  # noqa: F401  (fixtures re-exported)
