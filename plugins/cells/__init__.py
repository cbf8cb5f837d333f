"""Built-in cells."""
