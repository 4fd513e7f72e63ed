"""The HTML pages, one module per audience."""
