//! Reading one HTTP/1.1 answer off a raw stream, byte by byte as it arrives: for tests
//! that write requests by hand (malformed heads, early answers, pipelining).

use tokio::io::{AsyncRead, AsyncReadExt};

/// One answer read from a raw stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawAnswer {
    /// The status code.
    pub status: u16,
    /// The status line and headers, lower-cased.
    pub head: String,
    /// The body (`content-length` bytes).
    pub body: Vec<u8>,
}

/// Reads one answer with a `content-length` from `rd`; `Err` says what was wrong (no
/// status, no length, or the stream closed first).
pub async fn read_answer<R: AsyncRead + Unpin>(rd: &mut R) -> Result<RawAnswer, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| format!("no content-length: {head}"))?;
            if buf.len() >= end + 4 + len {
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("no status: {head}"))?;
                let body = buf[end + 4..end + 4 + len].to_vec();
                return Ok(RawAnswer { status, head, body });
            }
        }
        let n = rd
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!(
                "closed before a whole answer: {:?}",
                String::from_utf8_lossy(&buf)
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
