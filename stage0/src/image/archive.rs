//! Compression detection and decompression for image archives.
//!
//! An ACI may be a plain tar or a tar compressed with gzip, bzip2, xz or zstd. The
//! format is told from the first bytes of the stream ([`Compression::sniff`]);
//! [`decompress`] reads those bytes, puts them back in front of the stream and returns
//! a reader of the uncompressed tar. Concatenated members (`cat a.gz b.gz`, `pbzip2`,
//! multi-stream xz, multi-frame zstd) are decoded as one stream, as the command-line
//! tools do. Corrupt or truncated input surfaces as an `io::Error` from `read`.

use std::fmt;
use std::io::{self, BufRead, BufReader, Chain, Cursor, Read};

use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

/// The longest magic number we look at (xz: 6 bytes).
const MAGIC_LEN: usize = 6;

/// How an archive stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain tar (or anything we do not recognise, which the tar reader then rejects).
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

impl Compression {
    /// Tell the compression from the first bytes of a stream. Fewer bytes than a
    /// magic number needs (or none) mean [`Compression::None`].
    pub fn sniff(magic: &[u8]) -> Compression {
        match magic {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [b'B', b'Z', b'h', ..] => Compression::Bzip2,
            [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Compression::Xz,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            // A zstd skippable frame (magic 0x184D2A50..=0x184D2A5F, little endian).
            [m, 0x2a, 0x4d, 0x18, ..] if m & 0xf0 == 0x50 => Compression::Zstd,
            _ => Compression::None,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot read the start of the archive")]
    ReadHeader { source: io::Error },
}

/// Peek at the magic bytes of `reader` (without losing them) and return the
/// compression found and a reader of the uncompressed stream.
pub fn decompress<'a, R: Read + Send + 'a>(
    mut reader: R,
) -> Result<(Compression, Box<dyn Read + Send + 'a>), ArchiveError> {
    let mut magic = [0u8; MAGIC_LEN];
    let mut filled = 0;
    while filled < MAGIC_LEN {
        match reader.read(&mut magic[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(ArchiveError::ReadHeader { source }),
        }
    }
    let compression = Compression::sniff(&magic[..filled]);
    let whole: Chain<Cursor<Vec<u8>>, R> = Cursor::new(magic[..filled].to_vec()).chain(reader);
    let out: Box<dyn Read + Send + 'a> = match compression {
        Compression::None => Box::new(whole),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(whole)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(whole)),
        Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(whole)),
        Compression::Zstd => Box::new(ZstdReader::new(whole)),
    };
    Ok((compression, out))
}

/// A zstd decoder over every frame of a stream, skipping skippable frames and
/// checking each frame's content checksum when it has one.
struct ZstdReader<R: Read> {
    source: BufReader<R>,
    decoder: FrameDecoder,
    /// A frame is being decoded (its header has been read).
    in_frame: bool,
    /// At least one frame was started; an empty stream is not valid zstd.
    seen_frame: bool,
}

impl<R: Read> ZstdReader<R> {
    fn new(source: R) -> Self {
        Self {
            source: BufReader::with_capacity(64 * 1024, source),
            decoder: FrameDecoder::new(),
            in_frame: false,
            seen_frame: false,
        }
    }

    /// Start the next frame. `Ok(false)` at a clean end of the stream.
    fn next_frame(&mut self) -> io::Result<bool> {
        loop {
            if self.source.fill_buf()?.is_empty() {
                if self.seen_frame {
                    return Ok(false);
                }
                return Err(corrupt("empty zstd stream"));
            }
            self.seen_frame = true;
            match self.decoder.init(&mut self.source) {
                Ok(()) => {
                    self.in_frame = true;
                    return Ok(true);
                }
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let skipped =
                        io::copy(&mut (&mut self.source).take(length.into()), &mut io::sink())?;
                    if skipped != u64::from(length) {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "zstd skippable frame is truncated",
                        ));
                    }
                }
                Err(e) => return Err(zstd_error(e)),
            }
        }
    }

    /// The current frame is decoded and drained: check its checksum.
    fn finish_frame(&mut self) -> io::Result<()> {
        self.in_frame = false;
        if let (Some(expected), Some(actual)) = (
            self.decoder.get_checksum_from_data(),
            self.decoder.get_calculated_checksum(),
        ) {
            if expected != actual {
                return Err(corrupt("zstd frame checksum mismatch"));
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for ZstdReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame && !self.next_frame()? {
                return Ok(0);
            }
            while self.decoder.can_collect() < buf.len() && !self.decoder.is_finished() {
                let wanted = buf.len() - self.decoder.can_collect();
                self.decoder
                    .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBytes(wanted))
                    .map_err(zstd_error)?;
            }
            let n = self.decoder.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            // Nothing left to collect from a finished frame: go on with the next one.
            self.finish_frame()?;
        }
    }
}

fn zstd_error(e: FrameDecoderError) -> io::Error {
    let kind = match &e {
        FrameDecoderError::ReadFrameHeaderError(_)
        | FrameDecoderError::FailedToReadBlockHeader(_)
        | FrameDecoderError::FailedToReadBlockBody(_)
        | FrameDecoderError::FailedToReadChecksum(_) => io::ErrorKind::InvalidData,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("corrupt zstd data: {e}"))
}

fn corrupt(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    fn run_tool(tool: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
        let mut child = Command::new(tool)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
        let mut stdin = child.stdin.take().unwrap();
        let data = input.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&data));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(out.status.success(), "{tool} {args:?} failed");
        out.stdout
    }

    fn sample() -> Vec<u8> {
        (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    fn read_all(data: &[u8]) -> (Compression, io::Result<Vec<u8>>) {
        let (c, mut r) = decompress(data).unwrap();
        let mut out = Vec::new();
        let res = r.read_to_end(&mut out).map(|_| out);
        (c, res)
    }

    #[test]
    fn sniff_magic_numbers() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(Compression::sniff(b"BZh91AY"), Compression::Bzip2);
        assert_eq!(
            Compression::sniff(&[0xfd, b'7', b'z', b'X', b'Z', 0]),
            Compression::Xz
        );
        assert_eq!(
            Compression::sniff(&[0xfd, b'7', b'z', b'X', b'Z']),
            Compression::None
        );
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(
            Compression::sniff(&[0x5a, 0x2a, 0x4d, 0x18]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"manifest"), Compression::None);
        assert_eq!(Compression::sniff(b""), Compression::None);
        assert_eq!(Compression::sniff(&[0x1f]), Compression::None);
    }

    #[test]
    fn round_trips_every_cli_format() {
        let data = sample();
        for (tool, args, want) in [
            ("gzip", &["-c"][..], Compression::Gzip),
            ("bzip2", &["-c"][..], Compression::Bzip2),
            ("xz", &["-c"][..], Compression::Xz),
            ("zstd", &["-q", "-c"][..], Compression::Zstd),
        ] {
            let packed = run_tool(tool, args, &data);
            let (c, out) = read_all(&packed);
            assert_eq!(c, want, "{tool}");
            assert!(out.unwrap() == data, "{tool} output differs");
        }
        let (c, out) = read_all(&data);
        assert_eq!(c, Compression::None);
        assert!(out.unwrap() == data);
    }

    #[test]
    fn concatenated_members_decode_as_one_stream() {
        let a = b"first part ".repeat(1000);
        let b = b"second part".repeat(1000);
        let mut whole = a.clone();
        whole.extend_from_slice(&b);
        for (tool, args) in [
            ("gzip", &["-c"][..]),
            ("bzip2", &["-c"][..]),
            ("xz", &["-c"][..]),
            ("zstd", &["-q", "-c"][..]),
        ] {
            let mut packed = run_tool(tool, args, &a);
            packed.extend(run_tool(tool, args, &b));
            let (_, out) = read_all(&packed);
            assert!(out.unwrap() == whole, "{tool} multi-member output differs");
        }
    }

    #[test]
    fn zstd_skippable_frames_are_skipped() {
        let data = b"payload".repeat(100);
        let mut packed = vec![0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3];
        packed.extend(run_tool("zstd", &["-q", "-c"], &data));
        let (c, out) = read_all(&packed);
        assert_eq!(c, Compression::Zstd);
        assert_eq!(out.unwrap(), data);
    }

    #[test]
    fn truncated_input_is_an_error_for_every_format() {
        let data = sample();
        for (tool, args) in [
            ("gzip", &["-c"][..]),
            ("bzip2", &["-c"][..]),
            ("xz", &["-c"][..]),
            ("zstd", &["-q", "-c"][..]),
        ] {
            let packed = run_tool(tool, args, &data);
            for cut in [packed.len() - 1, packed.len() / 2, 10] {
                let (_, out) = read_all(&packed[..cut]);
                assert!(out.is_err(), "{tool} truncated at {cut} was accepted");
            }
        }
    }

    #[test]
    fn corrupt_input_is_an_error_for_every_format() {
        let data = sample();
        for (tool, args) in [
            ("gzip", &["-c"][..]),
            ("bzip2", &["-c"][..]),
            ("xz", &["-c"][..]),
            ("zstd", &["-q", "-c"][..]),
        ] {
            let mut packed = run_tool(tool, args, &data);
            let at = packed.len() / 2;
            packed[at] ^= 0x55;
            let (_, out) = read_all(&packed);
            assert!(out.is_err(), "{tool}: a flipped byte went unnoticed");
        }
    }

    #[test]
    fn read_errors_at_the_start_are_reported() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("boom"))
            }
        }
        let err = decompress(Failing).err().unwrap();
        let msg = manifests::error::chain(&err);
        assert!(msg.contains("boom"), "{msg}");
    }

    #[test]
    fn short_reads_do_not_lose_magic_bytes() {
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() || buf.is_empty() {
                    return Ok(0);
                }
                buf[0] = self.0[0];
                self.0 = &self.0[1..];
                Ok(1)
            }
        }
        let data = sample();
        let packed = run_tool("xz", &["-c"], &data);
        let (c, mut r) = decompress(OneByte(&packed)).unwrap();
        assert_eq!(c, Compression::Xz);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert!(out == data);
    }
}
