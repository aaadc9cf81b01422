//! Reading what a peer sends, never without bounds: every HTTP answer (a registry's, a cloud
//! token endpoint's) is read whole within a size cap and a deadline ([`body`]); a LIST page
//! within a size cap ([`read_to_end`]); a watch stream one line at a time, each line capped
//! ([`next_line`]); a credential helper's output within a cap ([`read_pipe`]). An error names
//! the limit it hit, never what was read.

use std::time::Duration;

use futures::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt};
use http_body_util::BodyExt;
use zeroize::Zeroizing;

/// A registry's or token endpoint's answer: a few KiB in practice (a token, an error).
pub const ANSWER_LIMIT: usize = 1 << 20;
/// One LIST page: `limit=500` objects of the largest kind regops reads, with room to spare.
pub const PAGE_LIMIT: usize = 256 << 20;
/// One watch event: an object (etcd holds at most about 1.5 MiB) in its JSON envelope.
pub const EVENT_LIMIT: usize = 8 << 20;
/// A credential helper's standard output (`{"Username", "Secret"}`) or error output.
pub const HELPER_OUTPUT_LIMIT: usize = 1 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BoundError {
    #[error("the answer is larger than the {} KiB limit", .0 >> 10)]
    TooLarge(usize),
    #[error("the answer did not arrive in full within {} s", .0.as_secs())]
    TimedOut(Duration),
    #[error("reading the answer failed: {0}")]
    Read(String),
}

/// An HTTP body, read whole: at most `limit` bytes, all of it by `deadline` from now. The
/// bytes are zeroed on drop (they may hold a token).
pub async fn body<B>(
    body: B,
    limit: usize,
    deadline: Duration,
) -> Result<Zeroizing<Vec<u8>>, BoundError>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let collected = tokio::time::timeout(
        deadline,
        http_body_util::Limited::new(body, limit).collect(),
    )
    .await
    .map_err(|_| BoundError::TimedOut(deadline))?
    .map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            BoundError::TooLarge(limit)
        } else {
            BoundError::Read(e.to_string())
        }
    })?;
    Ok(Zeroizing::new(collected.to_bytes().to_vec()))
}

/// All of `reader` into `buf` (cleared first), at most `limit` bytes.
pub async fn read_to_end<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<(), BoundError> {
    buf.clear();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(buf)
        .await
        .map_err(|e| BoundError::Read(e.to_string()))?;
    if buf.len() > limit {
        return Err(BoundError::TooLarge(limit));
    }
    Ok(())
}

/// The next line of `reader` into `line` (cleared first; the newline dropped), at most `limit`
/// bytes; `Ok(false)` at the end of the stream.
pub async fn next_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    limit: usize,
) -> Result<bool, BoundError> {
    line.clear();
    loop {
        let available = reader
            .fill_buf()
            .await
            .map_err(|e| BoundError::Read(e.to_string()))?;
        if available.is_empty() {
            return Ok(!line.is_empty());
        }
        let (take, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        // The newline itself is not counted.
        let counted = if done { take - 1 } else { take };
        if line.len() + counted > limit {
            return Err(BoundError::TooLarge(limit));
        }
        line.extend_from_slice(&available[..take]);
        reader.consume_unpin(take);
        if done {
            line.pop();
            return Ok(true);
        }
    }
}

/// All of a child's output pipe, at most `limit` bytes (zeroed on drop); past the limit, the
/// rest is not read (the child then blocks, and its timeout ends it).
pub fn read_pipe<R: std::io::Read>(
    reader: R,
    limit: usize,
) -> Result<Zeroizing<Vec<u8>>, BoundError> {
    let mut buf = Zeroizing::new(Vec::new());
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    std::io::Read::read_to_end(&mut reader.take(cap), &mut buf)
        .map_err(|e| BoundError::Read(e.to_string()))?;
    if buf.len() > limit {
        return Err(BoundError::TooLarge(limit));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_capped_and_split() {
        let mut r = futures::io::Cursor::new(b"one\ntwo\nthree".to_vec());
        let mut line = Vec::new();
        let mut got = Vec::new();
        while next_line(&mut r, &mut line, 10).await.unwrap() {
            got.push(String::from_utf8(line.clone()).unwrap());
        }
        assert_eq!(got, ["one", "two", "three"]);
        let mut long = futures::io::Cursor::new(vec![b'x'; 100]);
        assert_eq!(
            next_line(&mut long, &mut line, 10).await,
            Err(BoundError::TooLarge(10))
        );
        // A last line without a newline is held to the limit too.
        let mut last = futures::io::Cursor::new(vec![b'x'; 11]);
        assert_eq!(
            next_line(&mut last, &mut line, 10).await,
            Err(BoundError::TooLarge(10))
        );
        // A line of exactly the limit passes.
        let mut exact = futures::io::Cursor::new(b"0123456789\n".to_vec());
        assert!(next_line(&mut exact, &mut line, 10).await.unwrap());
        assert_eq!(line.len(), 10);
    }

    #[tokio::test]
    async fn reads_stop_at_the_limit() {
        let mut buf = Vec::new();
        let mut r = futures::io::Cursor::new(vec![0u8; 11]);
        assert_eq!(
            read_to_end(&mut r, &mut buf, 10).await,
            Err(BoundError::TooLarge(10))
        );
        let mut r = futures::io::Cursor::new(vec![0u8; 10]);
        assert_eq!(read_to_end(&mut r, &mut buf, 10).await, Ok(()));
        assert!(matches!(
            read_pipe(std::io::repeat(b'a'), 1024),
            Err(BoundError::TooLarge(1024))
        ));
        let body = http_body_util::Full::new(bytes::Bytes::from(vec![1u8; 2048]));
        assert_eq!(
            super::body(body, 1024, Duration::from_secs(5)).await,
            Err(BoundError::TooLarge(1024))
        );
    }
}
