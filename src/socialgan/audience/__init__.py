"""Choosing the next run's hashtag: by hand, from what is trending, or by the audience's replies."""
