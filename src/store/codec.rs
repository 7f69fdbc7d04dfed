//! The store's own encoding of groups: the record every backend keeps (a group's whole
//! content, or its deletion), and the files the single-node store writes them into.
//!
//! Every file starts with a header: 8 bytes of magic, a format version (u32), and for a
//! snapshot the number of the first log segment it does not include, for a segment its own
//! number. Then records, each `length (u32) | CRC-32C (u32) | kind (u8) | payload`, where the
//! length counts kind and payload and the CRC covers them too. Integers are little-endian.
//!
//! A group record holds a whole group (grouping key, per family its name, help, type, push time
//! and encoded metrics, then the group's expiry and holder), so replaying one is setting that
//! group, whatever was there. A batch record holds the records of one change (a bulk deletion,
//! a wipe, an expiry sweep), each framed as above, so that a crash keeps all of them or none.
//! A snapshot ends with an end record carrying the number of groups, so a snapshot that lost
//! its tail is recognised.
//!
//! Version 2 added the group's expiry and holder and the batch record; version 1 files (whose
//! group records end after the families) are read as before.

use bytes::Bytes;

use std::time::Duration;

use super::backend::PersistedFamily;
use super::group::{Group, GroupMeta};
use crate::model::{GroupingKey, MetricType, Timestamp};

pub const SNAPSHOT_MAGIC: &[u8; 8] = b"PGWSNAP\0";
pub const LOG_MAGIC: &[u8; 8] = b"PGWLOG\0\0";
pub const VERSION: u32 = 2;
/// The oldest version still read.
const FIRST_VERSION: u32 = 1;
pub const HEADER_LEN: usize = 20;
const RECORD_HEADER_LEN: usize = 8;

const KIND_GROUP: u8 = 1;
const KIND_DELETE: u8 = 2;
const KIND_END: u8 = 3;
const KIND_BATCH: u8 = 4;

/// One family as persisted.
pub type FamilyRecord = PersistedFamily;

#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// The group with this key now holds exactly these families.
    Group {
        key: GroupingKey,
        meta: GroupMeta,
        families: Vec<FamilyRecord>,
    },
    /// The group with this key is gone.
    Delete { key: GroupingKey },
    /// The records of one change, applied together.
    Batch(Vec<Record>),
    /// The end of a snapshot of this many groups.
    End { groups: u64 },
}

pub fn header(magic: &[u8; 8], number: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(magic);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&number.to_le_bytes());
    out
}

/// Reads a header: the segment number it carries.
pub fn read_header(bytes: &[u8], magic: &[u8; 8]) -> Result<u64, FormatError> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != magic {
        return Err(FormatError::NotOurs);
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    if !(FIRST_VERSION..=VERSION).contains(&version) {
        return Err(FormatError::Version(version));
    }
    Ok(u64::from_le_bytes(
        bytes[12..20].try_into().unwrap_or_default(),
    ))
}

impl Record {
    /// Appends the record, framed, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        framed(out, |out| match self {
            Record::Group {
                key,
                meta,
                families,
            } => {
                let families = families.iter().map(|f| FamilyFields {
                    name: &f.name,
                    help: f.help.as_deref(),
                    kind: f.kind,
                    pushed_at: f.pushed_at,
                    metrics: &f.metrics,
                });
                put_group(out, key, meta, families);
            }
            Record::Batch(records) => {
                out.push(KIND_BATCH);
                for record in records {
                    record.encode(out);
                }
            }
            Record::Delete { key } => {
                out.push(KIND_DELETE);
                put_bytes(out, key.as_bytes());
            }
            Record::End { groups } => {
                out.push(KIND_END);
                out.extend_from_slice(&groups.to_le_bytes());
            }
        });
    }
}

/// Appends a group record for a group as the store holds it, without copying it first.
pub fn encode_group(group: &Group, out: &mut Vec<u8>) {
    framed(out, |out| {
        let families = group.families().iter().map(|f| FamilyFields {
            name: &f.name,
            help: f.help.as_deref(),
            kind: f.kind,
            pushed_at: f.pushed_at,
            metrics: group.metric_bytes(f),
        });
        put_group(out, group.key(), group.meta(), families);
    });
}

/// Wraps already framed records (`records`, one after the other) into one batch record.
pub fn encode_batch(records: &[u8], out: &mut Vec<u8>) {
    framed(out, |out| {
        out.push(KIND_BATCH);
        out.extend_from_slice(records);
    });
}

struct FamilyFields<'a> {
    name: &'a str,
    help: Option<&'a str>,
    kind: MetricType,
    pushed_at: Timestamp,
    metrics: &'a [u8],
}

fn put_group<'a>(
    out: &mut Vec<u8>,
    key: &GroupingKey,
    meta: &GroupMeta,
    families: impl ExactSizeIterator<Item = FamilyFields<'a>>,
) {
    out.push(KIND_GROUP);
    put_bytes(out, key.as_bytes());
    out.extend_from_slice(&(families.len() as u32).to_le_bytes());
    for family in families {
        put_bytes(out, family.name.as_bytes());
        match family.help {
            Some(help) => {
                out.push(1);
                put_bytes(out, help.as_bytes());
            }
            None => out.push(0),
        }
        out.push(family.kind as i32 as u8);
        out.extend_from_slice(&family.pushed_at.as_nanos().to_le_bytes());
        put_bytes(out, family.metrics);
    }
    match meta.expire_after {
        Some(after) => {
            out.push(1);
            let nanos = u64::try_from(after.as_nanos()).unwrap_or(u64::MAX);
            out.extend_from_slice(&nanos.to_le_bytes());
        }
        None => out.push(0),
    }
    match &meta.holder {
        Some(holder) => {
            out.push(1);
            put_bytes(out, holder.as_bytes());
        }
        None => out.push(0),
    }
}

/// Writes the record body with `body`, then fills in the length and checksum before it.
fn framed(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER_LEN]);
    body(out);
    let payload = &out[start + RECORD_HEADER_LEN..];
    let len = payload.len() as u32;
    let crc = crc32c::crc32c(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("not a file of this format")]
    NotOurs,
    #[error("unsupported format version {0}")]
    Version(u32),
}

/// Why reading stopped before the end of a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    /// The file ends inside a record.
    #[error("file ends inside a record at byte {offset}")]
    Truncated { offset: usize },
    /// A record's checksum does not match (or its content makes no sense).
    #[error("damaged record at byte {offset}: {reason}")]
    Corrupt { offset: usize, reason: String },
}

impl Damage {
    /// Where the damaged record starts.
    pub fn offset(&self) -> usize {
        match self {
            Damage::Truncated { offset } | Damage::Corrupt { offset, .. } => *offset,
        }
    }
}

/// Decodes a buffer that holds exactly one framed record (a value of the replicated store).
pub fn decode_record(bytes: &Bytes) -> Result<Record, Damage> {
    let (record, used) = decode_framed(bytes, 0, Some(bytes))?;
    if used != bytes.len() {
        return Err(Damage::Corrupt {
            offset: used,
            reason: "bytes after the record".into(),
        });
    }
    Ok(record)
}

/// Reads the records after a header, as far as they are intact.
pub struct Records<'a> {
    bytes: &'a [u8],
    /// The buffer `bytes` lies in, when the families' metrics may share it instead of being
    /// copied out (a restore of a million series copied 90 MB here, in 300,000 allocations).
    shared: Option<&'a Bytes>,
    offset: usize,
}

impl<'a> Records<'a> {
    /// Records whose metrics are copied out of `file`.
    #[cfg(test)]
    pub fn new(file: &'a [u8]) -> Self {
        Records {
            bytes: file,
            shared: None,
            offset: HEADER_LEN,
        }
    }

    /// Records whose metrics are slices of `file`, which they keep alive.
    pub fn shared(file: &'a Bytes) -> Self {
        Records {
            bytes: file,
            shared: Some(file),
            offset: HEADER_LEN,
        }
    }
}

impl Iterator for Records<'_> {
    type Item = Result<Record, Damage>;

    fn next(&mut self) -> Option<Self::Item> {
        let offset = self.offset;
        let rest = self.bytes.get(offset..)?;
        if rest.is_empty() {
            return None;
        }
        let result = decode_framed(rest, offset, self.shared);
        match &result {
            Ok((_, used)) => self.offset += used,
            Err(_) => self.offset = self.bytes.len(),
        }
        Some(result.map(|(record, _)| record))
    }
}

fn decode_framed(
    rest: &[u8],
    offset: usize,
    shared: Option<&Bytes>,
) -> Result<(Record, usize), Damage> {
    if rest.len() < RECORD_HEADER_LEN {
        return Err(Damage::Truncated { offset });
    }
    let len = u32::from_le_bytes(rest[0..4].try_into().unwrap_or_default()) as usize;
    let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap_or_default());
    let Some(body) = rest.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + len) else {
        return Err(Damage::Truncated { offset });
    };
    let corrupt = |reason: &str| Damage::Corrupt {
        offset,
        reason: reason.to_string(),
    };
    if len == 0 {
        return Err(corrupt("empty record"));
    }
    if crc32c::crc32c(body) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    let record = decode_body(body, shared).ok_or_else(|| corrupt("malformed record"))?;
    Ok((record, RECORD_HEADER_LEN + len))
}

/// Decodes a checksummed record body. `None` for anything malformed: the checksum matched, so
/// this means a bug or a file from elsewhere, never a torn write.
fn decode_body(body: &[u8], shared: Option<&Bytes>) -> Option<Record> {
    let mut reader = Reader { rest: &body[1..] };
    let record = match body[0] {
        KIND_GROUP => {
            let key = GroupingKey::from_encoded(reader.bytes()?)?;
            let count = reader.u32()? as usize;
            let mut families = Vec::with_capacity(count.min(4096));
            for _ in 0..count {
                let name = String::from_utf8(reader.bytes()?.to_vec()).ok()?;
                let help = match reader.u8()? {
                    0 => None,
                    1 => Some(String::from_utf8(reader.bytes()?.to_vec()).ok()?),
                    _ => return None,
                };
                let kind = MetricType::try_from(i32::from(reader.u8()?)).ok()?;
                let pushed_at = Timestamp::from_nanos(reader.i64()?);
                let metrics = reader.bytes()?;
                let metrics = match shared {
                    Some(file) => file.slice_ref(metrics),
                    None => Bytes::copy_from_slice(metrics),
                };
                families.push(FamilyRecord {
                    name,
                    help,
                    kind,
                    pushed_at,
                    metrics,
                });
            }
            // Version 1 records end here.
            let meta = if reader.rest.is_empty() {
                GroupMeta::default()
            } else {
                GroupMeta {
                    expire_after: match reader.u8()? {
                        0 => None,
                        1 => Some(Duration::from_nanos(reader.u64()?)),
                        _ => return None,
                    },
                    holder: match reader.u8()? {
                        0 => None,
                        1 => Some(std::str::from_utf8(reader.bytes()?).ok()?.into()),
                        _ => return None,
                    },
                }
            };
            Record::Group {
                key,
                meta,
                families,
            }
        }
        KIND_BATCH => {
            let mut records = Vec::new();
            let mut rest = reader.rest;
            while !rest.is_empty() {
                let (record, used) = decode_framed(rest, 0, shared).ok()?;
                if matches!(record, Record::Batch(_) | Record::End { .. }) {
                    return None;
                }
                records.push(record);
                rest = &rest[used..];
            }
            reader.rest = rest;
            Record::Batch(records)
        }
        KIND_DELETE => Record::Delete {
            key: GroupingKey::from_encoded(reader.bytes()?)?,
        },
        KIND_END => Record::End {
            groups: reader.u64()?,
        },
        _ => return None,
    };
    reader.rest.is_empty().then_some(record)
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(taken)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(i64::from_le_bytes)
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Record> {
        let key = GroupingKey::from_labels([("job", "j"), ("instance", "Πρ")]);
        let with_meta = Record::Group {
            key: GroupingKey::from_labels([("job", "k")]),
            meta: GroupMeta {
                expire_after: Some(Duration::from_secs(90)),
                holder: Some("user=\"alice\"".into()),
            },
            families: Vec::new(),
        };
        vec![
            Record::Group {
                key: key.clone(),
                meta: GroupMeta::default(),
                families: vec![
                    FamilyRecord {
                        name: "a".into(),
                        help: Some("help\nwith newline".into()),
                        kind: MetricType::Histogram,
                        pushed_at: Timestamp::from_nanos(1_795_727_317_690_000_001),
                        metrics: Bytes::from_static(&[0x22, 3, 1, 2, 3]),
                    },
                    FamilyRecord {
                        name: "b".into(),
                        help: None,
                        kind: MetricType::Untyped,
                        pushed_at: Timestamp::ZERO,
                        metrics: Bytes::new(),
                    },
                ],
            },
            Record::Delete { key: key.clone() },
            Record::Batch(vec![with_meta, Record::Delete { key }]),
            Record::End { groups: 1 },
        ]
    }

    fn file(records: &[Record]) -> Vec<u8> {
        let mut out = header(SNAPSHOT_MAGIC, 7);
        for record in records {
            record.encode(&mut out);
        }
        out
    }

    /// Files of version 1 (group records without expiry and holder) are read as before.
    #[test]
    fn reads_version_1() {
        let key = GroupingKey::from_labels([("job", "old")]);
        let mut bytes = header(SNAPSHOT_MAGIC, 3);
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        framed(&mut bytes, |out| {
            out.push(KIND_GROUP);
            put_bytes(out, key.as_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
        });
        assert_eq!(read_header(&bytes, SNAPSHOT_MAGIC), Ok(3));
        let read: Vec<Record> = Records::new(&bytes).map(Result::unwrap).collect();
        assert_eq!(
            read,
            [Record::Group {
                key,
                meta: GroupMeta::default(),
                families: Vec::new()
            }]
        );
        bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(
            read_header(&bytes, SNAPSHOT_MAGIC),
            Err(FormatError::Version(3))
        );
    }

    #[test]
    fn round_trip() {
        let bytes = file(&sample());
        assert_eq!(read_header(&bytes, SNAPSHOT_MAGIC), Ok(7));
        assert_eq!(read_header(&bytes, LOG_MAGIC), Err(FormatError::NotOurs));
        let read: Result<Vec<Record>, Damage> = Records::new(&bytes).collect();
        assert_eq!(read.unwrap(), sample());
    }

    #[test]
    fn truncation_and_corruption_are_told_apart() {
        let bytes = file(&sample());
        let first_len = {
            let mut one = Vec::new();
            sample()[0].encode(&mut one);
            one.len()
        };
        // Cut inside the second record: the first survives, then a truncation.
        let cut = &bytes[..HEADER_LEN + first_len + 5];
        let read: Vec<_> = Records::new(cut).collect();
        assert_eq!(read.len(), 2);
        assert!(read[0].is_ok());
        assert_eq!(
            read[1],
            Err(Damage::Truncated {
                offset: HEADER_LEN + first_len
            })
        );
        // A flipped bit inside the first record.
        let mut flipped = bytes.clone();
        flipped[HEADER_LEN + 12] ^= 0x10;
        let read: Vec<_> = Records::new(&flipped).collect();
        assert!(matches!(read[0], Err(Damage::Corrupt { offset, .. }) if offset == HEADER_LEN));
        assert_eq!(read.len(), 1, "reading stops at damage");
        // Every prefix and many flips: never a panic.
        for cut in 0..bytes.len() {
            let _ = Records::new(&bytes[..cut]).count();
        }
        for i in HEADER_LEN..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] = damaged[i].wrapping_add(1);
            let _ = Records::new(&damaged).count();
        }
    }
}
