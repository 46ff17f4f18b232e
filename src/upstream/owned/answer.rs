//! The answer's body on an owned connection's HTTP/1.1: how much of it is left to read
//! (its framing, found from the head by `head`), and a chunked body taken apart. Pure
//! functions over the read buffer.

use bytes::{Buf, Bytes, BytesMut};

use super::conn::ExchangeError;

/// The longest answer head, and the most trailer bytes after a chunked body.
pub(super) const MAX_HEAD: usize = 64 * 1024;
/// The longest chunk-size line (the size and any extensions).
const MAX_CHUNK_LINE: usize = 4 * 1024;

/// How the rest of an answer's body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// This many bytes left.
    Length(u64),
    Chunked(Chunk),
    /// Until the backend closes the connection.
    Close,
    Done,
}

/// Where a chunked body's reading stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunk {
    /// At a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// At the line end after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines (dropped) up to an empty line; the count is the
    /// trailer bytes seen so far.
    Trailers(usize),
}

/// Up to `at_most` buffered bytes, if there are any.
pub(super) fn take(buf: &mut BytesMut, at_most: u64) -> Option<Bytes> {
    if buf.is_empty() {
        return None;
    }
    let n = usize::try_from(at_most)
        .unwrap_or(usize::MAX)
        .min(buf.len());
    Some(buf.split_to(n).freeze())
}

/// One step of a chunked body from what is buffered.
pub(super) fn chunked(buf: &mut BytesMut, chunk: Chunk) -> Result<Step, ExchangeError> {
    Ok(match chunk {
        Chunk::Size => {
            let end = line_end(buf);
            if end.unwrap_or(buf.len()) > MAX_CHUNK_LINE {
                return Err(ExchangeError::malformed("a chunk-size line is too long"));
            }
            let Some(end) = end else {
                return Ok(Step::More);
            };
            let size = chunk_size(&buf[..end])?;
            buf.advance(end + 2);
            Step::Next(Framing::Chunked(match size {
                0 => Chunk::Trailers(0),
                n => Chunk::Data(n),
            }))
        }
        Chunk::Data(left) => match take(buf, left) {
            Some(data) => {
                let left = left - data.len() as u64;
                let next = if left == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left)
                };
                Step::Data(data, Framing::Chunked(next))
            }
            None => Step::More,
        },
        Chunk::DataEnd if buf.len() < 2 => Step::More,
        Chunk::DataEnd if buf.starts_with(b"\r\n") => {
            buf.advance(2);
            Step::Next(Framing::Chunked(Chunk::Size))
        }
        Chunk::DataEnd => return Err(ExchangeError::malformed("a chunk does not end in CRLF")),
        Chunk::Trailers(seen) => match line_end(buf) {
            Some(0) => {
                buf.advance(2);
                Step::Next(Framing::Done)
            }
            Some(end) if seen + end <= MAX_HEAD => {
                buf.advance(end + 2);
                Step::Next(Framing::Chunked(Chunk::Trailers(seen + end + 2)))
            }
            None if seen + buf.len() <= MAX_HEAD => Step::More,
            _ => return Err(ExchangeError::malformed("the trailers are over 64 KiB")),
        },
    })
}

/// What one step of a chunked body found.
pub(super) enum Step {
    /// Body bytes, and where reading stands after them.
    Data(Bytes, Framing),
    /// No bytes, but reading moved on.
    Next(Framing),
    /// The buffer needs more of the connection.
    More,
}

/// Where the first CRLF in `buf` starts.
fn line_end(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(cr) = buf[from..].iter().position(|&b| b == b'\r') {
        let at = from + cr;
        match buf.get(at + 1) {
            Some(b'\n') => return Some(at),
            Some(_) => from = at + 1,
            None => return None,
        }
    }
    None
}

/// A chunk-size line's size (extensions after `;` are ignored).
fn chunk_size(line: &[u8]) -> Result<u64, ExchangeError> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = digits.trim_ascii();
    let bad = || ExchangeError::malformed("a chunk size is not hexadecimal");
    if digits.is_empty() || digits.len() > 15 {
        return Err(bad());
    }
    digits.iter().try_fold(0u64, |size, &b| {
        let digit = char::from(b).to_digit(16).ok_or_else(bad)?;
        Ok(size * 16 + u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a chunked body from `bytes` handed over `step` bytes at a time: its data and
    /// where reading stopped.
    fn dechunk(bytes: &[u8], step: usize) -> Result<(Vec<u8>, Framing, usize), ExchangeError> {
        let mut buf = BytesMut::new();
        let mut framing = Framing::Chunked(Chunk::Size);
        let mut data = Vec::new();
        let mut fed = 0;
        while framing != Framing::Done {
            let Framing::Chunked(chunk) = framing else {
                unreachable!()
            };
            match chunked(&mut buf, chunk)? {
                Step::Data(piece, next) => {
                    data.extend_from_slice(&piece);
                    framing = next;
                }
                Step::Next(next) => framing = next,
                Step::More if fed == bytes.len() => break,
                Step::More => {
                    let end = (fed + step).min(bytes.len());
                    buf.extend_from_slice(&bytes[fed..end]);
                    fed = end;
                }
            }
        }
        Ok((data, framing, buf.len() + bytes.len() - fed))
    }

    #[test]
    fn a_chunked_body_is_read_whatever_the_reads_cut_it_into() {
        let body =
            b"5\r\nhello\r\n1;ext=\"x\"\r\n \r\nA\r\n0123456789\r\n0\r\nx-sum: 1\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, body.len()] {
            let (data, framing, left) = dechunk(body, step).unwrap();
            assert_eq!(data, b"hello 0123456789", "step {step}");
            assert_eq!(framing, Framing::Done);
            assert_eq!(left, 4, "the next answer's bytes stay: step {step}");
        }
        let unfinished = dechunk(b"5\r\nhel", 2).unwrap();
        assert_eq!(unfinished.0, b"hel");
        assert_eq!(unfinished.1, Framing::Chunked(Chunk::Data(2)));
    }

    #[test]
    fn a_broken_chunked_body_is_malformed() {
        let long_line = format!("1{}\r\n", " ".repeat(MAX_CHUNK_LINE));
        let long_trailers = format!("0\r\n{}", "x-t: y\r\n".repeat(MAX_HEAD / 8 + 1));
        for bad in [
            "g\r\nhello\r\n".to_owned(),
            "\r\n".to_owned(),
            "5\r\nhelloXX0\r\n\r\n".to_owned(),
            "ffffffffffffffffff\r\n".to_owned(),
            long_line,
            long_trailers,
        ] {
            let e = dechunk(bad.as_bytes(), 5).unwrap_err();
            assert!(e.is_malformed(), "{bad:?}: {e}");
        }
    }
}
