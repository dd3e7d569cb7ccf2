"""The publisher service: a thin gRPC front over socialgan's core."""
