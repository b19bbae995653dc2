"""Command-line experiments (one module per ``jaxcollapse run NAME``)."""
