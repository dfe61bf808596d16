"""`python -m reliable_graph.cli`: the `reliable-graph` command."""

from reliable_graph.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
