"""The dashboard service: a thin HTTP front (FastAPI) over the four gRPC services."""
