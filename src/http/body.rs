//! Push bodies: bounded reading and `Content-Encoding` (gzip, framed snappy), with the size
//! limit applied after decompression so that a small compressed body cannot expand without
//! bound.
//!
//! Invariants: a body must arrive by its deadline (`--web.read-body-timeout`, 408 after); no
//! body grows past `--push.max-body-size`, decompressed (413); and all bodies in memory at
//! once, as read and as decompressed, stay within one [`BodyBudget`]
//! (`--push.max-buffered-size`): bytes are reserved before they are kept, so a push that would
//! go beyond it is refused (503 with `Retry-After`) instead of growing the process. The last
//! eighth of the budget is kept for small bodies (up to [`SMALL_BODY`]), so that a flood of
//! large bodies does not refuse every push. A body whose size is known in advance (its
//! `Content-Length`; for gzip, the size its trailer gives) is held whole from the start, so that
//! many large bodies coming at once do not each take a part and all fail; one without grows
//! its share as it comes.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body_util::BodyExt;

use crate::telemetry::{self, Telemetry};

/// Decompressed bodies grow by at most this much at a time (one reservation per piece).
const INFLATE_PIECE: usize = 64 * 1024;

/// A body up to this size may use the whole budget; the bytes of a larger one only what the
/// small bodies' reserve leaves.
pub const SMALL_BODY: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body too large: the limit is {limit} bytes (--push.max-body-size)")]
    TooLarge { limit: u64 },
    #[error(
        "request body not received within {}: send it faster, or raise --web.read-body-timeout",
        crate::go::format_duration(*.0)
    )]
    Timeout(Duration),
    #[error(
        "too many push bodies in memory at once (--push.max-buffered-size is {limit} bytes); nothing was changed, retry later"
    )]
    Busy { limit: u64 },
    /// The client went away or sent a broken body.
    #[error("error reading request body: {0}")]
    Read(String),
    /// Go's gzip reader's wording: `gzip: invalid header`, `unexpected EOF`, ...
    #[error("{0}")]
    Gzip(String),
    #[error("snappy: {0}")]
    Snappy(String),
}

/// The memory all push bodies may take at once, and turns for parsing large ones.
pub struct BodyBudget {
    limit: u64,
    used: AtomicU64,
    /// KiB of bodies being parsed and stored; at most `--push.max-body-size` at once.
    parsing: Arc<tokio::sync::Semaphore>,
    parsing_kib: u32,
    telemetry: Arc<Telemetry>,
}

impl BodyBudget {
    /// What bodies larger than [`SMALL_BODY`] may take together: the budget less the eighth
    /// kept for small ones.
    pub fn large_share(limit: u64) -> u64 {
        limit - limit / 8
    }

    /// `limit`: `--push.max-buffered-size`; `max_body`: `--push.max-body-size`, what may be
    /// parsed at once.
    pub fn new(limit: u64, max_body: u64, telemetry: Arc<Telemetry>) -> Arc<BodyBudget> {
        telemetry.set(telemetry::PUSH_BUFFERED_BYTES, &[], 0.0);
        let parsing_kib = u32::try_from(max_body.div_ceil(1024)).unwrap_or(u32::MAX);
        Arc::new(BodyBudget {
            limit,
            used: AtomicU64::new(0),
            parsing: Arc::new(tokio::sync::Semaphore::new(parsing_kib as usize)),
            parsing_kib,
            telemetry,
        })
    }

    /// Waits until a body of `len` bytes may be parsed and stored: parsing takes many times a
    /// body's size, so bodies larger than the inline ones are parsed and stored only while
    /// those in turn add up to at most `--push.max-body-size`.
    pub async fn parse_turn(&self, len: usize) -> tokio::sync::OwnedSemaphorePermit {
        let kib = u32::try_from(len.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.parsing_kib);
        self.parsing
            .clone()
            .acquire_many_owned(kib)
            .await
            .expect("the semaphore is never closed")
    }

    /// An empty reservation, to grow as bytes come.
    pub fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: 0,
        }
    }

    /// Takes `bytes` for a body that then holds `held` bytes.
    fn take(&self, bytes: u64, held: u64) -> Result<(), BodyError> {
        let limit = if held > SMALL_BODY {
            Self::large_share(self.limit)
        } else {
            self.limit
        };
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= limit)
            })
            .map_err(|_| BodyError::Busy { limit: self.limit })?;
        self.report();
        Ok(())
    }

    fn give_back(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        self.report();
    }

    fn report(&self) {
        let used = self.used.load(Ordering::Acquire);
        self.telemetry
            .set(telemetry::PUSH_BUFFERED_BYTES, &[], used as f64);
    }
}

/// Bytes of one push held against the budget; given back when dropped.
pub struct Reservation {
    budget: Arc<BodyBudget>,
    bytes: u64,
}

impl Reservation {
    /// Holds at least `total` bytes for this body.
    fn hold(&mut self, total: usize) -> Result<(), BodyError> {
        let total = total as u64;
        if total > self.bytes {
            self.budget.take(total - self.bytes, total)?;
            self.bytes = total;
        }
        Ok(())
    }

    /// Holds exactly `total` bytes for this body, giving back the rest.
    fn hold_only(&mut self, total: usize) {
        let total = total as u64;
        if total < self.bytes {
            self.budget.give_back(self.bytes - total);
            self.bytes = total;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.budget.give_back(self.bytes);
        }
    }
}

/// Reads the whole body within `timeout`, refusing more than `limit` bytes, and holding what it
/// read against `reservation`.
pub async fn read(
    body: Body,
    headers: &HeaderMap,
    limit: u64,
    timeout: Duration,
    reservation: &mut Reservation,
) -> Result<Bytes, BodyError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    // The declared length is held from the start: a body too large for what is left is
    // refused before it is read. (A client that declares much and sends little holds its share
    // until its deadline; pages of the buffer are resident only once written.)
    let declared = usize::try_from(declared.unwrap_or(0)).unwrap_or(usize::MAX);
    reservation.hold(declared)?;
    let mut buffer = BytesMut::with_capacity(declared);
    let mut body = body;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(BodyError::Timeout(timeout)),
            Ok(None) => break,
            Ok(Some(Err(err))) => return Err(BodyError::Read(err.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let total = buffer.len() + data.len();
        if total as u64 > limit {
            return Err(BodyError::TooLarge { limit });
        }
        reservation.hold(total)?;
        buffer.extend_from_slice(&data);
    }
    Ok(buffer.freeze())
}

/// Undoes the `Content-Encoding` (case-insensitive `gzip` or `snappy`; anything else is taken
/// as it is, as upstream does). The decompressed bytes are held against `reservation` as they
/// come, and the compressed ones given back at the end.
pub fn decode(
    raw: Bytes,
    headers: &HeaderMap,
    limit: u64,
    reservation: &mut Reservation,
) -> Result<Bytes, BodyError> {
    let encoding = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let decoded = match encoding.as_str() {
        "gzip" => {
            if raw.is_empty() {
                // Go's gzip reader fails to read a header from nothing with a bare EOF.
                return Err(BodyError::Gzip("EOF".into()));
            }
            // The trailer's size (of the last member, modulo 2^32) is held from the start.
            let size_hint = raw
                .len()
                .checked_sub(4)
                .map(|at| u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]))
                .map_or(0, |size| (size as u64).min(limit) as usize);
            inflate(
                flate2::read::MultiGzDecoder::new(raw.as_ref()),
                limit,
                raw.len(),
                size_hint,
                reservation,
                gzip_error,
            )?
        }
        "snappy" => inflate(
            snap::read::FrameDecoder::new(raw.as_ref()),
            limit,
            raw.len(),
            0,
            reservation,
            |e| BodyError::Snappy(e.to_string()),
        )?,
        _ => return Ok(raw),
    };
    reservation.hold_only(decoded.len());
    Ok(decoded)
}

/// Decompresses into a buffer held against `reservation`, besides the `held` compressed bytes:
/// `size_hint` bytes from the start, more as they come.
fn inflate(
    mut reader: impl Read,
    limit: u64,
    held: usize,
    size_hint: usize,
    reservation: &mut Reservation,
    error: impl Fn(std::io::Error) -> BodyError,
) -> Result<Bytes, BodyError> {
    reservation.hold(held + size_hint)?;
    let mut out = Vec::with_capacity(size_hint);
    let mut piece = vec![0u8; INFLATE_PIECE];
    loop {
        let n = match reader.read(&mut piece) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(error(err)),
        };
        if (out.len() + n) as u64 > limit {
            return Err(BodyError::TooLarge { limit });
        }
        reservation.hold(held + out.len() + n)?;
        out.extend_from_slice(&piece[..n]);
    }
    Ok(out.into())
}

fn gzip_error(err: std::io::Error) -> BodyError {
    let text = err.to_string();
    let go_text = if err.kind() == std::io::ErrorKind::UnexpectedEof {
        "unexpected EOF"
    } else if text.contains("header") {
        "gzip: invalid header"
    } else if text.contains("checksum") || text.contains("crc") {
        "gzip: invalid checksum"
    } else {
        "flate: corrupt input"
    };
    BodyError::Gzip(go_text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn headers(encoding: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_ENCODING, encoding.parse().unwrap());
        h
    }

    fn budget(limit: u64) -> Arc<BodyBudget> {
        BodyBudget::new(
            limit,
            1 << 20,
            Arc::new(Telemetry::new(crate::telemetry::BuildInfo::current())),
        )
    }

    /// Decodes with a budget of its own, large enough for anything here.
    fn decode(raw: Bytes, headers: &HeaderMap, limit: u64) -> Result<Bytes, BodyError> {
        super::decode(raw, headers, limit, &mut budget(u64::MAX).reservation())
    }

    fn gzip(data: &[u8]) -> Bytes {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap().into()
    }

    #[test]
    fn gzip_and_snappy_any_case() {
        let text = b"a 1\n";
        assert_eq!(
            decode(gzip(text), &headers("GZIP"), 100).unwrap(),
            &text[..]
        );
        let mut snappy = snap::write::FrameEncoder::new(Vec::new());
        snappy.write_all(text).unwrap();
        let snappy = Bytes::from(snappy.into_inner().unwrap());
        assert_eq!(decode(snappy, &headers("Snappy"), 100).unwrap(), &text[..]);
        assert_eq!(
            decode(Bytes::from_static(text), &headers("deflate"), 100).unwrap(),
            &text[..]
        );
    }

    #[test]
    fn bombs_and_garbage() {
        let bomb = gzip(&vec![b'a'; 1_000_000]);
        assert!(bomb.len() < 10_000);
        assert_eq!(
            decode(bomb, &headers("gzip"), 65_536),
            Err(BodyError::TooLarge { limit: 65_536 })
        );
        assert_eq!(
            decode(
                Bytes::from_static(b"not gzip at all"),
                &headers("gzip"),
                100
            ),
            Err(BodyError::Gzip("gzip: invalid header".into()))
        );
        let whole = gzip(b"a 1\n");
        assert_eq!(
            decode(whole.slice(..whole.len() - 4), &headers("gzip"), 100),
            Err(BodyError::Gzip("unexpected EOF".into()))
        );
        assert!(matches!(
            decode(Bytes::from_static(b"garbage"), &headers("snappy"), 100),
            Err(BodyError::Snappy(_))
        ));
    }

    #[test]
    fn small_bodies_keep_an_eighth_of_the_budget() {
        let budget = budget(8 * SMALL_BODY);
        let mut large = budget.reservation();
        large.hold(7 * SMALL_BODY as usize).unwrap();
        assert_eq!(
            large.hold(7 * SMALL_BODY as usize + 1),
            Err(BodyError::Busy {
                limit: 8 * SMALL_BODY
            })
        );
        let mut small = budget.reservation();
        small.hold(SMALL_BODY as usize).unwrap();
        assert!(small.hold(SMALL_BODY as usize + 1).is_err());
    }

    #[tokio::test]
    async fn at_most_the_largest_body_is_parsed_at_once() {
        // --push.max-body-size is 1 MiB here.
        let budget = budget(u64::MAX);
        let largest = budget.parse_turn(1 << 20).await;
        let waiting = tokio::time::timeout(Duration::from_millis(20), budget.parse_turn(1));
        assert!(waiting.await.is_err());
        drop(largest);
        let _half = budget.parse_turn(512 << 10).await;
        let _other_half = budget.parse_turn(512 << 10).await;
        let waiting = tokio::time::timeout(Duration::from_millis(20), budget.parse_turn(1));
        assert!(waiting.await.is_err());
    }

    #[test]
    fn the_budget_holds_what_is_in_memory() {
        let budget = budget(100_000);
        let mut first = budget.reservation();
        let compressed = gzip(&[b'a'; 60_000]);
        // As read() holds them.
        first.hold(compressed.len()).unwrap();
        let decoded = super::decode(compressed, &headers("gzip"), 1 << 20, &mut first).unwrap();
        assert_eq!(decoded.len(), 60_000);
        // The compressed bytes were given back; the decompressed ones are held.
        assert_eq!(budget.used.load(Ordering::Acquire), 60_000);
        let mut second = budget.reservation();
        assert_eq!(
            super::decode(
                gzip(&[b'b'; 60_000]),
                &headers("gzip"),
                1 << 20,
                &mut second
            ),
            Err(BodyError::Busy { limit: 100_000 })
        );
        drop(second);
        assert_eq!(budget.used.load(Ordering::Acquire), 60_000);
        drop(first);
        assert_eq!(budget.used.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn reading_is_bounded_in_size_time_and_memory() {
        let deadline = || Duration::from_secs(5);
        let budget = budget(1000);
        let mut reservation = budget.reservation();
        let body = read(
            Body::from(vec![b'x'; 600]),
            &HeaderMap::new(),
            10_000,
            deadline(),
            &mut reservation,
        )
        .await
        .unwrap();
        assert_eq!(body.len(), 600);
        let mut other = budget.reservation();
        assert_eq!(
            read(
                Body::from(vec![b'y'; 600]),
                &HeaderMap::new(),
                10_000,
                deadline(),
                &mut other,
            )
            .await,
            Err(BodyError::Busy { limit: 1000 })
        );
        assert_eq!(
            read(
                Body::from(vec![b'z'; 300]),
                &HeaderMap::new(),
                200,
                deadline(),
                &mut budget.reservation(),
            )
            .await,
            Err(BodyError::TooLarge { limit: 200 })
        );
        let (_sender, never) =
            tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(1);
        let stalled = Body::new(http_body_util::StreamBody::new(tokio_stream_from(never)));
        let soon = Duration::from_millis(50);
        assert_eq!(
            read(
                stalled,
                &HeaderMap::new(),
                10_000,
                soon,
                &mut budget.reservation()
            )
            .await,
            Err(BodyError::Timeout(Duration::from_millis(50)))
        );
    }

    /// A stream of the frames a channel receives.
    fn tokio_stream_from<T: Send + 'static>(
        mut receiver: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
    }
}
