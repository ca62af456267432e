"""The ground floor: pieces every component uses and that import nothing of otelhouse.

Listen addresses, bearer tokens, TLS files, ASGI apps hosted on a running event loop.
Components above take their own narrow configs; only the composition root
(``otelhouse.settings``, ``otelhouse.serve``, ``otelhouse.cli``) sees every setting.
"""
