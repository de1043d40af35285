"""CLI command modules; ``forecaster.cli`` registers them on one Typer app."""
