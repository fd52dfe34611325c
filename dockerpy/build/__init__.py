"""``docker build``: Dockerfiles parsed, expanded and executed step by step
with an explicit cache (classic builder protocol)."""
