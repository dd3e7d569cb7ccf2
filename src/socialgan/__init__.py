"""SocialGAN: hashtag -> scraped images -> clean dataset -> GAN -> served generator -> grid post.

The shared core every service imports: settings, storage, image helpers, the gRPC
plumbing and generated stubs (socialgan.v1), and one subpackage per pipeline stage
(scraping, filtering, training, serving, publishing). Services in services/ only
translate gRPC requests into calls of this package.
"""

__version__ = "0.1.0"
