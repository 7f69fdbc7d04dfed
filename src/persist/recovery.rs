//! Start-up: reading back the snapshot (ours, or upstream's file to import) and replaying the
//! log segments after it, telling a write cut short by a crash (dropped: it was never
//! acknowledged) from damage (the file is moved aside as evidence and whatever could be read
//! is used).

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::path::Path;

use bytes::Bytes;

use super::files::{available_name, unusable};
use super::{Outcome, PersistError, gob};
use crate::model::{GroupingKey, Timestamp};
use crate::store::codec::{self, Damage, HEADER_LEN, LOG_MAGIC, Record, Records, SNAPSHOT_MAGIC};
use crate::store::{GroupMeta, PersistedFamily, PersistedGroup};

/// What start-up reads back, and what it met on the way.
#[derive(Default)]
pub struct Recovery {
    /// Reading for an export: nothing is moved, renamed or cut, and damage is an error.
    read_only: bool,
    groups: BTreeMap<GroupingKey, PersistedGroup>,
    found_anything: bool,
    torn: bool,
    corrupt: bool,
    imported: bool,
}

impl Recovery {
    /// Reads without changing any file (for importing into another store).
    pub fn read_only() -> Recovery {
        Recovery {
            read_only: true,
            ..Recovery::default()
        }
    }

    pub fn outcome(&self) -> Outcome {
        if self.corrupt {
            Outcome::Corrupt
        } else if self.imported {
            Outcome::Imported
        } else if self.torn {
            Outcome::TornTail
        } else if self.found_anything {
            Outcome::Clean
        } else {
            Outcome::Empty
        }
    }

    fn apply(&mut self, record: Record) {
        match record {
            Record::Group {
                key,
                meta,
                families,
            } => {
                let group = PersistedGroup {
                    key: key.clone(),
                    meta,
                    families,
                };
                self.groups.insert(key, group);
            }
            Record::Delete { key } => {
                self.groups.remove(&key);
            }
            Record::Batch(records) => {
                for record in records {
                    self.apply(record);
                }
            }
            Record::End { .. } => {}
        }
    }

    /// Reads the snapshot (ours, or upstream's to import). Returns the first log segment it
    /// does not include.
    pub fn read_snapshot(&mut self, path: &Path) -> Result<u64, PersistError> {
        let bytes = match fs::read(path) {
            Ok(bytes) => Bytes::from(bytes),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(err) => return Err(unusable(path, err)),
        };
        if bytes.is_empty() {
            // An empty file (made to set up permissions, say) holds no groups.
            return Ok(0);
        }
        self.found_anything = true;
        if let Ok(first_segment) = codec::read_header(&bytes, SNAPSHOT_MAGIC) {
            let mut complete = false;
            for record in Records::shared(&bytes) {
                match record {
                    Ok(Record::End { .. }) => complete = true,
                    Ok(record) => self.apply(record),
                    Err(damage) => {
                        self.set_aside(path, &damage.to_string());
                        return Ok(first_segment);
                    }
                }
            }
            if !complete {
                self.set_aside(path, "the snapshot has no end record");
            }
            return Ok(first_segment);
        }
        if gob::looks_like_upstream(&bytes) {
            match gob::read_upstream(&bytes) {
                Ok(groups) => {
                    self.import(groups);
                    self.imported = true;
                    if self.read_only {
                        return Ok(0);
                    }
                    let backup = available_name(path, "upstream-backup");
                    fs::rename(path, &backup).map_err(|e| unusable(path, e))?;
                    tracing::info!(file = %path.display(), backup = %backup.display(), groups = self.groups.len(), "imported upstream's persistence file");
                }
                Err(err) => {
                    self.set_aside(path, &format!("not readable as upstream's format: {err}"))
                }
            }
            return Ok(0);
        }
        self.set_aside(path, "neither this gateway's format nor upstream's");
        Ok(0)
    }

    pub fn into_groups(self) -> Vec<PersistedGroup> {
        self.groups.into_values().collect()
    }

    fn import(&mut self, groups: Vec<gob::UpstreamGroup>) {
        for group in groups {
            let key = GroupingKey::from_labels(
                group.labels.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            );
            let families = group
                .families
                .into_iter()
                .map(|(pushed_at, family)| PersistedFamily {
                    kind: family.kind,
                    name: family.name,
                    help: family.help,
                    pushed_at,
                    metrics: family.metrics,
                })
                .collect();
            let group = PersistedGroup {
                key: key.clone(),
                meta: GroupMeta::default(),
                families,
            };
            self.groups.insert(key, group);
        }
    }

    pub fn replay_segment(&mut self, segment: &Path, newest: bool) -> Result<(), PersistError> {
        let bytes = Bytes::from(fs::read(segment).map_err(|e| unusable(segment, e))?);
        if bytes.len() < HEADER_LEN {
            // The crash came while the segment was being created: nothing was logged in it.
            self.torn = true;
            return Ok(());
        }
        if codec::read_header(&bytes, LOG_MAGIC).is_err() {
            self.set_aside(segment, "not a log segment of this format");
            return Ok(());
        }
        self.found_anything = true;
        for record in Records::shared(&bytes) {
            match record {
                Ok(record) => self.apply(record),
                Err(damage) if newest && is_torn_tail(&bytes, &damage) => {
                    tracing::warn!(file = %segment.display(), "dropping the last log record, cut off by a crash (it was never acknowledged)");
                    self.torn = true;
                    // Cut it off the file too, so that the segment stays readable once newer
                    // segments follow it.
                    if !self.read_only {
                        truncate(segment, damage.offset())?;
                    }
                    return Ok(());
                }
                Err(damage) => {
                    self.set_aside(segment, &damage.to_string());
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Moves a damaged file out of the way, keeping it as evidence.
    fn set_aside(&mut self, path: &Path, reason: &str) {
        self.corrupt = true;
        if self.read_only {
            tracing::error!(file = %path.display(), reason, "persistence file is damaged");
            return;
        }
        let aside = available_name(
            path,
            &format!("corrupt-{}", Timestamp::now().as_nanos() / 1_000_000_000),
        );
        match fs::rename(path, &aside) {
            Ok(()) => {
                tracing::error!(file = %path.display(), moved_to = %aside.display(), reason, "persistence file is damaged; starting with what could be read")
            }
            Err(err) => {
                tracing::error!(file = %path.display(), reason, err = %err, "persistence file is damaged and could not be moved aside")
            }
        }
    }
}

/// Damage at the end of the newest segment is a write cut short by a crash: the record was
/// never acknowledged. That is: it runs past the end of the file, or it is the last record, or
/// only zeros follow (space the file system allocated but never wrote).
fn is_torn_tail(bytes: &[u8], damage: &Damage) -> bool {
    match damage {
        Damage::Truncated { .. } => true,
        Damage::Corrupt { offset, .. } => {
            let rest = &bytes[*offset..];
            let len = rest
                .get(0..4)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u32::from_le_bytes) as usize;
            rest.len() == 8 + len || rest.iter().all(|&b| b == 0)
        }
    }
}

/// Shortens a segment to `len` bytes, durably.
fn truncate(segment: &Path, len: usize) -> Result<(), PersistError> {
    OpenOptions::new()
        .write(true)
        .open(segment)
        .and_then(|file| {
            file.set_len(len as u64)?;
            file.sync_all()
        })
        .map_err(|e| unusable(segment, e))
}
