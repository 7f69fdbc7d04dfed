//! Push bodies: bounded reading and `Content-Encoding` (gzip, framed snappy), with the limit
//! applied after decompression so that a small compressed body cannot expand without bound.

use std::io::Read;

use axum::body::Body;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::BodyExt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body too large: the limit is {limit} bytes (--push.max-body-size)")]
    TooLarge { limit: u64 },
    /// The client went away or sent a broken body.
    #[error("error reading request body: {0}")]
    Read(String),
    /// Go's gzip reader's wording: `gzip: invalid header`, `unexpected EOF`, ...
    #[error("{0}")]
    Gzip(String),
    #[error("snappy: {0}")]
    Snappy(String),
}

/// Reads the whole body, refusing more than `limit` bytes.
pub async fn read(body: Body, headers: &HeaderMap, limit: u64) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    let limited = http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            Err(BodyError::TooLarge { limit })
        }
        Err(err) => Err(BodyError::Read(err.to_string())),
    }
}

/// Undoes the `Content-Encoding` (case-insensitive `gzip` or `snappy`; anything else is taken
/// as it is, as upstream does).
pub fn decode(raw: Bytes, headers: &HeaderMap, limit: u64) -> Result<Bytes, BodyError> {
    let encoding = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "gzip" => {
            if raw.is_empty() {
                // Go's gzip reader fails to read a header from nothing with a bare EOF.
                return Err(BodyError::Gzip("EOF".into()));
            }
            inflate(
                flate2::read::MultiGzDecoder::new(raw.as_ref()),
                limit,
                gzip_error,
            )
        }
        "snappy" => inflate(snap::read::FrameDecoder::new(raw.as_ref()), limit, |e| {
            BodyError::Snappy(e.to_string())
        }),
        _ => Ok(raw),
    }
}

fn inflate(
    reader: impl Read,
    limit: u64,
    error: impl Fn(std::io::Error) -> BodyError,
) -> Result<Bytes, BodyError> {
    let mut out = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(error)?;
    if out.len() as u64 > limit {
        return Err(BodyError::TooLarge { limit });
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
}
