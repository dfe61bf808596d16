"""The web review console for the inbox: `create_app` (an ASGI app) and `serve` (uvicorn).

Needs the `console` extra: `pip install 'reliable-graph[console]'`.
"""

try:
    from reliable_graph.console.app import TOKEN_ENV, create_app, serve
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
    if exc.name not in ("starlette", "jinja2", "uvicorn"):
        raise
    msg = f"the console needs the 'console' extra ({exc.name} is missing): pip install 'reliable-graph[console]'"
    raise ModuleNotFoundError(msg, name=exc.name) from exc

__all__ = ["TOKEN_ENV", "create_app", "serve"]
