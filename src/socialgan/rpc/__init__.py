"""gRPC plumbing shared by every service and client: one way to serve, one way to call."""
