"""Former home of the posterior tests' model and batch: now :mod:`tests.fixtures` (one place for
the test configurations). Kept so that tests written against the old name still import."""

from tests.fixtures import VIDEO as TINY
from tests.fixtures import tiny

__all__ = ["TINY", "tiny"]
