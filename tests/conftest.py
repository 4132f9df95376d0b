import logging

import pytest


@pytest.fixture(autouse=True)
def _restore_package_logging():
    """Remove handlers a command-line test adds, since they write to that test's captured stream."""
    package_logger = logging.getLogger("cutswap")
    handlers = list(package_logger.handlers)
    level = package_logger.level
    yield
    for handler in package_logger.handlers:
        if handler not in handlers:
            package_logger.removeHandler(handler)
    package_logger.setLevel(level)
