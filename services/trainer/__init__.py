"""The trainer service: a thin gRPC front over socialgan's core."""
