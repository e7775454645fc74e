//! Fetching images: local files, http(s) with caching, appc discovery (owner: the fetch work).
