"""Scraping: collect a hashtag's images from a source into raw/<hashtag>/ (issue 2 skeleton;
issue 3 adds the social sources and the concurrent download engine behind the same API)."""

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
