"""The web dashboard: a FastAPI client of the gRPC services, for people watching runs.

Nothing here is imported by `socialgan.dashboard` itself, so the trainer can use
socialgan.dashboard.charts without FastAPI installed.
"""
