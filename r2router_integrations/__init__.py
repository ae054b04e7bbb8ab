"""r2router_integrations: thin adapters of r2router_core for LangChain, LlamaIndex and HTTP.

Each integration lives in its own subpackage and imports its framework lazily,
so ``import r2router_integrations`` needs nothing beyond the core.
"""
