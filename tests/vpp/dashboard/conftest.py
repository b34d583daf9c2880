"""The API server fixture of the API tests (the real app over the daemon's parts, no loops)."""

from tests.vpp.api.conftest import api as api  # noqa: F401 -- re-exported as a fixture
