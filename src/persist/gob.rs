//! Reading the persistence file of upstream's Go Pushgateway, so that a gateway taking over its
//! `--persistence.file` can import the groups in it.
//!
//! Upstream writes its whole store (storage/diskmetricstore.go) with Go's `encoding/gob` as one
//! value of type `GroupingKeyToMetricGroup`:
//!
//! ```text
//! map[string]MetricGroup                      // keyed by grouping key
//! MetricGroup{Labels map[string]string; Metrics map[string]TimestampedMetricFamily}
//! TimestampedMetricFamily{Timestamp time.Time; GobbableMetricFamily *GobbableMetricFamily}
//! ```
//!
//! Both leaf types encode themselves into a byte string: `time.Time` with `MarshalBinary`,
//! `GobbableMetricFamily` as a protobuf `io.prometheus.client.MetricFamily`.
//!
//! gob streams describe their own types, so this is a decoder of gob's wire format (Go's
//! `encoding/gob/doc.go`): the type definitions are taken as the stream sends them (ids, field
//! numbers and field order are whatever the writing process happened to assign), and the value is
//! then read by field name, as Go's decoder matches fields, skipping fields it does not know.
//! Interface values, which upstream never writes, are refused.
//!
//! The input is untrusted: every length is checked against the bytes that remain before anything
//! is read, nothing is allocated ahead of the bytes that fill it, nesting is bounded, and every
//! malformation is an error, never a panic.

use std::collections::BTreeMap;

use bytes::Bytes;
use prost::Message as _;

use crate::model::Timestamp;
use crate::model::proto::{METRIC_FAMILY_METRIC_TAG, MetricType};

/// One grouping key of upstream's store.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamGroup {
    pub labels: BTreeMap<String, String>,
    /// With the time of the push that last changed each family, ordered by family name.
    pub families: Vec<(Timestamp, UpstreamFamily)>,
}

/// A metric family of upstream's file, its metrics still encoded: decoding them into owned
/// metrics and encoding them again took most of an import's time and memory (two allocations
/// per label). They are checked to decode, as a full decoding would check them.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamFamily {
    pub name: String,
    pub help: Option<String>,
    pub kind: MetricType,
    /// The metrics as repeated `MetricFamily.metric` fields, as the store keeps them.
    pub metrics: Bytes,
}

/// `io.prometheus.client.MetricFamily` with the metrics left as bytes: the same fields, so that
/// everything but the metrics is decoded and checked exactly as before.
#[derive(Clone, PartialEq, prost::Message)]
struct ShallowFamily {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "2")]
    help: Option<String>,
    #[prost(enumeration = "MetricType", optional, tag = "3")]
    r#type: Option<i32>,
    #[prost(bytes = "vec", repeated, tag = "4")]
    metric: Vec<Vec<u8>>,
    #[prost(string, optional, tag = "5")]
    unit: Option<String>,
}

/// Why a file could not be read as upstream's. Offsets count bytes from the start of the file.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the data ends early, at byte {offset}")]
    Truncated { offset: usize },
    #[error("malformed unsigned integer at byte {offset}")]
    BadUint { offset: usize },
    #[error("length {length} at byte {offset} runs past the end of the data")]
    TooLong { offset: usize, length: u64 },
    #[error("bytes left over at byte {offset}, after the contents of the message")]
    LeftOver { offset: usize },
    #[error("invalid type id {id} at byte {offset}")]
    BadTypeId { offset: usize, id: i64 },
    #[error("type {id} is defined a second time at byte {offset}")]
    DuplicateType { offset: usize, id: i64 },
    #[error("the type definition at byte {offset} {reason}")]
    BadTypeDefinition { offset: usize, reason: &'static str },
    #[error("type {id}, used at byte {offset}, is not defined")]
    UnknownType { offset: usize, id: i64 },
    #[error("struct field number out of range at byte {offset}")]
    BadField { offset: usize },
    #[error("the array at byte {offset} has {found} elements, its type says {expected}")]
    ArrayLength {
        offset: usize,
        found: u64,
        expected: u64,
    },
    #[error("values nest more than {MAX_DEPTH} deep at byte {offset}")]
    TooDeep { offset: usize },
    #[error("interface value at byte {offset}; upstream's format has none")]
    Interface { offset: usize },
    #[error("the stored value at byte {offset} does not start with field delta 0")]
    BadSingleton { offset: usize },
    #[error("invalid UTF-8 in the string at byte {offset}")]
    InvalidUtf8 { offset: usize },
    #[error("{what} is not {expected}, as upstream stores it")]
    UnexpectedType {
        what: &'static str,
        expected: &'static str,
    },
    #[error("the data holds type definitions but no value")]
    NoValue,
    #[error("push time of metric family {family:?}: {reason}")]
    InvalidTime {
        family: String,
        reason: &'static str,
    },
    #[error("metric family {family:?}: {source}")]
    InvalidFamily {
        family: String,
        source: prost::DecodeError,
    },
    #[error("a metric of family {family:?}: {source}")]
    InvalidMetric {
        family: String,
        source: crate::store::CorruptMetrics,
    },
}

type Result<T> = std::result::Result<T, UpstreamError>;

/// Does this look like upstream's file: does the first gob message define a map with string keys,
/// the type of the store (the encoder defines the outermost type before those inside it)?
pub fn looks_like_upstream(bytes: &[u8]) -> bool {
    let mut stream = Cursor::new(bytes);
    let mut types = Types::default();
    match read_message(&mut stream, &mut types) {
        Ok(Message::Definition(id)) => {
            matches!(types.0.get(&id), Some(Wire::Map { key: STRING, .. }))
        }
        _ => false,
    }
}

/// Decodes upstream's persistence file. Empty input holds no groups. Like upstream's own reader,
/// this reads the first value of the stream and ignores anything after it.
pub fn read_upstream(bytes: &[u8]) -> Result<Vec<UpstreamGroup>> {
    let mut stream = Cursor::new(bytes);
    if stream.is_empty() {
        return Ok(Vec::new());
    }
    let mut types = Types::default();
    loop {
        if stream.is_empty() {
            return Err(UpstreamError::NoValue);
        }
        if let Message::Value {
            id,
            offset,
            mut body,
        } = read_message(&mut stream, &mut types)?
        {
            let groups = read_store(&types, &mut body, id, offset)?;
            body.finish()?;
            return Ok(groups);
        }
    }
}

/// The predefined type ids of gob (doc.go); user types start at `FIRST_USER_ID`.
type TypeId = i64;
const BOOL: TypeId = 1;
const INT: TypeId = 2;
const UINT: TypeId = 3;
const FLOAT: TypeId = 4;
const BYTES: TypeId = 5;
const STRING: TypeId = 6;
const COMPLEX: TypeId = 7;
const INTERFACE: TypeId = 8;
const FIRST_USER_ID: TypeId = 64;

/// Upstream's values nest four deep; the bound only keeps a hostile stream of a recursive type from
/// exhausting the stack.
const MAX_DEPTH: usize = 100;

/// Seconds from Go's internal epoch (January 1, year 1, UTC) to the Unix epoch.
const GO_TO_UNIX_SECONDS: i64 = 62_135_596_800;

/// A position in the input, limited to the end of the current message; it keeps the whole input
/// so that errors can give offsets in the file.
struct Cursor<'a> {
    input: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Cursor<'a> {
    fn new(input: &'a [u8]) -> Self {
        Cursor {
            input,
            pos: 0,
            end: input.len(),
        }
    }

    fn remaining(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let taken = (n <= self.remaining())
            .then(|| self.input.get(self.pos..self.pos + n))
            .flatten()
            .ok_or(UpstreamError::Truncated { offset: self.end })?;
        self.pos += n;
        Ok(taken)
    }

    /// gob's unsigned integer: one byte below 128, else a byte holding the negated count of the
    /// big-endian bytes that follow.
    fn uint(&mut self) -> Result<u64> {
        let offset = self.pos;
        let &[first] = self.take(1)? else {
            return Err(UpstreamError::Truncated { offset });
        };
        if first < 0x80 {
            return Ok(u64::from(first));
        }
        let width = usize::from((first as i8).unsigned_abs());
        if width > 8 {
            return Err(UpstreamError::BadUint { offset });
        }
        Ok(self
            .take(width)?
            .iter()
            .fold(0, |x, &b| x << 8 | u64::from(b)))
    }

    /// gob's signed integer: bit 0 of the unsigned form says whether to complement the rest.
    fn int(&mut self) -> Result<i64> {
        let u = self.uint()?;
        let magnitude = (u >> 1) as i64;
        Ok(if u & 1 == 1 { !magnitude } else { magnitude })
    }

    /// A count or length, which cannot exceed what is left of the message: every element of a
    /// collection takes at least one byte.
    fn length(&mut self) -> Result<usize> {
        let offset = self.pos;
        let length = self.uint()?;
        usize::try_from(length)
            .ok()
            .filter(|&n| n <= self.remaining())
            .ok_or(UpstreamError::TooLong { offset, length })
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.length()?;
        self.take(n)
    }

    fn string(&mut self) -> Result<String> {
        let offset = self.pos;
        std::str::from_utf8(self.bytes()?)
            .map(str::to_owned)
            .map_err(|_| UpstreamError::InvalidUtf8 { offset })
    }

    /// The next length-prefixed message, as a cursor of its own.
    fn message(&mut self) -> Result<Cursor<'a>> {
        let n = self.length()?;
        let message = Cursor {
            input: self.input,
            pos: self.pos,
            end: self.pos + n,
        };
        self.pos += n;
        Ok(message)
    }

    fn finish(&self) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(UpstreamError::LeftOver { offset: self.pos })
        }
    }
}

/// Steps through the (field number delta, value) pairs of a struct value.
#[derive(Default)]
struct FieldWalk {
    last: Option<usize>,
}

impl FieldWalk {
    /// The number of the next field sent, or `None` at the zero delta that ends the struct.
    fn next(&mut self, c: &mut Cursor, count: usize) -> Result<Option<usize>> {
        let offset = c.pos;
        let delta = c.uint()?;
        if delta == 0 {
            return Ok(None);
        }
        let field = usize::try_from(delta)
            .ok()
            .and_then(|delta| match self.last {
                None => Some(delta - 1),
                Some(last) => last.checked_add(delta),
            })
            .filter(|&field| field < count)
            .ok_or(UpstreamError::BadField { offset })?;
        self.last = Some(field);
        Ok(Some(field))
    }

    fn next_of<'f>(&mut self, c: &mut Cursor, fields: &'f [Field]) -> Result<Option<&'f Field>> {
        let offset = c.pos;
        self.next(c, fields.len())?
            .map(|n| fields.get(n).ok_or(UpstreamError::BadField { offset }))
            .transpose()
    }
}

/// A user-defined type as the stream describes it (gob's `wireType`).
enum Wire {
    Array {
        elem: TypeId,
        len: u64,
    },
    Slice {
        elem: TypeId,
    },
    Struct {
        fields: Vec<Field>,
    },
    Map {
        key: TypeId,
        elem: TypeId,
    },
    /// A GobEncoder, BinaryMarshaler or TextMarshaler: a byte string only the type can read.
    SelfEncoded,
}

struct Field {
    name: String,
    id: TypeId,
}

/// The user types defined so far. Definitions may refer to types defined later in the stream
/// (the encoder sends an outer type before the ones inside it), so ids are only looked up when a
/// value is read.
#[derive(Default)]
struct Types(BTreeMap<TypeId, Wire>);

enum Message<'a> {
    Definition(TypeId),
    Value {
        id: TypeId,
        offset: usize,
        body: Cursor<'a>,
    },
}

/// Reads one message: a type definition (negated id, then a `wireType`) is added to `types`; for a
/// value, the cursor is left after the type id.
fn read_message<'a>(stream: &mut Cursor<'a>, types: &mut Types) -> Result<Message<'a>> {
    let mut body = stream.message()?;
    let offset = body.pos;
    let id = body.int()?;
    if id >= 0 {
        return Ok(Message::Value { id, offset, body });
    }
    let id = id
        .checked_neg()
        .filter(|id| (FIRST_USER_ID..=TypeId::from(i32::MAX)).contains(id))
        .ok_or(UpstreamError::BadTypeId { offset, id })?;
    if types.0.contains_key(&id) {
        return Err(UpstreamError::DuplicateType { offset, id });
    }
    let wire = read_wire_type(&mut body)?;
    body.finish()?;
    types.0.insert(id, wire);
    Ok(Message::Definition(id))
}

/// `wireType{ArrayT, SliceT, StructT, MapT, GobEncoderT, BinaryMarshalerT, TextMarshalerT}`, of
/// which exactly one is set.
fn read_wire_type(c: &mut Cursor) -> Result<Wire> {
    let offset = c.pos;
    let mut wire = None;
    let mut walk = FieldWalk::default();
    while let Some(field) = walk.next(c, 7)? {
        let kind = match field {
            0 => read_array_type(c, offset)?,
            1 => read_slice_type(c)?,
            2 => read_struct_type(c)?,
            3 => read_map_type(c)?,
            _ => read_self_encoded_type(c)?,
        };
        if wire.replace(kind).is_some() {
            return Err(UpstreamError::BadTypeDefinition {
                offset,
                reason: "describes more than one kind of type",
            });
        }
    }
    wire.ok_or(UpstreamError::BadTypeDefinition {
        offset,
        reason: "describes no type",
    })
}

/// `CommonType{Name string; Id typeId}`. Neither is needed: the id that counts is the one the
/// message defines, and names do not take part in matching.
fn skip_common_type(c: &mut Cursor) -> Result<()> {
    let mut walk = FieldWalk::default();
    while let Some(field) = walk.next(c, 2)? {
        if field == 0 {
            c.bytes()?;
        } else {
            c.int()?;
        }
    }
    Ok(())
}

/// `arrayType{CommonType; Elem typeId; Len int}`.
fn read_array_type(c: &mut Cursor, offset: usize) -> Result<Wire> {
    let (mut elem, mut len) = (0, 0);
    let mut walk = FieldWalk::default();
    while let Some(field) = walk.next(c, 3)? {
        match field {
            0 => skip_common_type(c)?,
            1 => elem = c.int()?,
            _ => {
                len = u64::try_from(c.int()?).map_err(|_| UpstreamError::BadTypeDefinition {
                    offset,
                    reason: "gives an array a negative length",
                })?
            }
        }
    }
    Ok(Wire::Array { elem, len })
}

/// `sliceType{CommonType; Elem typeId}`.
fn read_slice_type(c: &mut Cursor) -> Result<Wire> {
    let mut elem = 0;
    let mut walk = FieldWalk::default();
    while let Some(field) = walk.next(c, 2)? {
        match field {
            0 => skip_common_type(c)?,
            _ => elem = c.int()?,
        }
    }
    Ok(Wire::Slice { elem })
}

/// `structType{CommonType; Field []*fieldType}` with `fieldType{Name string; Id typeId}`.
fn read_struct_type(c: &mut Cursor) -> Result<Wire> {
    let mut fields = Vec::new();
    let mut walk = FieldWalk::default();
    while let Some(field) = walk.next(c, 2)? {
        match field {
            0 => skip_common_type(c)?,
            _ => {
                for _ in 0..c.length()? {
                    let (mut name, mut id) = (String::new(), 0);
                    let mut field_walk = FieldWalk::default();
                    while let Some(field) = field_walk.next(c, 2)? {
                        match field {
                            0 => name = c.string()?,
                            _ => id = c.int()?,
                        }
                    }
                    fields.push(Field { name, id });
                }
            }
        }
    }
    Ok(Wire::Struct { fields })
}

/// `mapType{CommonType; Key typeId; Elem typeId}`.
fn read_map_type(c: &mut Cursor) -> Result<Wire> {
    let (mut key, mut elem) = (0, 0);
    let mut walk = FieldWalk::default();
    while let Some(field) = walk.next(c, 3)? {
        match field {
            0 => skip_common_type(c)?,
            1 => key = c.int()?,
            _ => elem = c.int()?,
        }
    }
    Ok(Wire::Map { key, elem })
}

/// `gobEncoderType{CommonType}`.
fn read_self_encoded_type(c: &mut Cursor) -> Result<Wire> {
    let mut walk = FieldWalk::default();
    while walk.next(c, 1)?.is_some() {
        skip_common_type(c)?;
    }
    Ok(Wire::SelfEncoded)
}

impl Types {
    fn get(&self, id: TypeId, offset: usize) -> Result<&Wire> {
        self.0
            .get(&id)
            .ok_or(UpstreamError::UnknownType { offset, id })
    }

    /// Reads past a value of any type but interfaces, as Go's decoder does with fields the
    /// receiving struct does not have.
    fn skip(&self, c: &mut Cursor, id: TypeId, depth: usize) -> Result<()> {
        let offset = c.pos;
        if depth >= MAX_DEPTH {
            return Err(UpstreamError::TooDeep { offset });
        }
        match id {
            BOOL | INT | UINT | FLOAT => {
                c.uint()?;
            }
            BYTES | STRING => {
                c.bytes()?;
            }
            COMPLEX => {
                c.uint()?;
                c.uint()?;
            }
            INTERFACE => return Err(UpstreamError::Interface { offset }),
            _ => match self.get(id, offset)? {
                Wire::Array { elem, len } => {
                    let found = c.length()?;
                    if found as u64 != *len {
                        return Err(UpstreamError::ArrayLength {
                            offset,
                            found: found as u64,
                            expected: *len,
                        });
                    }
                    for _ in 0..found {
                        self.skip(c, *elem, depth + 1)?;
                    }
                }
                Wire::Slice { elem } => {
                    for _ in 0..c.length()? {
                        self.skip(c, *elem, depth + 1)?;
                    }
                }
                Wire::Map { key, elem } => {
                    for _ in 0..c.length()? {
                        self.skip(c, *key, depth + 1)?;
                        self.skip(c, *elem, depth + 1)?;
                    }
                }
                Wire::Struct { fields } => {
                    let mut walk = FieldWalk::default();
                    while let Some(field) = walk.next_of(c, fields)? {
                        self.skip(c, field.id, depth + 1)?;
                    }
                }
                Wire::SelfEncoded => {
                    c.bytes()?;
                }
            },
        }
        Ok(())
    }

    /// The fields of a struct type that has at least one of `known`: Go's decoder refuses a struct
    /// with which the receiving type has no field in common.
    fn struct_fields(
        &self,
        id: TypeId,
        offset: usize,
        what: &'static str,
        known: &[&str],
    ) -> Result<&[Field]> {
        match self.get(id, offset)? {
            Wire::Struct { fields }
                if fields.is_empty() || fields.iter().any(|f| known.contains(&f.name.as_str())) =>
            {
                Ok(fields)
            }
            _ => Err(UpstreamError::UnexpectedType {
                what,
                expected: "a struct with its fields",
            }),
        }
    }

    fn is_self_encoded(&self, id: TypeId) -> bool {
        matches!(self.0.get(&id), Some(Wire::SelfEncoded))
    }
}

/// The top-level `GroupingKeyToMetricGroup`. Values that are not structs are sent as field 0 of a
/// one-field struct, hence the delta before the map.
fn read_store(
    types: &Types,
    c: &mut Cursor,
    id: TypeId,
    offset: usize,
) -> Result<Vec<UpstreamGroup>> {
    let &Wire::Map { key: STRING, elem } = types.get(id, offset)? else {
        return Err(UpstreamError::UnexpectedType {
            what: "the stored value",
            expected: "a map keyed by strings",
        });
    };
    let delta_offset = c.pos;
    if c.uint()? != 0 {
        return Err(UpstreamError::BadSingleton {
            offset: delta_offset,
        });
    }
    let mut groups = Vec::new();
    for _ in 0..c.length()? {
        // The grouping key is derived from the labels, which the group holds as well.
        c.bytes()?;
        groups.push(read_group(types, c, elem)?);
    }
    Ok(groups)
}

/// `MetricGroup{Labels; Metrics}`.
fn read_group(types: &Types, c: &mut Cursor, id: TypeId) -> Result<UpstreamGroup> {
    let fields = types.struct_fields(id, c.pos, "MetricGroup", &["Labels", "Metrics"])?;
    let mut group = UpstreamGroup {
        labels: BTreeMap::new(),
        families: Vec::new(),
    };
    let mut walk = FieldWalk::default();
    while let Some(field) = walk.next_of(c, fields)? {
        match field.name.as_str() {
            "Labels" => group.labels = read_labels(types, c, field.id)?,
            "Metrics" => group.families = read_families(types, c, field.id)?,
            _ => types.skip(c, field.id, 0)?,
        }
    }
    Ok(group)
}

fn read_labels(types: &Types, c: &mut Cursor, id: TypeId) -> Result<BTreeMap<String, String>> {
    let Some(Wire::Map {
        key: STRING,
        elem: STRING,
    }) = types.0.get(&id)
    else {
        return Err(UpstreamError::UnexpectedType {
            what: "MetricGroup.Labels",
            expected: "map[string]string",
        });
    };
    let mut labels = BTreeMap::new();
    for _ in 0..c.length()? {
        let name = c.string()?;
        labels.insert(name, c.string()?);
    }
    Ok(labels)
}

/// `NameToTimestampedMetricFamilyMap`. As in a Go map, a later entry of the same name replaces an
/// earlier one, and a nil family leaves the name out.
fn read_families(
    types: &Types,
    c: &mut Cursor,
    id: TypeId,
) -> Result<Vec<(Timestamp, UpstreamFamily)>> {
    let &Wire::Map { key: STRING, elem } = types.get(id, c.pos)? else {
        return Err(UpstreamError::UnexpectedType {
            what: "MetricGroup.Metrics",
            expected: "a map keyed by strings",
        });
    };
    let mut families = BTreeMap::new();
    for _ in 0..c.length()? {
        let name = c.string()?;
        let family = read_timestamped_family(types, c, elem, &name)?;
        families.insert(name, family);
    }
    Ok(families.into_values().flatten().collect())
}

/// `TimestampedMetricFamily{Timestamp; GobbableMetricFamily}`. Go leaves zero values out of a
/// struct, so a missing time is Go's zero time and a missing family is nil.
fn read_timestamped_family(
    types: &Types,
    c: &mut Cursor,
    id: TypeId,
    name: &str,
) -> Result<Option<(Timestamp, UpstreamFamily)>> {
    let fields = types.struct_fields(
        id,
        c.pos,
        "TimestampedMetricFamily",
        &["Timestamp", "GobbableMetricFamily"],
    )?;
    let mut pushed_at = Timestamp::ZERO;
    let mut family = None;
    let mut walk = FieldWalk::default();
    while let Some(field) = walk.next_of(c, fields)? {
        match field.name.as_str() {
            "Timestamp" => {
                if !types.is_self_encoded(field.id) {
                    return Err(UpstreamError::UnexpectedType {
                        what: "TimestampedMetricFamily.Timestamp",
                        expected: "a time.Time",
                    });
                }
                pushed_at =
                    parse_time(c.bytes()?).map_err(|reason| UpstreamError::InvalidTime {
                        family: name.to_owned(),
                        reason,
                    })?;
            }
            "GobbableMetricFamily" => {
                if !types.is_self_encoded(field.id) {
                    return Err(UpstreamError::UnexpectedType {
                        what: "TimestampedMetricFamily.GobbableMetricFamily",
                        expected: "a protobuf-encoded metric family",
                    });
                }
                family = Some(read_family(c.bytes()?, name)?);
            }
            _ => types.skip(c, field.id, 0)?,
        }
    }
    Ok(family.map(|family| (pushed_at, family)))
}

/// A `MetricFamily` message, its metrics copied out as they are encoded once they are known to
/// decode.
fn read_family(encoded: &[u8], name: &str) -> Result<UpstreamFamily> {
    let shallow =
        ShallowFamily::decode(encoded).map_err(|source| UpstreamError::InvalidFamily {
            family: name.to_owned(),
            source,
        })?;
    let mut metrics = Vec::with_capacity(
        shallow
            .metric
            .iter()
            .map(|m| prost::encoding::bytes::encoded_len(METRIC_FAMILY_METRIC_TAG, m))
            .sum(),
    );
    for metric in &shallow.metric {
        prost::encoding::bytes::encode(METRIC_FAMILY_METRIC_TAG, metric, &mut metrics);
    }
    crate::store::check_metrics(&metrics).map_err(|source| UpstreamError::InvalidMetric {
        family: name.to_owned(),
        source,
    })?;
    Ok(UpstreamFamily {
        kind: shallow.r#type(),
        name: shallow.name.unwrap_or_default(),
        help: shallow.help,
        metrics: metrics.into(),
    })
}

/// `time.Time.MarshalBinary`: version (1, or 2 when the zone offset has seconds), seconds since
/// January 1 of year 1 (big-endian i64), nanoseconds (big-endian i32), zone offset in minutes
/// (i16), and for version 2 the offset's seconds. The zone does not change the instant.
fn parse_time(bytes: &[u8]) -> std::result::Result<Timestamp, &'static str> {
    let (&version, rest) = bytes.split_first().ok_or("no data")?;
    let zone_len = match version {
        1 => 2,
        2 => 3,
        _ => return Err("unknown encoding version"),
    };
    let (seconds, rest) = rest.split_first_chunk::<8>().ok_or("too short")?;
    let (nanos, rest) = rest.split_first_chunk::<4>().ok_or("too short")?;
    if rest.len() != zone_len {
        return Err("wrong length");
    }
    let seconds = i64::from_be_bytes(*seconds);
    let nanos = i32::from_be_bytes(*nanos);
    if seconds == 0 && nanos == 0 {
        return Ok(Timestamp::ZERO);
    }
    if !(0..1_000_000_000).contains(&nanos) {
        return Err("nanoseconds out of range");
    }
    seconds
        .checked_sub(GO_TO_UNIX_SECONDS)
        .and_then(|unix| unix.checked_mul(1_000_000_000))
        .and_then(|unix_nanos| unix_nanos.checked_add(i64::from(nanos)))
        .map(Timestamp::from_nanos)
        .ok_or("outside the range of nanosecond timestamps")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MetricType;
    use crate::model::proto::{Gauge, LabelPair, Metric, MetricFamily};

    /// Written by upstream 1.5.1 (see tests/data/upstream/README.md).
    const THREE_GROUPS: &[u8] = include_bytes!("../../tests/data/upstream/three-groups.gob");
    const EMPTY_STORE: &[u8] = include_bytes!("../../tests/data/upstream/empty-store.gob");
    /// Written by synthetic.go: other type ids, field order and fields than upstream's.
    const SYNTHETIC: &[u8] = include_bytes!("../../tests/data/upstream/synthetic.gob");

    fn group<'g>(groups: &'g [UpstreamGroup], job: &str) -> &'g UpstreamGroup {
        let found: Vec<_> = groups
            .iter()
            .filter(|g| g.labels.get("job").map(String::as_str) == Some(job))
            .collect();
        assert_eq!(found.len(), 1, "groups of job {job}");
        found[0]
    }

    /// The family with its metrics decoded.
    fn decoded(family: &UpstreamFamily) -> MetricFamily {
        MetricFamily {
            name: Some(family.name.clone()),
            help: family.help.clone(),
            r#type: Some(family.kind as i32),
            metric: crate::store::MetricIter::over(&family.metrics)
                .map(|m| m.expect("decodes"))
                .collect(),
            unit: None,
        }
    }

    fn family(group: &UpstreamGroup, name: &str) -> (Timestamp, MetricFamily) {
        group
            .families
            .iter()
            .find(|(_, f)| f.name == name)
            .map(|(at, f)| (*at, decoded(f)))
            .unwrap_or_else(|| panic!("no family {name}"))
    }

    fn names(group: &UpstreamGroup) -> Vec<&str> {
        group
            .families
            .iter()
            .map(|(_, f)| f.name.as_str())
            .collect()
    }

    fn labels(metric: &Metric) -> Vec<(&str, &str)> {
        metric.label.iter().map(|l| (l.name(), l.value())).collect()
    }

    fn gauge(family: &MetricFamily) -> f64 {
        assert_eq!(family.r#type(), MetricType::Gauge, "{}", family.name());
        assert_eq!(family.metric.len(), 1, "{}", family.name());
        family.metric[0]
            .gauge
            .and_then(|g| g.value)
            .unwrap_or_else(|| panic!("{} has no value", family.name()))
    }

    fn assert_plausible(at: Timestamp) {
        let seconds = at.as_seconds_f64();
        // 2020-01-01 to 2100-01-01.
        assert!(
            (1_577_836_800.0..4_102_444_800.0).contains(&seconds),
            "push time {at:?}"
        );
    }

    /// Upstream's own families: the push time as a gauge equal to the time the family is stored
    /// with, and the failure time, 0 until a push fails.
    fn assert_push_times(group: &UpstreamGroup, failed: bool) {
        let (pushed_at, pushed) = family(group, "push_time_seconds");
        assert_plausible(pushed_at);
        assert_eq!(
            pushed.help(),
            "Last Unix time when changing this group in the Pushgateway succeeded."
        );
        assert!((gauge(&pushed) - pushed_at.as_seconds_f64()).abs() < 1e-3);
        let (failed_at, failure) = family(group, "push_failure_time_seconds");
        assert_plausible(failed_at);
        assert_eq!(
            failure.help(),
            "Last Unix time when changing this group in the Pushgateway failed."
        );
        if failed {
            assert!((gauge(&failure) - failed_at.as_seconds_f64()).abs() < 1e-3);
            assert!(failed_at > pushed_at);
        } else {
            assert_eq!(gauge(&failure), 0.0);
            assert_eq!(failed_at, pushed_at);
        }
    }

    #[test]
    fn reads_a_file_written_by_upstream() {
        assert!(looks_like_upstream(THREE_GROUPS));
        let groups = read_upstream(THREE_GROUPS).unwrap();
        assert_eq!(groups.len(), 3);

        let batch = group(&groups, "batch");
        assert_eq!(
            batch.labels,
            BTreeMap::from([
                ("instance".into(), "host1".into()),
                ("job".into(), "batch".into())
            ])
        );
        assert_eq!(
            names(batch),
            [
                "batch_duration_seconds",
                "batch_last_success_seconds",
                "batch_latency_seconds",
                "batch_records_total",
                "batch_untyped",
                "push_failure_time_seconds",
                "push_time_seconds",
            ]
        );
        let pushed_at = batch.families[0].0;
        assert_plausible(pushed_at);
        assert!(
            batch.families.iter().all(|(at, _)| *at == pushed_at),
            "one push, one time"
        );
        assert_push_times(batch, false);
        for (_, f) in &batch.families {
            let f = decoded(f);
            for m in &f.metric {
                assert_eq!(
                    labels(m)[..2],
                    [("instance", "host1"), ("job", "batch")],
                    "{}",
                    f.name()
                );
            }
        }

        let (_, last_success) = family(batch, "batch_last_success_seconds");
        assert_eq!(last_success.help(), "Last time the batch job succeeded.");
        assert_eq!(gauge(&last_success), 1.7e9);

        let (_, duration) = family(batch, "batch_duration_seconds");
        assert_eq!(duration.r#type(), MetricType::Histogram);
        assert_eq!(duration.help(), "How long the batch job ran.");
        let histogram = duration.metric[0].histogram.as_ref().unwrap();
        assert_eq!(
            (histogram.sample_count(), histogram.sample_sum()),
            (6, 4.25)
        );
        let buckets: Vec<_> = histogram
            .bucket
            .iter()
            .map(|b| (b.upper_bound(), b.cumulative_count()))
            .collect();
        assert_eq!(buckets, [(0.5, 3), (1.0, 5), (f64::INFINITY, 6)]);

        let (_, latency) = family(batch, "batch_latency_seconds");
        assert_eq!(latency.r#type(), MetricType::Summary);
        assert_eq!(latency.help, None);
        let summary = latency.metric[0].summary.as_ref().unwrap();
        assert_eq!((summary.sample_count(), summary.sample_sum()), (40, 12.5));
        let quantiles: Vec<_> = summary
            .quantile
            .iter()
            .map(|q| (q.quantile(), q.value()))
            .collect();
        assert_eq!(quantiles, [(0.5, 0.2), (0.99, 0.9)]);

        let (_, records) = family(batch, "batch_records_total");
        assert_eq!(records.r#type(), MetricType::Counter);
        let records: Vec<_> = records
            .metric
            .iter()
            .map(|m| (labels(m)[2], m.counter.as_ref().and_then(|c| c.value)))
            .collect();
        assert_eq!(
            records,
            [(("kind", "ok"), Some(1234.0)), (("kind", "err"), Some(7.0))]
        );

        let (_, untyped) = family(batch, "batch_untyped");
        assert_eq!(untyped.r#type(), MetricType::Untyped);
        assert_eq!(untyped.metric[0].untyped.and_then(|u| u.value), Some(3.5));

        // Pushed to job@base64/L3Zhci90bXA/a@base64/=; the rejected push left only its time.
        let tmp = group(&groups, "/var/tmp");
        assert_eq!(
            tmp.labels,
            BTreeMap::from([("a".into(), "".into()), ("job".into(), "/var/tmp".into())])
        );
        assert_eq!(
            names(tmp),
            [
                "push_failure_time_seconds",
                "push_time_seconds",
                "tmp_files"
            ]
        );
        assert_push_times(tmp, true);
        let (files_at, files) = family(tmp, "tmp_files");
        assert_eq!(files_at, family(tmp, "push_time_seconds").0);
        assert_eq!(gauge(&files), 12.0);
        assert_eq!(
            labels(&files.metric[0]),
            [("a", ""), ("instance", ""), ("job", "/var/tmp")]
        );

        let proto = group(&groups, "proto");
        assert_eq!(
            proto.labels,
            BTreeMap::from([("job".into(), "proto".into())])
        );
        assert_eq!(
            names(proto),
            [
                "proto_requests_total",
                "push_failure_time_seconds",
                "push_time_seconds"
            ]
        );
        assert_push_times(proto, false);
        let (_, requests) = family(proto, "proto_requests_total");
        assert_eq!(requests.r#type(), MetricType::Counter);
        assert_eq!(requests.help(), "Pushed as protobuf.");
        assert_eq!(
            labels(&requests.metric[0]),
            [("code", "200"), ("instance", ""), ("job", "proto")]
        );
        assert_eq!(
            requests.metric[0].counter.as_ref().and_then(|c| c.value),
            Some(42.5)
        );
    }

    #[test]
    fn reads_a_store_without_groups() {
        assert!(looks_like_upstream(EMPTY_STORE));
        assert_eq!(read_upstream(EMPTY_STORE).unwrap(), []);
        assert!(!looks_like_upstream(b""));
        assert_eq!(read_upstream(b"").unwrap(), []);
    }

    #[test]
    fn takes_types_from_the_stream_and_matches_fields_by_name() {
        assert!(looks_like_upstream(SYNTHETIC));
        let groups = read_upstream(SYNTHETIC).unwrap();
        assert_eq!(groups.len(), 2);
        let synthetic = group(&groups, "synthetic");
        assert_eq!(
            synthetic.labels,
            BTreeMap::from([("job".into(), "synthetic".into())])
        );
        // nil_family has a nil GobbableMetricFamily.
        assert_eq!(names(synthetic), ["synthetic_gauge", "zero_time_gauge"]);
        let (at, gauge_family) = family(synthetic, "synthetic_gauge");
        // 2024-05-06 07:08:09.123456789 at UTC+01:00:30, a version 2 time.
        assert_eq!(at, Timestamp::from_nanos(1_714_975_659_123_456_789));
        assert_eq!(gauge_family.help(), "From synthetic.go.");
        assert_eq!(gauge(&gauge_family), 2.5);
        let (at, zero_family) = family(synthetic, "zero_time_gauge");
        assert_eq!(at, Timestamp::ZERO);
        assert_eq!(gauge(&zero_family), -1.0);
        assert_eq!(group(&groups, "empty").families, []);
    }

    #[test]
    fn sniff_wants_a_gob_map_type_first() {
        assert!(!looks_like_upstream(
            b"PGWSNAP\0\x01\x00\x00\x00\x00\x00\x00\x00"
        ));
        assert!(!looks_like_upstream(b"push_time_seconds{job=\"x\"} 1\n"));
        assert!(!looks_like_upstream(b"# HELP whatever Some text.\n"));
        assert!(!looks_like_upstream(&[0xff; 64]));
        // The example of Go's doc.go: a gob stream, but of a struct Point{X, Y int}.
        let point = b"\x1f\xff\x81\x03\x01\x01\x05Point\x01\xff\x82\x00\x01\x02\x01\x01X\x01\x04\x00\x01\x01Y\x01\x04\x00\x00\x00\x07\xff\x82\x01\x2c\x01\x42\x00";
        assert!(!looks_like_upstream(point));
        assert!(matches!(
            read_upstream(point),
            Err(UpstreamError::UnexpectedType { .. })
        ));
    }

    #[test]
    fn every_truncation_is_an_error() {
        for fixture in [THREE_GROUPS, EMPTY_STORE, SYNTHETIC] {
            for len in 1..fixture.len() {
                let cut = &fixture[..len];
                looks_like_upstream(cut);
                assert!(read_upstream(cut).is_err(), "cut to {len} bytes");
            }
        }
    }

    #[test]
    fn bit_flips_do_not_panic() {
        for fixture in [THREE_GROUPS, EMPTY_STORE, SYNTHETIC] {
            let mut bytes = fixture.to_vec();
            for i in 0..bytes.len() {
                for bit in [0x01, 0x10, 0x80] {
                    bytes[i] ^= bit;
                    looks_like_upstream(&bytes);
                    let _ = read_upstream(&bytes);
                    bytes[i] ^= bit;
                }
            }
        }
    }

    #[test]
    fn random_bytes_do_not_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Garbage alone, and garbage as the value after upstream's type definitions.
        let mut stream = Cursor::new(THREE_GROUPS);
        let mut types = Types::default();
        let mut definitions_end = 0;
        let mut store_id = None;
        while let Ok(Message::Definition(id)) = read_message(&mut stream, &mut types) {
            definitions_end = stream.pos;
            store_id.get_or_insert(id);
        }
        let store_id = store_id.unwrap();
        for round in 0..4000 {
            let garbage: Vec<u8> = (0..next() % 200).map(|_| next() as u8).collect();
            let bytes = if round % 2 == 0 {
                garbage
            } else {
                let value = Gob::default().int(store_id).uint(0).raw(&garbage);
                Gob(THREE_GROUPS[..definitions_end].to_vec())
                    .message(value)
                    .0
            };
            looks_like_upstream(&bytes);
            let _ = read_upstream(&bytes);
        }
    }

    /// Writes gob by hand, for streams no Go program would send.
    #[derive(Default)]
    struct Gob(Vec<u8>);

    impl Gob {
        fn uint(mut self, x: u64) -> Self {
            if x < 0x80 {
                self.0.push(x as u8);
            } else {
                let bytes = x.to_be_bytes();
                let skip = x.leading_zeros() as usize / 8;
                self.0.push((skip as u8).wrapping_sub(8));
                self.0.extend_from_slice(&bytes[skip..]);
            }
            self
        }

        fn int(self, i: i64) -> Self {
            let u = if i < 0 {
                (!i as u64) << 1 | 1
            } else {
                (i as u64) << 1
            };
            self.uint(u)
        }

        fn bytes(self, b: &[u8]) -> Self {
            let mut gob = self.uint(b.len() as u64);
            gob.0.extend_from_slice(b);
            gob
        }

        fn raw(mut self, b: &[u8]) -> Self {
            self.0.extend_from_slice(b);
            self
        }

        /// Appends `body` as a length-prefixed message.
        fn message(self, body: Gob) -> Self {
            self.bytes(&body.0)
        }

        fn define(self, id: i64, wire: Gob) -> Self {
            self.message(Gob::default().int(-id).raw(&wire.0))
        }

        // wireType values: the field delta selects the kind, an empty CommonType is left out.
        fn map_type(key: i64, elem: i64) -> Gob {
            Gob::default()
                .raw(&[4, 2])
                .int(key)
                .uint(1)
                .int(elem)
                .raw(&[0, 0])
        }

        fn slice_type(elem: i64) -> Gob {
            Gob::default().raw(&[2, 2]).int(elem).raw(&[0, 0])
        }

        fn struct_type(fields: &[(&str, i64)]) -> Gob {
            let mut gob = Gob::default().raw(&[3, 2]).uint(fields.len() as u64);
            for (name, id) in fields {
                gob = gob.uint(1).bytes(name.as_bytes()).uint(1).int(*id).uint(0);
            }
            gob.raw(&[0, 0])
        }

        fn self_encoded_type() -> Gob {
            Gob::default().raw(&[5, 0, 0])
        }
    }

    /// Upstream's types under ids of our choosing, `TimestampedMetricFamily` with `extra` fields
    /// after its own.
    fn upstream_types(extra: &[(&str, i64)]) -> Gob {
        let mut family_fields = vec![("Timestamp", 105), ("GobbableMetricFamily", 106)];
        family_fields.extend_from_slice(extra);
        Gob::default()
            .define(100, Gob::map_type(STRING, 101))
            .define(101, Gob::struct_type(&[("Labels", 102), ("Metrics", 103)]))
            .define(102, Gob::map_type(STRING, STRING))
            .define(103, Gob::map_type(STRING, 104))
            .define(104, Gob::struct_type(&family_fields))
            .define(105, Gob::self_encoded_type())
            .define(106, Gob::self_encoded_type())
    }

    /// One group {job="j"} holding `families`: the value message after `upstream_types`.
    fn store(families: &[(&str, Gob)]) -> Gob {
        let mut value = Gob::default()
            .int(100)
            .uint(0)
            .uint(1)
            .bytes(b"job\xffj")
            .uint(1)
            .uint(1)
            .bytes(b"job")
            .bytes(b"j");
        value = value.uint(1).uint(families.len() as u64);
        for (name, family) in families {
            value = value.bytes(name.as_bytes()).raw(&family.0);
        }
        value.raw(&[0])
    }

    fn go_time(unix: i64, nanos: u32) -> Vec<u8> {
        let mut t = vec![1];
        t.extend((unix + GO_TO_UNIX_SECONDS).to_be_bytes());
        t.extend(nanos.to_be_bytes());
        t.extend((-1i16).to_be_bytes());
        t
    }

    fn proto_gauge(name: &str, value: f64) -> Vec<u8> {
        MetricFamily {
            name: Some(name.into()),
            r#type: Some(MetricType::Gauge as i32),
            metric: vec![Metric {
                label: vec![LabelPair::new("job", "j")],
                gauge: Some(Gauge { value: Some(value) }),
                ..Default::default()
            }],
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn family_value(time: Option<&[u8]>, proto: Option<&[u8]>) -> Gob {
        let mut gob = Gob::default();
        let mut skipped = 1;
        if let Some(time) = time {
            gob = gob.uint(1).bytes(time);
            skipped = 0;
        }
        if let Some(proto) = proto {
            gob = gob.uint(1 + skipped).bytes(proto);
        }
        gob.uint(0)
    }

    fn read(types: Gob, value: Gob) -> Result<Vec<UpstreamGroup>> {
        read_upstream(&types.message(value).0)
    }

    #[test]
    fn later_duplicates_win_and_nil_families_drop_out() {
        let time = go_time(1_700_000_000, 5);
        let value = store(&[
            ("b", family_value(Some(&time), Some(&proto_gauge("b", 1.0)))),
            ("a", family_value(Some(&time), Some(&proto_gauge("a", 1.0)))),
            ("b", family_value(None, Some(&proto_gauge("b", 2.0)))),
            ("a", family_value(Some(&time), None)),
        ]);
        let groups = read(upstream_types(&[]), value).unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(
            groups[0].labels,
            BTreeMap::from([("job".into(), "j".into())])
        );
        assert_eq!(groups[0].families.len(), 1);
        let (at, b) = &groups[0].families[0];
        assert_eq!(
            (*at, b.name.as_str(), gauge(&decoded(b))),
            (Timestamp::ZERO, "b", 2.0)
        );
    }

    #[test]
    fn reads_explicit_go_zero_time_and_refuses_bad_times() {
        let zero = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
        let value = store(&[("a", family_value(Some(&zero), Some(&proto_gauge("a", 1.0))))]);
        assert_eq!(
            read(upstream_types(&[]), value).unwrap()[0].families[0].0,
            Timestamp::ZERO
        );

        let mut v3 = go_time(1_700_000_000, 0);
        v3[0] = 3;
        let mut long = go_time(1_700_000_000, 0);
        long.push(0);
        for bad in [
            vec![],
            v3,
            long,
            go_time(1_700_000_000, 1_000_000_000),
            go_time(i64::MAX / 2, 0),
        ] {
            let value = store(&[("a", family_value(Some(&bad), Some(&proto_gauge("a", 1.0))))]);
            let err = read(upstream_types(&[]), value).unwrap_err();
            assert!(
                matches!(err, UpstreamError::InvalidTime { ref family, .. } if family == "a"),
                "{err}"
            );
        }
    }

    #[test]
    fn refuses_a_family_that_is_not_protobuf() {
        let value = store(&[("a", family_value(None, Some(b"\xff\xff")))]);
        let err = read(upstream_types(&[]), value).unwrap_err();
        assert!(
            matches!(err, UpstreamError::InvalidFamily { ref family, .. } if family == "a"),
            "{err}"
        );
    }

    #[test]
    fn refuses_interfaces_and_skips_other_unknown_fields() {
        let extra = Gob::default().uint(1).bytes(b"skipped").uint(0);
        let value = store(&[(
            "a",
            Gob::default()
                .uint(2)
                .bytes(&proto_gauge("a", 1.0))
                .raw(&extra.0),
        )]);
        let groups = read(upstream_types(&[("Extra", STRING)]), value).unwrap();
        assert_eq!(groups[0].families[0].1.name, "a");

        let value = store(&[("a", Gob::default().uint(3).bytes(b"main.T").uint(0))]);
        let err = read(upstream_types(&[("Extra", INTERFACE)]), value).unwrap_err();
        assert!(matches!(err, UpstreamError::Interface { .. }), "{err}");
    }

    #[test]
    fn bounds_the_nesting_of_recursive_types() {
        // type T []T, nested far deeper than any stack should follow.
        let types = upstream_types(&[("Extra", 107)]).define(107, Gob::slice_type(107));
        let mut nested = Gob::default().uint(3);
        for _ in 0..100_000 {
            nested = nested.uint(1);
        }
        let value = store(&[("a", nested.uint(0).uint(0))]);
        let err = read(types, value).unwrap_err();
        assert!(matches!(err, UpstreamError::TooDeep { .. }), "{err}");
    }

    #[test]
    fn refuses_lengths_beyond_the_data() {
        for length in [1 << 20, u64::MAX] {
            // A message, a map and a string claiming more than there is.
            let stream = Gob::default().uint(length).raw(b"\x01");
            assert!(matches!(
                read_upstream(&stream.0),
                Err(UpstreamError::TooLong { .. })
            ));
            let value = Gob::default().int(100).uint(0).uint(length);
            assert!(matches!(
                read(upstream_types(&[]), value),
                Err(UpstreamError::TooLong { .. })
            ));
            let value = Gob::default().int(100).uint(0).uint(1).uint(length);
            assert!(matches!(
                read(upstream_types(&[]), value),
                Err(UpstreamError::TooLong { .. })
            ));
        }
        let nine_bytes = Gob::default().raw(&[0xf7, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert!(matches!(
            read_upstream(&nine_bytes.0),
            Err(UpstreamError::BadUint { offset: 0 })
        ));
    }

    #[test]
    fn refuses_malformed_type_definitions() {
        let twice = upstream_types(&[]).define(100, Gob::slice_type(STRING));
        assert!(matches!(
            read(twice, store(&[])),
            Err(UpstreamError::DuplicateType { id: 100, .. })
        ));
        let reserved = Gob::default().define(63, Gob::slice_type(STRING));
        assert!(matches!(
            read_upstream(&reserved.0),
            Err(UpstreamError::BadTypeId { .. })
        ));
        let two_kinds = Gob::default().define(100, Gob::default().raw(&[2, 2, 12, 0, 2, 0, 0]));
        assert!(matches!(
            read_upstream(&two_kinds.0),
            Err(UpstreamError::BadTypeDefinition { .. })
        ));
        let no_kind = Gob::default().define(100, Gob::default().uint(0));
        assert!(matches!(
            read_upstream(&no_kind.0),
            Err(UpstreamError::BadTypeDefinition { .. })
        ));
        let field_out_of_range = Gob::default().define(100, Gob::default().uint(8).uint(0));
        assert!(matches!(
            read_upstream(&field_out_of_range.0),
            Err(UpstreamError::BadField { .. })
        ));
        let left_over = Gob::default().define(100, Gob::slice_type(STRING).uint(0));
        assert!(matches!(
            read_upstream(&left_over.0),
            Err(UpstreamError::LeftOver { .. })
        ));
        assert!(matches!(
            read_upstream(&upstream_types(&[]).0),
            Err(UpstreamError::NoValue)
        ));
    }

    #[test]
    fn checks_the_shape_of_the_store() {
        let unknown = Gob::default().define(100, Gob::map_type(STRING, 101));
        assert!(matches!(
            read(unknown, store(&[])),
            Err(UpstreamError::UnknownType { id: 101, .. })
        ));

        let labels_of_ints = Gob::default()
            .define(100, Gob::map_type(STRING, 101))
            .define(101, Gob::struct_type(&[("Labels", 102)]))
            .define(102, Gob::map_type(STRING, INT));
        let value = Gob::default()
            .int(100)
            .uint(0)
            .uint(1)
            .bytes(b"k")
            .uint(1)
            .uint(0)
            .uint(0);
        assert!(matches!(
            read(labels_of_ints, value),
            Err(UpstreamError::UnexpectedType { .. })
        ));

        let no_common_field = Gob::default()
            .define(100, Gob::map_type(STRING, 101))
            .define(101, Gob::struct_type(&[("Other", STRING)]));
        let value = Gob::default().int(100).uint(0).uint(1).bytes(b"k").uint(0);
        assert!(matches!(
            read(no_common_field, value),
            Err(UpstreamError::UnexpectedType { .. })
        ));

        let value = Gob::default().int(100).uint(1).uint(0);
        assert!(matches!(
            read(upstream_types(&[]), value),
            Err(UpstreamError::BadSingleton { .. })
        ));
    }

    #[test]
    fn ignores_what_follows_the_value_but_not_inside_it() {
        let value = store(&[("a", family_value(None, Some(&proto_gauge("a", 1.0))))]);
        let mut stream = upstream_types(&[]).message(value);
        let complete = read_upstream(&stream.0).unwrap();
        stream = stream.raw(b"trailing bytes are not read, as by upstream");
        assert_eq!(read_upstream(&stream.0).unwrap(), complete);

        let value = store(&[]).uint(0);
        assert!(matches!(
            read(upstream_types(&[]), value),
            Err(UpstreamError::LeftOver { .. })
        ));
    }
}
