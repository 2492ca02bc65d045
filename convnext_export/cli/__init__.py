"""Command-line interface (Typer)."""

from convnext_export.cli.app import app, main

__all__ = ["app", "main"]
