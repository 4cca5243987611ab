"""Reading and validating catalog files."""
