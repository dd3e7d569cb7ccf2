"""Scraping: collect a hashtag's images from a source into raw/<hashtag>/.

base.py (the Item and Source types), sources.py (URL lists, spec parsing), local_files.py
(folder and zip sources on the service's disk, read only under its import root), upload.py
(pictures a client sends: UploadImages), instagram.py,
mastodon.py and x.py (the social APIs, through api.py), download.py (the HTTP engine:
timeouts, retries, rate-limit headers, per-host limits, SSRF guard), state.py (per-source
cursor and archive of seen posts) and scrape.py (run_scrape: fetch, check, store once).
"""

from socialgan.scraping.download import Downloader, DownloadPolicy, FetchError
from socialgan.scraping.scrape import ScrapeCounts, ScrapeResult, new_scrape_id, run_scrape
from socialgan.scraping.sources import (
    FolderSource,
    HttpSource,
    Item,
    Source,
    UrlListSource,
    ZipSource,
    parse_source_spec,
)

__all__ = [
    "Downloader", "DownloadPolicy", "FetchError", "FolderSource", "HttpSource", "Item",
    "ScrapeCounts", "ScrapeResult", "Source", "UrlListSource", "ZipSource", "new_scrape_id",
    "parse_source_spec", "run_scrape",
]
