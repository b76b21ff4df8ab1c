"""Pure modules: the option/FEATURE catalog, m4-safe value types, .mc parse/render, map rows.

No model, no subprocess, no MTA file: the web tier and the agent both import these.
"""
