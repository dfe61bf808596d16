"""The `reliable-graph` command line: `demo`, `calibrate` and `report`."""

from reliable_graph.cli.main import main

__all__ = ["main"]
