"""Contract checks for plugin authors: hold a third-party component to the built-ins\x27 tests."""
