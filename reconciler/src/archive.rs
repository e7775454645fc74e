//! Compression detection for image archives (owner: the store work).
//!
//! CONTRACT (to be implemented):
//! - `Compression::sniff(&[u8]) -> Compression` from magic bytes: gzip (1f 8b),
//!   bzip2 ("BZh"), xz (fd 37 7a 58 5a 00), zstd (28 b5 2f fd), else `None` (plain tar).
//! - `decompress(reader) -> Result<(Compression, Box<dyn Read + Send>), ArchiveError>`
//!   peeks the magic without losing bytes and returns a reader of the uncompressed tar.
//!   Corrupt/truncated compressed input must surface as an `io::Error` when read.
