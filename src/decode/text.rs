//! The parser for push bodies in the Prometheus text exposition format 0.0.4.
//!
//! Upstream Pushgateway parses these bodies with prometheus/common's `expfmt.TextParser` and
//! hands its error text to the client, so this module reproduces that parser's behaviour: the
//! same bodies are accepted and produce the same families, and rejected bodies get the same
//! message and line number. That includes its quirks, because a push that upstream accepts must
//! be accepted here too, for example:
//!
//! - every line, the last one included, must end in `\n`; only blanks and tabs are whitespace;
//! - a metric name can be quoted, and can then also stand inside the braces
//!   (`{"my.metric",a="b"} 1`), or even after some labels;
//! - after a timestamp nothing may follow on the line, not even a blank;
//! - a line that starts with `{` but names no metric adds its sample to the metric of the line
//!   before it (see `Parser::attach_labels`).
//!
//! The parser is a state machine over the input bytes, one `State` per position in a line.
//! Most states start from the byte read last (`Parser::current`) and leave the byte that ended
//! their token there for the next state, the way upstream's parser passes one byte of lookahead
//! around.
//!
//! Deliberate differences from upstream, each for inputs that no client sends on purpose:
//!
//! - Upstream's parser crashes (a Go panic) on two inputs where a line starts with `{` and names
//!   no metric at first: when no sample line came before (`# TYPE x counter\n{} 1\n`), and when
//!   a summary or histogram is named inside the braces while the state for grouping its samples
//!   was never set up. Both are rejected here with a parse error instead.
//! - Samples of a summary or histogram are grouped by comparing label sets, where upstream
//!   compares 64-bit hashes of them; two different label sets with colliding hashes would be
//!   merged upstream.
//! - A HELP text that is not valid UTF-8 is kept with the invalid bytes replaced by U+FFFD, as a
//!   Rust string requires; upstream keeps the bytes.
//!
//! Where Go leaves a result to the platform (converting an out-of-range float to an integer, for
//! summary and histogram counts), this follows upstream's amd64 builds; see `go_uint64`.

use std::collections::HashMap;

use crate::go::{quote, quote_char};
use crate::model::label::{BUCKET, METRIC_NAME, QUANTILE};
use crate::model::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType, Quantile,
    Summary, Untyped,
};

use crate::model::NameValidation;

/// Parses a push body. Families come out in the order their names first appear; families that
/// end up without samples (e.g. only `# TYPE x counter`) are dropped.
pub fn parse_text(
    input: &[u8],
    validation: NameValidation,
) -> Result<Vec<MetricFamily>, TextParseError> {
    let mut parser = Parser::new(input, validation);
    let mut state = State::StartOfLine;
    while state != State::Done {
        state = parser.step(state)?;
    }
    Ok(parser.finish())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("text format parsing error in line {line}: {message}")]
pub struct TextParseError {
    pub line: usize,
    pub message: String,
}

/// Where the parser is within a line. "Next byte" means the state reads on from the input;
/// "current byte" means the state starts from the byte the previous state stopped at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The next byte starts a line, possibly with blanks before its first token.
    StartOfLine,
    /// After `#`: the next byte starts the comment's first word, possibly after blanks.
    Comment,
    /// The current byte starts a metric name.
    MetricName,
    /// The current byte is `{` or starts the value.
    Labels,
    /// The next byte starts a label name (or, inside braces, a metric name) or is the `}`
    /// closing the braces, possibly after blanks.
    LabelName,
    /// The next byte is the `"` opening a label value, possibly after blanks.
    LabelValue,
    /// The current byte starts the sample value.
    Value,
    /// The next byte starts the timestamp, possibly after blanks.
    Timestamp,
    /// The current byte starts a HELP text.
    Help,
    /// The current byte starts a TYPE word.
    Type,
    /// The input ended at the start of a line.
    Done,
}

/// Which suffix tied the current line's name to a summary or histogram declared without it.
/// `_bucket` needs no entry: for a histogram, a sample that is neither count nor sum is a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Suffix {
    None,
    Count,
    Sum,
}

#[derive(Clone, Copy)]
enum NameKind {
    Metric,
    Label,
}

// Classes of the bytes that can make up a name outside quotes.
const LETTER: u8 = 1; // a-z, A-Z and `_`
const COLON: u8 = 2;
const DIGIT: u8 = 4;
const QUOTE: u8 = 8;

static NAME_BYTES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = if c.is_ascii_alphabetic() || c == b'_' {
            LETTER
        } else if c == b':' {
            COLON
        } else if c.is_ascii_digit() {
            DIGIT
        } else if c == b'"' {
            QUOTE
        } else {
            0
        };
        b += 1;
    }
    table
};

impl NameKind {
    fn start_classes(self) -> u8 {
        match self {
            NameKind::Metric => LETTER | COLON | QUOTE,
            NameKind::Label => LETTER | QUOTE,
        }
    }

    fn starts(self, b: u8) -> bool {
        NAME_BYTES[usize::from(b)] & self.start_classes() != 0
    }

    /// Inside quotes every byte belongs to the name, so that is where other characters go.
    fn continues(self, b: u8, quoted: bool) -> bool {
        quoted || NAME_BYTES[usize::from(b)] & (self.start_classes() | DIGIT) != 0
    }

    /// Like `continues` outside quotes, but stops at a quote as well.
    fn continues_plain(self, b: u8) -> bool {
        NAME_BYTES[usize::from(b)] & (self.start_classes() & !QUOTE | DIGIT) != 0
    }

    fn noun(self) -> &'static str {
        match self {
            NameKind::Metric => "metric name",
            NameKind::Label => "label name",
        }
    }
}

struct Family {
    name: String,
    help: Option<String>,
    r#type: Option<MetricType>,
}

/// The labels that identify one summary or histogram metric: the family name under `__name__`
/// and every label but `quantile` / `le`. A map in spirit (a later insert of a name replaces its
/// value); the slots past `len` keep their strings so that the next line reuses them.
#[derive(Default)]
struct GroupLabels {
    entries: Vec<(String, String)>,
    len: usize,
    /// Upstream only creates its map when a line of a summary or histogram starts; until then
    /// the map does not exist, and storing a label into it crashes.
    initialized: bool,
}

impl GroupLabels {
    fn reset(&mut self, family_name: &str) {
        self.initialized = true;
        self.len = 0;
        self.insert(METRIC_NAME, family_name);
    }

    fn insert(&mut self, name: &str, value: &str) {
        if let Some((_, v)) = self.entries[..self.len].iter_mut().find(|(n, _)| n == name) {
            v.clear();
            v.push_str(value);
            return;
        }
        match self.entries.get_mut(self.len) {
            Some((n, v)) => {
                n.clear();
                n.push_str(name);
                v.clear();
                v.push_str(value);
            }
            None => self.entries.push((name.to_owned(), value.to_owned())),
        }
        self.len += 1;
    }

    /// Writes the label set in a canonical form to `out`, to compare it with other lines'
    /// sets: sorted, each name and value followed by 0xff, which valid UTF-8 never contains.
    fn write_key(&mut self, out: &mut Vec<u8>) {
        out.clear();
        let entries = &mut self.entries[..self.len];
        entries.sort_unstable();
        for (name, value) in entries.iter() {
            out.extend_from_slice(name.as_bytes());
            out.push(0xff);
            out.extend_from_slice(value.as_bytes());
            out.push(0xff);
        }
    }
}

struct Parser<'a> {
    input: &'a [u8],
    /// Index of the next byte to read.
    pos: usize,
    /// The byte read last.
    current: u8,
    line: usize,
    validation: NameValidation,
    /// Names, label values and HELP / TYPE texts, unescaped; reused from token to token.
    token: Vec<u8>,

    families: Vec<Family>,
    family_index: HashMap<String, usize>,
    /// The name resolved last and its result, because consecutive lines mostly name the same
    /// family or series. Only a TYPE line can change how a known name resolves (by making a
    /// family a summary or histogram), so it clears this.
    resolved_name: Vec<u8>,
    resolved: Option<(usize, Suffix)>,
    /// Every metric created. Families refer to them by index because upstream shares metrics
    /// by pointer: the lines of one summary or histogram fill one metric, and the quirk in
    /// `Parser::attach_labels` can put one metric into a family twice, or into two families.
    metrics: Vec<Metric>,
    /// Which metric goes into which family, as (family, metric) indexes in the order the
    /// metrics are added to their families.
    listings: Vec<(usize, usize)>,
    /// Metrics of summaries and histograms by their group key (see `GroupLabels::write_key`).
    summaries: HashMap<Vec<u8>, usize>,
    histograms: HashMap<Vec<u8>, usize>,
    group_key: Vec<u8>,

    // The state carried from line to line. Upstream never resets most of it between lines, and
    // a line that starts with `{` builds on what the previous lines left, so neither does this.
    family: Option<usize>,
    metric: Option<usize>,
    suffix: Suffix,
    /// Labels of the current line, moved onto the metric when the braces close.
    label_pairs: Vec<LabelPair>,
    /// The label whose value comes next, and whether it went into `label_pairs` (`quantile`
    /// and `le` of summaries and histograms do not).
    label_name: String,
    label_kept: bool,
    /// The line started with `{`, so a name without `=` inside the braces is the metric name.
    inside_braces: bool,
    braces_name_seen: bool,
    group: GroupLabels,
    /// The `quantile` / `le` of the current summary or histogram line; NaN when it has none,
    /// which makes the sample go nowhere, as upstream does (a `quantile="NaN"` included).
    quantile: f64,
    bucket: f64,
}

impl<'a> Parser<'a> {
    fn new(input: &'a [u8], validation: NameValidation) -> Self {
        Parser {
            input,
            pos: 0,
            current: 0,
            line: 0,
            validation,
            token: Vec::with_capacity(64),
            families: Vec::with_capacity(16),
            family_index: HashMap::with_capacity(16),
            resolved_name: Vec::new(),
            resolved: None,
            // Metrics are large; sized up front, the arena need not be copied as it grows
            // while a typical body is parsed.
            metrics: Vec::with_capacity((input.len() / 32).min(256)),
            listings: Vec::with_capacity((input.len() / 32).min(256)),
            summaries: HashMap::new(),
            histograms: HashMap::new(),
            group_key: Vec::new(),
            family: None,
            metric: None,
            suffix: Suffix::None,
            label_pairs: Vec::new(),
            label_name: String::new(),
            label_kept: false,
            inside_braces: false,
            braces_name_seen: false,
            group: GroupLabels::default(),
            quantile: f64::NAN,
            bucket: f64::NAN,
        }
    }

    fn step(&mut self, state: State) -> Result<State, TextParseError> {
        match state {
            State::StartOfLine => Ok(self.start_of_line()),
            State::Comment => self.comment(),
            State::MetricName => self.metric_name(),
            State::Labels => Ok(self.labels()),
            State::LabelName => self.label_name(),
            State::LabelValue => self.label_value(),
            State::Value => self.value(),
            State::Timestamp => self.timestamp(),
            State::Help => self.help(),
            State::Type => self.type_line(),
            State::Done => Ok(State::Done),
        }
    }

    fn start_of_line(&mut self) -> State {
        self.line += 1;
        self.inside_braces = false;
        self.braces_name_seen = false;
        // The only place where the input may end: blanks after the last newline are fine.
        loop {
            match self.input.get(self.pos) {
                None => return State::Done,
                Some(&b) => {
                    self.pos += 1;
                    self.current = b;
                    if !is_blank(b) {
                        break;
                    }
                }
            }
        }
        match self.current {
            b'#' => State::Comment,
            b'\n' => State::StartOfLine,
            b'{' => {
                self.inside_braces = true;
                State::Labels
            }
            _ => State::MetricName,
        }
    }

    fn comment(&mut self) -> Result<State, TextParseError> {
        self.skip_blanks()?;
        if self.current == b'\n' {
            return Ok(State::StartOfLine);
        }
        let keyword = self.token_until_whitespace()?;
        if self.current == b'\n' {
            return Ok(State::StartOfLine);
        }
        let next = match keyword {
            b"HELP" => State::Help,
            b"TYPE" => State::Type,
            _ => {
                self.skip_rest_of_line()?;
                return Ok(State::StartOfLine);
            }
        };
        self.skip_blanks()?;
        self.read_name(NameKind::Metric)?;
        // A HELP or TYPE line that stops after the name (or names nothing) is just a comment.
        if self.current == b'\n' {
            return Ok(State::StartOfLine);
        }
        if !is_blank(self.current) {
            return Err(self.error("invalid metric name in comment"));
        }
        self.select_family()?;
        self.skip_blanks()?;
        if self.current == b'\n' {
            return Ok(State::StartOfLine);
        }
        Ok(next)
    }

    fn metric_name(&mut self) -> Result<State, TextParseError> {
        self.read_name(NameKind::Metric)?;
        if self.token.is_empty() {
            return Err(self.error("invalid metric name"));
        }
        self.select_family()?;
        self.start_metric();
        self.skip_blanks_from_current()?;
        Ok(State::Labels)
    }

    fn labels(&mut self) -> State {
        // For a line starting with `{` this runs before the name is known, so the family here
        // can be the previous line's: upstream behaves the same way.
        if let Some(family) = self.family.filter(|_| self.is_grouped_type()) {
            self.group.reset(&self.families[family].name);
            self.quantile = f64::NAN;
            self.bucket = f64::NAN;
        }
        if self.current == b'{' {
            State::LabelName
        } else {
            State::Value
        }
    }

    fn label_name(&mut self) -> Result<State, TextParseError> {
        self.skip_blanks()?;
        if self.current == b'}' {
            return self.close_braces();
        }
        self.read_name(NameKind::Label)?;
        if self.token.is_empty() {
            let message = format!(
                "invalid label name for metric {}",
                quote(self.family_name())
            );
            return Err(self.error(message));
        }
        self.skip_blanks_from_current()?;
        if self.current != b'=' {
            return self.metric_name_in_braces();
        }
        let Some(name) = std::str::from_utf8(&self.token)
            .ok()
            .filter(|name| *name != METRIC_NAME && self.validation.is_valid_label_name(name))
        else {
            let message = if self.token == METRIC_NAME.as_bytes() {
                format!("label name {} is reserved", quote(METRIC_NAME))
            } else {
                format!("invalid label name {}", quote(&self.token))
            };
            return Err(self.error(message));
        };
        let is_bound = match self.family_type() {
            MetricType::Summary => name == QUANTILE,
            MetricType::Histogram | MetricType::GaugeHistogram => name == BUCKET,
            _ => false,
        };
        self.label_kept = !is_bound;
        if self.label_kept {
            if self.label_pairs.iter().any(|pair| pair.name() == name) {
                let message = format!(
                    "duplicate label names for metric {}",
                    quote(self.family_name())
                );
                return Err(self.error(message));
            }
            self.label_pairs.push(LabelPair {
                name: Some(name.to_owned()),
                value: None,
            });
        }
        self.label_name.clear();
        self.label_name.push_str(name);
        Ok(State::LabelValue)
    }

    /// A name inside braces not followed by `=`: the metric name of a line that started with
    /// `{`, or else an error.
    fn metric_name_in_braces(&mut self) -> Result<State, TextParseError> {
        if !self.inside_braces {
            let message = format!(
                "expected '=' after label name, found {}",
                quote_char(char::from(self.current))
            );
            return Err(self.error(message));
        }
        if self.braces_name_seen {
            let message = format!(
                "multiple metric names for metric {}",
                quote(self.family_name())
            );
            return Err(self.error(message));
        }
        match self.current {
            b',' => {
                self.select_family()?;
                self.start_metric();
                self.braces_name_seen = true;
                Ok(State::LabelName)
            }
            b'}' => {
                self.select_family()?;
                self.start_metric();
                self.attach_labels()?;
                self.skip_blanks()?;
                Ok(State::Value)
            }
            other => {
                let message = format!(
                    "unexpected end of metric name {}",
                    quote_char(char::from(other))
                );
                Err(self.error(message))
            }
        }
    }

    fn label_value(&mut self) -> Result<State, TextParseError> {
        self.skip_blanks()?;
        if self.current != b'"' {
            let message = format!(
                "expected '\"' at start of label value, found {}",
                quote_char(char::from(self.current))
            );
            return Err(self.error(message));
        }
        self.read_label_value()?;
        let token = std::mem::take(&mut self.token);
        let result = self.store_label_value(&token);
        self.token = token;
        result?;
        self.skip_blanks()?;
        match self.current {
            b',' => Ok(State::LabelName),
            b'}' => self.close_braces(),
            _ => {
                let message = format!("unexpected end of label value {}", quote(&self.token));
                Err(self.error(message))
            }
        }
    }

    fn store_label_value(&mut self, raw: &[u8]) -> Result<(), TextParseError> {
        let Ok(value) = std::str::from_utf8(raw) else {
            return Err(self.error(format!("invalid label value {}", quote(raw))));
        };
        if let (true, Some(pair)) = (self.label_kept, self.label_pairs.last_mut()) {
            pair.value = Some(value.to_owned());
        }
        let histogram = match self.family_type() {
            MetricType::Summary => false,
            MetricType::Histogram | MetricType::GaugeHistogram => true,
            _ => return Ok(()),
        };
        if self.label_kept {
            if !self.group.initialized {
                let message = format!(
                    "unexpected labels for summary or histogram {}",
                    quote(self.family_name())
                );
                return Err(self.error(message));
            }
            self.group.insert(&self.label_name, value);
            return Ok(());
        }
        let bound = parse_go_float(raw);
        if histogram {
            self.bucket = bound.ok_or_else(|| {
                self.error(format!(
                    "expected float as value for 'le' label, got {}",
                    quote(value)
                ))
            })?;
        } else {
            self.quantile = bound.ok_or_else(|| {
                self.error(format!(
                    "expected float as value for 'quantile' label, got {}",
                    quote(value)
                ))
            })?;
        }
        Ok(())
    }

    fn close_braces(&mut self) -> Result<State, TextParseError> {
        if self.family.is_none() {
            // `{}` or `{a="b"}` before any line named a metric: there is no metric to label.
            return Err(self.error("invalid metric name"));
        }
        self.attach_labels()?;
        self.skip_blanks()?;
        Ok(State::Value)
    }

    /// Moves the line's labels onto the current metric.
    ///
    /// When a line starts with `{` and the braces hold no metric name, no new metric is
    /// created: upstream then adds the labels and the sample to the metric of the line before,
    /// even when that metric is already in its family or the current family is another one.
    /// Such a metric ends up in a family twice, and the store rejects the duplicate later, as
    /// upstream's does. Before any sample line there is no such metric, where upstream crashes.
    fn attach_labels(&mut self) -> Result<(), TextParseError> {
        let Some(metric) = self.metric else {
            return Err(self.error("invalid metric name"));
        };
        self.metrics[metric].label.append(&mut self.label_pairs);
        Ok(())
    }

    fn value(&mut self) -> Result<State, TextParseError> {
        let (Some(family), Some(mut metric)) = (self.family, self.metric) else {
            return Err(self.error("invalid metric name"));
        };
        let r#type = self.family_type();
        // Only now that all labels are known can the lines of one summary or histogram be
        // found to belong to the same metric; the metric started for this line is then left
        // unused, labels and all, as upstream does.
        let groups = match r#type {
            MetricType::Summary => Some(&mut self.summaries),
            MetricType::Histogram | MetricType::GaugeHistogram => Some(&mut self.histograms),
            _ => None,
        };
        match groups {
            Some(groups) => {
                self.group.write_key(&mut self.group_key);
                match groups.get(self.group_key.as_slice()) {
                    Some(&existing) => metric = existing,
                    None => {
                        groups.insert(self.group_key.clone(), metric);
                        self.listings.push((family, metric));
                    }
                }
                self.metric = Some(metric);
            }
            None => self.listings.push((family, metric)),
        }

        let token = self.token_until_whitespace()?;
        let Some(value) = parse_go_float(token) else {
            let message = format!("expected float as value, got {}", quote(token));
            return Err(self.error(message));
        };
        self.record_value(metric, r#type, value)?;
        if self.current == b'\n' {
            Ok(State::StartOfLine)
        } else {
            Ok(State::Timestamp)
        }
    }

    /// Stores a sample value where the family type and the line's name suffix and `quantile`
    /// or `le` label say it goes.
    fn record_value(
        &mut self,
        metric: usize,
        r#type: MetricType,
        value: f64,
    ) -> Result<(), TextParseError> {
        let target = &mut self.metrics[metric];
        match r#type {
            MetricType::Counter => {
                target.counter = Some(Counter {
                    value: Some(value),
                    ..Counter::default()
                });
            }
            MetricType::Gauge => target.gauge = Some(Gauge { value: Some(value) }),
            MetricType::Untyped => target.untyped = Some(Untyped { value: Some(value) }),
            MetricType::Summary => {
                let summary = target.summary.get_or_insert_with(Summary::default);
                match self.suffix {
                    // Upstream converts with Go's `uint64(value)`, whatever the value.
                    Suffix::Count => summary.sample_count = Some(go_uint64(value)),
                    Suffix::Sum => summary.sample_sum = Some(value),
                    Suffix::None if !self.quantile.is_nan() => summary.quantile.push(Quantile {
                        quantile: Some(self.quantile),
                        value: Some(value),
                    }),
                    Suffix::None => {}
                }
            }
            MetricType::Histogram | MetricType::GaugeHistogram => {
                let histogram = target.histogram.get_or_insert_with(Histogram::default);
                match self.suffix {
                    Suffix::Count => match HistogramCount::of(value) {
                        Some(HistogramCount::Whole(n)) => histogram.sample_count = Some(n),
                        Some(HistogramCount::Fraction(f)) => histogram.sample_count_float = Some(f),
                        None => return Err(self.negative_error("count")),
                    },
                    Suffix::Sum => histogram.sample_sum = Some(value),
                    Suffix::None if !self.bucket.is_nan() => {
                        let mut bucket = Bucket {
                            upper_bound: Some(self.bucket),
                            ..Bucket::default()
                        };
                        match HistogramCount::of(value) {
                            Some(HistogramCount::Whole(n)) => bucket.cumulative_count = Some(n),
                            Some(HistogramCount::Fraction(f)) => {
                                bucket.cumulative_count_float = Some(f);
                            }
                            None => return Err(self.negative_error("bucket population")),
                        }
                        histogram.bucket.push(bucket);
                    }
                    Suffix::None => {}
                }
            }
        }
        Ok(())
    }

    fn negative_error(&self, what: &str) -> TextParseError {
        let message = format!(
            "negative {what} for histogram {}",
            quote(self.family_name())
        );
        self.error(message)
    }

    fn timestamp(&mut self) -> Result<State, TextParseError> {
        self.skip_blanks()?;
        let token = self.token_until_whitespace()?;
        let Some(timestamp) = std::str::from_utf8(token)
            .ok()
            .and_then(|t| t.parse::<i64>().ok())
        else {
            let message = format!("expected integer as timestamp, got {}", quote(token));
            return Err(self.error(message));
        };
        if let Some(metric) = self.metric {
            self.metrics[metric].timestamp_ms = Some(timestamp);
        }
        // Whatever is left, blanks included, is an error.
        self.read_until_newline(false)?;
        if !self.token.is_empty() {
            let message = format!("spurious string after timestamp: {}", quote(&self.token));
            return Err(self.error(message));
        }
        Ok(State::StartOfLine)
    }

    fn help(&mut self) -> Result<State, TextParseError> {
        let Some(family) = self.family else {
            return Err(self.error("invalid metric name"));
        };
        if self.families[family].help.is_some() {
            let message = format!(
                "second HELP line for metric name {}",
                quote(&self.families[family].name)
            );
            return Err(self.error(message));
        }
        self.read_until_newline(true)?;
        self.families[family].help = Some(String::from_utf8_lossy(&self.token).into_owned());
        Ok(State::StartOfLine)
    }

    fn type_line(&mut self) -> Result<State, TextParseError> {
        let Some(family) = self.family else {
            return Err(self.error("invalid metric name"));
        };
        if self.families[family].r#type.is_some() {
            let message = format!(
                "second TYPE line for metric name {}, or TYPE reported after samples",
                quote(&self.families[family].name)
            );
            return Err(self.error(message));
        }
        self.read_until_newline(false)?;
        let Some(r#type) = metric_type_from_word(&self.token) else {
            let message = format!("unknown metric type {}", quote(&self.token));
            return Err(self.error(message));
        };
        self.families[family].r#type = Some(r#type);
        self.resolved = None;
        Ok(State::StartOfLine)
    }

    /// Makes the family named by the token the current one: the family of that name, else the
    /// summary or histogram the name is the `_count`, `_sum` or `_bucket` series of, else a new
    /// family.
    fn select_family(&mut self) -> Result<(), TextParseError> {
        if let Some((family, suffix)) = self.resolved.filter(|_| self.resolved_name == self.token) {
            self.family = Some(family);
            self.suffix = suffix;
            return Ok(());
        }
        self.suffix = Suffix::None;
        let token = std::mem::take(&mut self.token);
        let result = self.select_family_named(&token);
        if result.is_ok() {
            self.resolved_name.clear();
            self.resolved_name.extend_from_slice(&token);
            self.resolved = self.family.map(|family| (family, self.suffix));
        }
        self.token = token;
        result
    }

    fn select_family_named(&mut self, token: &[u8]) -> Result<(), TextParseError> {
        let Some(name) = std::str::from_utf8(token)
            .ok()
            .filter(|name| self.validation.is_valid_metric_name(name))
        else {
            return Err(self.error(format!("invalid metric name {}", quote(token))));
        };
        if let Some(&family) = self.family_index.get(name) {
            self.family = Some(family);
            return Ok(());
        }
        let series = [
            ("_count", Suffix::Count),
            ("_sum", Suffix::Sum),
            ("_bucket", Suffix::None),
        ];
        let parent = series.iter().find_map(|&(suffix_text, suffix)| {
            let base = name.strip_suffix(suffix_text).filter(|b| !b.is_empty())?;
            Some((*self.family_index.get(base)?, suffix_text, suffix))
        });
        if let Some((family, suffix_text, suffix)) = parent {
            let belongs = match self.families[family].r#type {
                Some(MetricType::Summary) => suffix_text != "_bucket",
                Some(MetricType::Histogram | MetricType::GaugeHistogram) => true,
                _ => false,
            };
            if belongs {
                self.family = Some(family);
                self.suffix = suffix;
                return Ok(());
            }
        }
        let family = self.families.len();
        self.families.push(Family {
            name: name.to_owned(),
            help: None,
            r#type: None,
        });
        self.family_index.insert(name.to_owned(), family);
        self.family = Some(family);
        Ok(())
    }

    /// Starts a new metric for a sample line of the current family. A family first seen in a
    /// sample line, without a TYPE line before, is untyped from then on.
    fn start_metric(&mut self) {
        if let Some(family) = self.family {
            self.families[family]
                .r#type
                .get_or_insert(MetricType::Untyped);
        }
        self.metric = Some(self.metrics.len());
        self.metrics.push(Metric::default());
    }

    /// The current family's type, or counter when there is none, as Go's getters read it.
    fn family_type(&self) -> MetricType {
        self.family
            .and_then(|family| self.families[family].r#type)
            .unwrap_or(MetricType::Counter)
    }

    fn is_grouped_type(&self) -> bool {
        matches!(
            self.family_type(),
            MetricType::Summary | MetricType::Histogram | MetricType::GaugeHistogram
        )
    }

    fn family_name(&self) -> &str {
        self.family
            .map_or("", |family| self.families[family].name.as_str())
    }

    fn error(&self, message: impl Into<String>) -> TextParseError {
        TextParseError {
            line: self.line,
            message: message.into(),
        }
    }

    fn end_of_input(&self) -> TextParseError {
        self.error("unexpected end of input stream")
    }

    fn read_byte(&mut self) -> Result<u8, TextParseError> {
        match self.input.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                self.current = b;
                Ok(b)
            }
            None => Err(self.end_of_input()),
        }
    }

    /// Reads up to the next byte that is neither blank nor tab.
    fn skip_blanks(&mut self) -> Result<(), TextParseError> {
        while is_blank(self.read_byte()?) {}
        Ok(())
    }

    fn skip_blanks_from_current(&mut self) -> Result<(), TextParseError> {
        if is_blank(self.current) {
            self.skip_blanks()?;
        }
        Ok(())
    }

    fn skip_rest_of_line(&mut self) -> Result<(), TextParseError> {
        if self.current == b'\n' {
            return Ok(());
        }
        match memchr(b'\n', &self.input[self.pos..]) {
            Some(n) => {
                self.pos += n + 1;
                self.current = b'\n';
                Ok(())
            }
            None => {
                self.pos = self.input.len();
                Err(self.end_of_input())
            }
        }
    }

    /// The current byte and those after it up to the next blank, tab or newline, which becomes
    /// the current byte. Borrowed from the input: such tokens have no escapes.
    fn token_until_whitespace(&mut self) -> Result<&'a [u8], TextParseError> {
        let input = self.input;
        // `pos` is 0 only before anything was read, when there is no current byte.
        let Some(start) = self.pos.checked_sub(1) else {
            return Ok(&[]);
        };
        if is_whitespace(self.current) {
            return Ok(&[]);
        }
        match input[self.pos..].iter().position(|&b| is_whitespace(b)) {
            Some(n) => {
                let end = self.pos + n;
                self.current = input[end];
                self.pos = end + 1;
                Ok(&input[start..end])
            }
            None => {
                self.pos = input.len();
                Err(self.end_of_input())
            }
        }
    }

    /// Collects the current byte and those after it up to the newline into the token. With
    /// `escapes`, `\\`, `\n` and `\"` are unescaped and other escapes are errors; without, a
    /// backslash is dropped (as upstream does).
    fn read_until_newline(&mut self, escapes: bool) -> Result<(), TextParseError> {
        self.token.clear();
        let input = self.input;
        let mut from = self.pos.saturating_sub(1);
        loop {
            let rest = &input[from..];
            let Some(n) = rest.iter().position(|&b| b == b'\n' || b == b'\\') else {
                self.pos = input.len();
                return Err(self.end_of_input());
            };
            self.token.extend_from_slice(&rest[..n]);
            self.pos = from + n + 1;
            self.current = rest[n];
            if self.current == b'\n' {
                return Ok(());
            }
            // Without escapes, the backslash alone is dropped.
            if escapes {
                let escaped = self.read_byte()?;
                let unescaped = self.unescape(escaped)?;
                self.token.push(unescaped);
            }
            from = self.pos;
        }
    }

    /// Reads a metric or label name starting at the current byte into the token, and leaves
    /// the byte after it as the current byte. An empty token means the current byte cannot
    /// start a name. A name can be quoted, in whole or in part, and then holds any bytes with
    /// `\\`, `\n` and `\"` escaped.
    fn read_name(&mut self, kind: NameKind) -> Result<(), TextParseError> {
        self.token.clear();
        if !kind.starts(self.current) {
            return Ok(());
        }
        if self.current != b'"' && self.read_plain_name(kind)? {
            return Ok(());
        }
        let mut quoted = false;
        let mut escaped = false;
        loop {
            let b = self.current;
            if escaped {
                let unescaped = self.unescape(b)?;
                self.token.push(unescaped);
                escaped = false;
            } else {
                match b {
                    b'"' => {
                        quoted = !quoted;
                        if !quoted {
                            self.read_byte()?;
                            return Ok(());
                        }
                    }
                    b'\n' => {
                        let message = format!(
                            "{} {} contains unescaped new-line",
                            kind.noun(),
                            quote(&self.token)
                        );
                        return Err(self.error(message));
                    }
                    b'\\' => escaped = true,
                    _ => self.token.push(b),
                }
            }
            let next = self.read_byte()?;
            if !kind.continues(next, quoted) {
                return Ok(());
            }
        }
    }

    /// The common case of `read_name`, a name without quotes, taken straight from the input.
    /// Returns false, having consumed nothing, when a quote follows the plain part.
    fn read_plain_name(&mut self, kind: NameKind) -> Result<bool, TextParseError> {
        let input = self.input;
        let start = self.pos.saturating_sub(1);
        let rest = &input[self.pos..];
        let Some(n) = rest.iter().position(|&b| !kind.continues_plain(b)) else {
            self.pos = input.len();
            return Err(self.end_of_input());
        };
        let end = self.pos + n;
        if input[end] == b'"' {
            return Ok(false);
        }
        self.token.extend_from_slice(&input[start..end]);
        self.current = input[end];
        self.pos = end + 1;
        Ok(true)
    }

    /// Reads a label value, from the byte after its opening quote up to and including the
    /// closing quote, into the token.
    fn read_label_value(&mut self) -> Result<(), TextParseError> {
        self.token.clear();
        loop {
            let input = self.input;
            let rest = &input[self.pos..];
            let Some(n) = rest.iter().position(|&b| matches!(b, b'"' | b'\\' | b'\n')) else {
                self.pos = input.len();
                return Err(self.end_of_input());
            };
            self.token.extend_from_slice(&rest[..n]);
            self.pos += n + 1;
            self.current = rest[n];
            match rest[n] {
                b'"' => return Ok(()),
                b'\n' => {
                    let message = format!(
                        "label value {} contains unescaped new-line",
                        quote(&self.token)
                    );
                    return Err(self.error(message));
                }
                _ => {
                    let b = self.read_byte()?;
                    let unescaped = self.unescape(b)?;
                    self.token.push(unescaped);
                }
            }
        }
    }

    fn unescape(&self, b: u8) -> Result<u8, TextParseError> {
        match b {
            b'\\' | b'"' => Ok(b),
            b'n' => Ok(b'\n'),
            // Upstream prints the byte with `%c`, i.e. as the code point of the same value.
            _ => Err(self.error(format!("invalid escape sequence '\\{}'", char::from(b)))),
        }
    }

    /// The families with samples, in the order their names first appeared.
    fn finish(mut self) -> Vec<MetricFamily> {
        for metric in &mut self.metrics {
            if let Some(histogram) = &mut metric.histogram {
                normalize_histogram(histogram);
            }
        }
        let mut family_sizes = vec![0; self.families.len()];
        // A metric listed more than once is cloned for all but its last listing.
        let mut listings_left = vec![0u32; self.metrics.len()];
        for &(family, metric) in &self.listings {
            family_sizes[family] += 1;
            listings_left[metric] += 1;
        }
        let mut family_metrics: Vec<Vec<Metric>> = family_sizes
            .iter()
            .map(|&n| Vec::with_capacity(n))
            .collect();
        for &(family, metric) in &self.listings {
            listings_left[metric] -= 1;
            let metric = if listings_left[metric] == 0 {
                std::mem::take(&mut self.metrics[metric])
            } else {
                self.metrics[metric].clone()
            };
            family_metrics[family].push(metric);
        }
        self.families
            .into_iter()
            .zip(family_metrics)
            .filter(|(_, metric)| !metric.is_empty())
            .map(|(family, metric)| MetricFamily {
                name: Some(family.name),
                help: family.help,
                r#type: family.r#type.map(|t| t as i32),
                metric,
                unit: None,
            })
            .collect()
    }
}

/// Makes a histogram's counts all integers or all floats: once the count or a bucket had to be
/// stored as a float, all of them are, with an absent count becoming 0.
fn normalize_histogram(histogram: &mut Histogram) {
    let is_float = |count: Option<f64>| count.is_some_and(|c| c != 0.0);
    let any_float = is_float(histogram.sample_count_float)
        || histogram
            .bucket
            .iter()
            .any(|b| is_float(b.cumulative_count_float));
    if !any_float {
        return;
    }
    if !is_float(histogram.sample_count_float) {
        histogram.sample_count_float = Some(histogram.sample_count.take().unwrap_or(0) as f64);
    }
    for bucket in &mut histogram.bucket {
        if !is_float(bucket.cumulative_count_float) {
            bucket.cumulative_count_float =
                Some(bucket.cumulative_count.take().unwrap_or(0) as f64);
        }
    }
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_whitespace(b: u8) -> bool {
    is_blank(b) || b == b'\n'
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// Go's NaN (`math.NaN()`), whose bits differ from Rust's `f64::NAN`; kept so that a NaN pushed
/// here is re-exposed (in protobuf) with the same bits as upstream's.
const GO_NAN: f64 = f64::from_bits(0x7FF8_0000_0000_0001);

/// A sample value, `quantile` or `le` as upstream reads it: Go's `strconv.ParseFloat` for
/// decimal numbers, `NaN` and `Inf` / `Infinity` (case-insensitively), refusing anything with
/// `p`, `P` or `_` and therefore all of Go's hexadecimal and underscore forms.
fn parse_go_float(token: &[u8]) -> Option<f64> {
    // Most values are small integers, which convert exactly.
    let (negative, digits) = match token.split_first() {
        Some((b'-', digits)) => (true, digits),
        _ => (false, token),
    };
    if (1..=15).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit) {
        let magnitude = digits
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')) as f64;
        return Some(if negative { -magnitude } else { magnitude });
    }
    if token.iter().any(|&b| matches!(b, b'p' | b'P' | b'_')) {
        return None;
    }
    let text = std::str::from_utf8(token).ok()?;
    // For what is left, Rust's grammar is Go's, except in two places.
    let value: f64 = text.parse().ok()?;
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    if value.is_nan() {
        // Go takes no sign on NaN.
        return (unsigned.len() == text.len()).then_some(GO_NAN);
    }
    if value.is_infinite()
        && !unsigned.eq_ignore_ascii_case("inf")
        && !unsigned.eq_ignore_ascii_case("infinity")
    {
        // Go reports a number too large for a float as out of range, where Rust rounds it to
        // infinity.
        return None;
    }
    Some(value)
}

/// Go's `uint64(value)` as upstream's amd64 builds compute it. Go leaves the result of an
/// out-of-range conversion to the platform, and amd64 goes through a signed conversion: values
/// from -2^63 to 2^64 are truncated towards zero, negative ones wrapping around (-1 becomes
/// 2^64-1), and everything else (NaN, infinities, larger magnitudes) becomes 2^63. arm64 would
/// saturate instead. amd64 is what upstream's releases mostly run on.
fn go_uint64(value: f64) -> u64 {
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    // The x86 truncating conversion: NaN and out-of-range values give i64::MIN.
    let truncate = |x: f64| {
        if (-TWO_POW_63..TWO_POW_63).contains(&x) {
            x as i64
        } else {
            i64::MIN
        }
    };
    if value < TWO_POW_63 {
        truncate(value) as u64
    } else {
        truncate(value - TWO_POW_63) as u64 | (1 << 63)
    }
}

/// A histogram count as upstream stores it: in the integer field when converting it to an
/// integer and back gives the same value, else in the float field.
enum HistogramCount {
    Whole(u64),
    Fraction(f64),
}

impl HistogramCount {
    /// None for a negative count, which upstream refuses.
    fn of(value: f64) -> Option<Self> {
        let whole = go_uint64(value);
        if whole as f64 == value {
            Some(HistogramCount::Whole(whole))
        } else if value < 0.0 {
            None
        } else {
            Some(HistogramCount::Fraction(value))
        }
    }
}

/// The type of a TYPE line, case-insensitively. Upstream upper-cases the word with Go's
/// `strings.ToUpper`, under which only `ı` and `ſ` of all non-ASCII characters become ASCII
/// letters (`I` and `S`), so those count as such here too.
fn metric_type_from_word(word: &[u8]) -> Option<MetricType> {
    const TYPES: [(&str, MetricType); 7] = [
        ("COUNTER", MetricType::Counter),
        ("GAUGE", MetricType::Gauge),
        ("SUMMARY", MetricType::Summary),
        ("UNTYPED", MetricType::Untyped),
        ("HISTOGRAM", MetricType::Histogram),
        ("GAUGE_HISTOGRAM", MetricType::GaugeHistogram),
        // The OpenMetrics spelling, which upstream accepts as well.
        ("GAUGEHISTOGRAM", MetricType::GaugeHistogram),
    ];
    let find = |upper: &[u8]| {
        TYPES
            .iter()
            .find(|(name, _)| name.as_bytes().eq_ignore_ascii_case(upper))
            .map(|&(_, t)| t)
    };
    if word.is_ascii() {
        return find(word);
    }
    let folded: String = std::str::from_utf8(word)
        .ok()?
        .chars()
        .map(|c| match c {
            'ı' => 'I',
            'ſ' => 'S',
            c => c,
        })
        .collect();
    if folded.is_ascii() {
        find(folded.as_bytes())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(input: &[u8], validation: NameValidation) -> Vec<MetricFamily> {
        match parse_text(input, validation) {
            Ok(families) => families,
            Err(err) => panic!("{:?} failed: {err}", String::from_utf8_lossy(input)),
        }
    }

    fn parse(input: &str) -> Vec<MetricFamily> {
        parse_ok(input.as_bytes(), NameValidation::Legacy)
    }

    fn parse_utf8(input: &str) -> Vec<MetricFamily> {
        parse_ok(input.as_bytes(), NameValidation::Utf8)
    }

    fn error(input: &[u8], validation: NameValidation) -> String {
        match parse_text(input, validation) {
            Ok(families) => panic!(
                "{:?} parsed, expected an error: {families:?}",
                String::from_utf8_lossy(input)
            ),
            Err(err) => err.to_string(),
        }
    }

    /// Compares through `Debug`, so that NaN values compare equal.
    fn assert_families(got: &[MetricFamily], want: &[MetricFamily]) {
        assert_eq!(format!("{got:#?}"), format!("{want:#?}"));
    }

    fn family(
        name: &str,
        help: Option<&str>,
        r#type: MetricType,
        metric: Vec<Metric>,
    ) -> MetricFamily {
        MetricFamily {
            name: Some(name.to_owned()),
            help: help.map(str::to_owned),
            r#type: Some(r#type as i32),
            metric,
            unit: None,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
        pairs
            .iter()
            .map(|&(name, value)| LabelPair::new(name, value))
            .collect()
    }

    fn untyped(pairs: &[(&str, &str)], value: f64) -> Metric {
        Metric {
            label: labels(pairs),
            untyped: Some(Untyped { value: Some(value) }),
            ..Metric::default()
        }
    }

    fn counter(pairs: &[(&str, &str)], value: f64) -> Metric {
        Metric {
            label: labels(pairs),
            counter: Some(Counter {
                value: Some(value),
                ..Counter::default()
            }),
            ..Metric::default()
        }
    }

    fn gauge(pairs: &[(&str, &str)], value: f64) -> Metric {
        Metric {
            label: labels(pairs),
            gauge: Some(Gauge { value: Some(value) }),
            ..Metric::default()
        }
    }

    fn at(metric: Metric, timestamp_ms: i64) -> Metric {
        Metric {
            timestamp_ms: Some(timestamp_ms),
            ..metric
        }
    }

    fn summary(
        pairs: &[(&str, &str)],
        count: Option<u64>,
        sum: Option<f64>,
        quantiles: &[(f64, f64)],
    ) -> Metric {
        Metric {
            label: labels(pairs),
            summary: Some(Summary {
                sample_count: count,
                sample_sum: sum,
                quantile: quantiles
                    .iter()
                    .map(|&(q, v)| Quantile {
                        quantile: Some(q),
                        value: Some(v),
                    })
                    .collect(),
                ..Summary::default()
            }),
            ..Metric::default()
        }
    }

    fn int_histogram(count: Option<u64>, sum: Option<f64>, buckets: &[(f64, u64)]) -> Metric {
        Metric {
            histogram: Some(Histogram {
                sample_count: count,
                sample_sum: sum,
                bucket: buckets
                    .iter()
                    .map(|&(upper_bound, count)| Bucket {
                        upper_bound: Some(upper_bound),
                        cumulative_count: Some(count),
                        ..Bucket::default()
                    })
                    .collect(),
                ..Histogram::default()
            }),
            ..Metric::default()
        }
    }

    fn float_histogram(count: Option<f64>, sum: Option<f64>, buckets: &[(f64, f64)]) -> Metric {
        Metric {
            histogram: Some(Histogram {
                sample_count_float: count,
                sample_sum: sum,
                bucket: buckets
                    .iter()
                    .map(|&(upper_bound, count)| Bucket {
                        upper_bound: Some(upper_bound),
                        cumulative_count_float: Some(count),
                        ..Bucket::default()
                    })
                    .collect(),
                ..Histogram::default()
            }),
            ..Metric::default()
        }
    }

    const LATENCY_HELP: &str = "# HELP request_duration_microseconds The response latency.\n";

    #[test]
    fn empty_and_blank_input_gives_no_families() {
        for input in ["", "\n\n", "  \t\n\n", "\n   ", "# just a comment\n"] {
            assert!(parse(input).is_empty(), "{input:?}");
        }
    }

    #[test]
    fn minimal_samples_with_timestamps() {
        let got = parse(
            "\nminimal_metric 1.234\nanother_metric -3e3 103948\n# Even that:\nno_labels{} 3\n\
             # HELP line for non-existing metric will be ignored.\n",
        );
        assert_families(
            &got,
            &[
                family(
                    "minimal_metric",
                    None,
                    MetricType::Untyped,
                    vec![untyped(&[], 1.234)],
                ),
                family(
                    "another_metric",
                    None,
                    MetricType::Untyped,
                    vec![at(untyped(&[], -3e3), 103948)],
                ),
                family(
                    "no_labels",
                    None,
                    MetricType::Untyped,
                    vec![untyped(&[], 3.0)],
                ),
            ],
        );
    }

    #[test]
    fn counters_gauges_help_escapes_and_whitespace() {
        let got = parse(concat!(
            "\n# A normal comment.\n#\n# TYPE name counter\n",
            "name{labelname=\"val1\",basename=\"basevalue\"} NaN\n",
            "name {labelname=\"val2\",basename=\"base\\\"v\\\\al\\nue\"} 0.23 1234567890\n",
            "# HELP name two-line\\n doc  str\\\\ing\n\n",
            " # HELP  name2  \tdoc str\"ing 2\n",
            "  #    TYPE    name2 gauge\n",
            "name2{labelname=\"val2\"\t,basename   =   \"basevalue2\"\t\t} +Inf 54321\n",
            "name2{ labelname = \"val1\" , }-Inf\n",
        ));
        assert_families(
            &got,
            &[
                family(
                    "name",
                    Some("two-line\n doc  str\\ing"),
                    MetricType::Counter,
                    vec![
                        counter(
                            &[("labelname", "val1"), ("basename", "basevalue")],
                            f64::NAN,
                        ),
                        at(
                            counter(
                                &[("labelname", "val2"), ("basename", "base\"v\\al\nue")],
                                0.23,
                            ),
                            1234567890,
                        ),
                    ],
                ),
                family(
                    "name2",
                    Some("doc str\"ing 2"),
                    MetricType::Gauge,
                    vec![
                        at(
                            gauge(
                                &[("labelname", "val2"), ("basename", "basevalue2")],
                                f64::INFINITY,
                            ),
                            54321,
                        ),
                        gauge(&[("labelname", "val1")], f64::NEG_INFINITY),
                    ],
                ),
            ],
        );
    }

    #[test]
    fn summary_lines_are_grouped_by_their_other_labels() {
        let got = parse(concat!(
            "\n# TYPE my_summary summary\n",
            "my_summary{n1=\"val1\",quantile=\"0.5\"} 110\n",
            "decoy -1 -2\n",
            "my_summary{n1=\"val1\",quantile=\"0.9\"} 140 1\n",
            "my_summary_count{n1=\"val1\"} 42\n",
            "# Latest timestamp wins in case of a summary.\n",
            "my_summary_sum{n1=\"val1\"} 4711 2\n",
            "fake_sum{n1=\"val1\"} 2001\n",
            "# TYPE another_summary summary\n",
            "another_summary_count{n2=\"val2\",n1=\"val1\"} 20\n",
            "my_summary_count{n2=\"val2\",n1=\"val1\"} 5 5\n",
            "another_summary{n1=\"val1\",n2=\"val2\",quantile=\".3\"} -1.2\n",
            "my_summary_sum{n1=\"val2\"} 08 15\n",
            "my_summary{n1=\"val3\", quantile=\"0.2\"} 4711\n",
            "  my_summary{n1=\"val1\",n2=\"val2\",quantile=\"-12.34\",} NaN\n",
            "# some\n# funny comments\n# HELP\n# HELP\n# HELP my_summary\n# HELP my_summary\n",
        ));
        assert_families(
            &got,
            &[
                family(
                    "my_summary",
                    None,
                    MetricType::Summary,
                    vec![
                        at(
                            summary(
                                &[("n1", "val1")],
                                Some(42),
                                Some(4711.0),
                                &[(0.5, 110.0), (0.9, 140.0)],
                            ),
                            2,
                        ),
                        at(
                            summary(
                                &[("n2", "val2"), ("n1", "val1")],
                                Some(5),
                                None,
                                &[(-12.34, f64::NAN)],
                            ),
                            5,
                        ),
                        at(summary(&[("n1", "val2")], None, Some(8.0), &[]), 15),
                        summary(&[("n1", "val3")], None, None, &[(0.2, 4711.0)]),
                    ],
                ),
                family(
                    "decoy",
                    None,
                    MetricType::Untyped,
                    vec![at(untyped(&[], -1.0), -2)],
                ),
                family(
                    "fake_sum",
                    None,
                    MetricType::Untyped,
                    vec![untyped(&[("n1", "val1")], 2001.0)],
                ),
                family(
                    "another_summary",
                    None,
                    MetricType::Summary,
                    vec![summary(
                        &[("n2", "val2"), ("n1", "val1")],
                        Some(20),
                        None,
                        &[(0.3, -1.2)],
                    )],
                ),
            ],
        );
    }

    #[test]
    fn histogram_with_integer_counts() {
        let got = parse(&format!(
            "\n{LATENCY_HELP}# TYPE request_duration_microseconds histogram\n{}",
            concat!(
                "request_duration_microseconds_bucket{le=\"100\"} 123\n",
                "request_duration_microseconds_bucket{le=\"120\"} 412\n",
                "request_duration_microseconds_bucket{le=\"172.8\"} 1524\n",
                "request_duration_microseconds_bucket{le=\"+Inf\"} 2693\n",
                "request_duration_microseconds_sum 1.7560473e+06\n",
                "request_duration_microseconds_count 2693\n",
            )
        ));
        assert_families(
            &got,
            &[family(
                "request_duration_microseconds",
                Some("The response latency."),
                MetricType::Histogram,
                vec![int_histogram(
                    Some(2693),
                    Some(1756047.3),
                    &[
                        (100.0, 123),
                        (120.0, 412),
                        (172.8, 1524),
                        (f64::INFINITY, 2693),
                    ],
                )],
            )],
        );
    }

    #[test]
    fn one_float_count_makes_the_whole_histogram_float() {
        let type_line = "# TYPE request_duration_microseconds histogram\n";
        // Every count a float.
        let got = parse(&format!(
            "{LATENCY_HELP}{type_line}{}",
            concat!(
                "request_duration_microseconds_bucket{le=\"100\"} 123.5\n",
                "request_duration_microseconds_bucket{le=\"+Inf\"} 2693.9\n",
                "request_duration_microseconds_sum 1.7560473e+06\n",
                "request_duration_microseconds_count 2693.9\n",
            )
        ));
        assert_families(
            &got,
            &[family(
                "request_duration_microseconds",
                Some("The response latency."),
                MetricType::Histogram,
                vec![float_histogram(
                    Some(2693.9),
                    Some(1756047.3),
                    &[(100.0, 123.5), (f64::INFINITY, 2693.9)],
                )],
            )],
        );
        // Only the count is a float.
        let got = parse(&format!(
            "{type_line}{}",
            concat!(
                "request_duration_microseconds_bucket{le=\"100\"} 123\n",
                "request_duration_microseconds_bucket{le=\"172.8\"} 1524\n",
                "request_duration_microseconds_count 2693.9\n",
            )
        ));
        assert_eq!(
            got[0].metric[0],
            float_histogram(Some(2693.9), None, &[(100.0, 123.0), (172.8, 1524.0)])
        );
        // Only one bucket is a float; the integer count becomes a float too.
        let got = parse(&format!(
            "{type_line}{}",
            concat!(
                "request_duration_microseconds_bucket{le=\"100\"} 123\n",
                "request_duration_microseconds_bucket{le=\"172.8\"} 1524.8\n",
                "request_duration_microseconds_count 2693\n",
            )
        ));
        assert_eq!(
            got[0].metric[0],
            float_histogram(Some(2693.0), None, &[(100.0, 123.0), (172.8, 1524.8)])
        );
        // Without a count line, the normalised count is 0.
        let got = parse("# TYPE fh histogram\nfh_bucket{le=\"1\"} 0.5\nfh_bucket{le=\"2\"} 2\n");
        assert_eq!(
            got[0].metric[0],
            float_histogram(Some(0.0), None, &[(1.0, 0.5), (2.0, 2.0)])
        );
    }

    #[test]
    fn gauge_histograms_in_both_spellings() {
        for word in ["gaugehistogram", "gauge_histogram", "GAUGE_HISTOGRAM"] {
            let got = parse(&format!(
                "# TYPE g {word}\ng_bucket{{le=\"1\"}} 1\ng_bucket{{le=\"+Inf\"}} 2.5\ng_count 2\n"
            ));
            assert_families(
                &got,
                &[family(
                    "g",
                    None,
                    MetricType::GaugeHistogram,
                    vec![float_histogram(
                        Some(2.0),
                        None,
                        &[(1.0, 1.0), (f64::INFINITY, 2.5)],
                    )],
                )],
            );
        }
    }

    #[test]
    fn quoted_names_with_utf8_validation() {
        let got = parse_utf8(concat!(
            "# HELP \"my.noncompliant.metric\" help text\n",
            "# TYPE \"my.noncompliant.metric\" counter\n",
            "{\"my.noncompliant.metric\",\"label.name\"=\"value\"} 1\n",
            "{labelname=\"value\", \"my.noncompliant.metric\"} 2 1234567890\n",
        ));
        assert_families(
            &got,
            &[family(
                "my.noncompliant.metric",
                Some("help text"),
                MetricType::Counter,
                vec![
                    counter(&[("label.name", "value")], 1.0),
                    at(counter(&[("labelname", "value")], 2.0), 1234567890),
                ],
            )],
        );

        let got = parse_utf8(concat!(
            "# HELP \"my\\\"noncompliant\\nmetric\\\\\" help text\n",
            "# TYPE \"my\\\"noncompliant\\nmetric\\\\\" gauge\n",
            "{\"my\\\"noncompliant\\nmetric\\\\\",\"label\\\"name\\n\"=\"Björn\"} 3.14e+42\n",
        ));
        assert_families(
            &got,
            &[family(
                "my\"noncompliant\nmetric\\",
                Some("help text"),
                MetricType::Gauge,
                vec![gauge(&[("label\"name\n", "Björn")], 3.14e42)],
            )],
        );

        let got = parse_utf8("{\"name.1\"} 1\n{\"name.2\"} 2\n\"name.1\" 3\n");
        assert_families(
            &got,
            &[
                family(
                    "name.1",
                    None,
                    MetricType::Untyped,
                    vec![untyped(&[], 1.0), untyped(&[], 3.0)],
                ),
                family("name.2", None, MetricType::Untyped, vec![untyped(&[], 2.0)]),
            ],
        );

        let got = parse_utf8("{\"some.metric\",a=\"b\"} 1\n");
        assert_families(
            &got,
            &[family(
                "some.metric",
                None,
                MetricType::Untyped,
                vec![untyped(&[("a", "b")], 1.0)],
            )],
        );
    }

    #[test]
    fn quoted_label_names_depend_on_validation() {
        let input = b"m{\"a.b\"=\"1\"} 1\n";
        assert_eq!(
            error(input, NameValidation::Legacy),
            "text format parsing error in line 1: invalid label name \"a.b\""
        );
        assert_families(
            &parse_ok(input, NameValidation::Utf8),
            &[family(
                "m",
                None,
                MetricType::Untyped,
                vec![untyped(&[("a.b", "1")], 1.0)],
            )],
        );
        // A quoted name that is legacy-valid is fine either way.
        assert_families(
            &parse("m{\"a\"=\"1\"} 1\n"),
            &[family(
                "m",
                None,
                MetricType::Untyped,
                vec![untyped(&[("a", "1")], 1.0)],
            )],
        );
    }

    /// Upstream's error cases, with the messages in full: (input, legacy, UTF-8 if different).
    #[test]
    fn error_messages_and_lines_match_upstream() {
        let cases: &[(&[u8], &str, Option<&str>)] = &[
            (
                b"\nbla 3.14\nblubber 42",
                "line 3: unexpected end of input stream",
                None,
            ),
            (
                b"metric{label=\"\\t\"} 3.14\n",
                "line 1: invalid escape sequence '\\t'",
                None,
            ),
            (
                b"\nmetric{label=\"new\nline\"} 3.14\n",
                "line 2: label value \"new\" contains unescaped new-line",
                None,
            ),
            (
                b"metric{@=\"bla\"} 3.14\n",
                "line 1: invalid label name for metric \"metric\"",
                None,
            ),
            (
                b"metric{__name__=\"bla\"} 3.14\n",
                "line 1: label name \"__name__\" is reserved",
                None,
            ),
            (
                b"metric{label+=\"bla\"} 3.14\n",
                "line 1: expected '=' after label name, found '+'",
                None,
            ),
            (
                b"metric{label=bla} 3.14\n",
                "line 1: expected '\"' at start of label value, found 'b'",
                None,
            ),
            (
                b"\n# TYPE metric summary\nmetric{quantile=\"bla\"} 3.14\n",
                "line 3: expected float as value for 'quantile' label, got \"bla\"",
                None,
            ),
            (
                b"metric{label=\"bla\"+} 3.14\n",
                "line 1: unexpected end of label value \"bla\"",
                None,
            ),
            (
                b"metric{label=\"bla\"} 3.14 2.72\n",
                "line 1: expected integer as timestamp, got \"2.72\"",
                None,
            ),
            (
                b"metric{label=\"bla\"} 3.14 2 3\n",
                "line 1: spurious string after timestamp: \" 3\"",
                None,
            ),
            (
                b"metric{label=\"bla\"} blubb\n",
                "line 1: expected float as value, got \"blubb\"",
                None,
            ),
            (
                b"\n# HELP metric one\n# HELP metric two\n",
                "line 3: second HELP line for metric name \"metric\"",
                None,
            ),
            (
                b"\n# TYPE metric counter\n# TYPE metric untyped\n",
                "line 3: second TYPE line for metric name \"metric\", or TYPE reported after \
                 samples",
                None,
            ),
            (
                b"\nmetric 4.12\n# TYPE metric counter\n",
                "line 3: second TYPE line for metric name \"metric\", or TYPE reported after \
                 samples",
                None,
            ),
            (
                b"\n# TYPE metric bla\n",
                "line 2: unknown metric type \"bla\"",
                None,
            ),
            (
                b"\n# TYPE met-ric\n",
                "line 2: invalid metric name in comment",
                None,
            ),
            (
                b"@invalidmetric{label=\"bla\"} 3.14 2\n",
                "line 1: invalid metric name",
                None,
            ),
            (
                b"{label=\"bla\"} 3.14 2\n",
                "line 1: invalid metric name",
                None,
            ),
            (b"{} 3.14\n", "line 1: invalid metric name", None),
            (
                b"\n# TYPE metric histogram\nmetric_bucket{le=\"bla\"} 3.14\n",
                "line 3: expected float as value for 'le' label, got \"bla\"",
                None,
            ),
            (
                b"metric{l=\"\xbd\"} 3.14\n",
                "line 1: invalid label value \"\\xbd\"",
                None,
            ),
            (
                b"foo 1_2\n",
                "line 1: expected float as value, got \"1_2\"",
                None,
            ),
            (
                b"foo 0x1p-3\n",
                "line 1: expected float as value, got \"0x1p-3\"",
                None,
            ),
            (
                b"foo 0X1\n",
                "line 1: expected float as value, got \"0X1\"",
                None,
            ),
            (
                b"foo 0b1\n",
                "line 1: expected float as value, got \"0b1\"",
                None,
            ),
            (
                b"foo 0o1\n",
                "line 1: expected float as value, got \"0o1\"",
                None,
            ),
            (
                b"\n# TYPE metric histogram\nmetric_bucket{le=\"0x1p-3\"} 3.14\n",
                "line 3: expected float as value for 'le' label, got \"0x1p-3\"",
                None,
            ),
            (
                b"\n# TYPE metric summary\nmetric{quantile=\"0x1p-3\"} 3.14\n",
                "line 3: expected float as value for 'quantile' label, got \"0x1p-3\"",
                None,
            ),
            (
                b"metric{label=\"bla\",label=\"bla\"} 3.14\n",
                "line 1: duplicate label names for metric \"metric\"",
                None,
            ),
            (
                b"{\"one.name\",\"another.name\"} 3.14\n",
                "line 1: invalid metric name \"one.name\"",
                Some("line 1: multiple metric names for metric \"one.name\""),
            ),
            (
                b"{\"a\\xc5z\",label=\"bla\"} 3.14\n",
                "line 1: invalid escape sequence '\\x'",
                None,
            ),
            (
                b"{\"metric.name\".label=\"bla\"} 3.14\n",
                "line 1: unexpected end of metric name '.'",
                None,
            ),
            (
                b"\n# TYPE \"metric.name\\t\" counter\n",
                "line 2: invalid escape sequence '\\t'",
                None,
            ),
            (
                b"\n# TYPE \"metric\nname\" counter\n",
                "line 2: metric name \"metric\" contains unescaped new-line",
                None,
            ),
            (
                b"\n{\"metric.name\",\"new\nline\"=\"bla\"} 3.14\n",
                "line 2: invalid metric name \"metric.name\"",
                Some("line 2: label name \"new\" contains unescaped new-line"),
            ),
            (
                b"\n# TYPE h histogram\nh_bucket{le=\"100\"} 123\nh_count -2693\n",
                "line 4: negative count for histogram \"h\"",
                None,
            ),
            (
                b"\n# TYPE h histogram\nh_count -2693.123\n",
                "line 3: negative count for histogram \"h\"",
                None,
            ),
            (
                b"\n# TYPE h histogram\nh_bucket{le=\"120\"} -412\n",
                "line 3: negative bucket population for histogram \"h\"",
                None,
            ),
            (
                b"\n# TYPE h histogram\nh_bucket{le=\"120\"} -412.456\n",
                "line 3: negative bucket population for histogram \"h\"",
                None,
            ),
            // Beyond upstream's own tests.
            (b"a 1", "line 1: unexpected end of input stream", None),
            (
                b"a 1\r\n",
                "line 1: expected float as value, got \"1\\r\"",
                None,
            ),
            (
                b"m.x 1\n",
                "line 1: expected float as value, got \".x\"",
                None,
            ),
            (
                b"a{b=\"c\"}\n",
                "line 1: expected float as value, got \"\"",
                None,
            ),
            (b"\xff 1\n", "line 1: invalid metric name", None),
            (
                b"{a:b} 1\n",
                "line 1: unexpected end of metric name ':'",
                None,
            ),
            (
                b"a{b=\"c\"} 1\n{x\xff} 2\n",
                "line 2: unexpected end of metric name '\u{ff}'",
                None,
            ),
            (
                b"x{a=\"b\"} 1\n{a=\"c\",b=\"d\",a=\"e\"} 2\n",
                "line 2: duplicate label names for metric \"x\"",
                None,
            ),
            (
                b"# HELP a b\\\nc\n",
                "line 1: invalid escape sequence '\\\n'",
                None,
            ),
            (
                b"# HELP \"a.b\" x\n",
                "line 1: invalid metric name \"a.b\"",
                Some(""),
            ),
            (b"a{\"a\\", "line 1: unexpected end of input stream", None),
        ];
        for &(input, legacy, utf8) in cases {
            let want = |tail: &str| format!("text format parsing error in line {tail}");
            let want_legacy = want(legacy.trim_start_matches("line "));
            assert_eq!(
                error(input, NameValidation::Legacy),
                want_legacy,
                "{:?}",
                String::from_utf8_lossy(input)
            );
            match utf8 {
                None => assert_eq!(error(input, NameValidation::Utf8), want_legacy),
                // An empty message: valid under UTF-8 validation.
                Some("") => assert!(parse_text(input, NameValidation::Utf8).is_ok()),
                Some(tail) => assert_eq!(
                    error(input, NameValidation::Utf8),
                    want(tail.trim_start_matches("line "))
                ),
            }
        }
    }

    #[test]
    fn braces_may_be_empty_or_end_in_a_comma() {
        assert_families(
            &parse("x{a=\"b\",} 1\nx{} 2\n"),
            &[family(
                "x",
                None,
                MetricType::Untyped,
                vec![untyped(&[("a", "b")], 1.0), untyped(&[], 2.0)],
            )],
        );
    }

    #[test]
    fn help_without_text_leaves_help_unset() {
        let got = parse("# HELP x\n# HELP x \nx 1\n");
        assert_families(
            &got,
            &[family(
                "x",
                None,
                MetricType::Untyped,
                vec![untyped(&[], 1.0)],
            )],
        );
    }

    #[test]
    fn families_without_samples_are_dropped() {
        let got = parse("# TYPE x counter\n# HELP y some help\n# TYPE z gauge\nz 1\n");
        assert_families(
            &got,
            &[family("z", None, MetricType::Gauge, vec![gauge(&[], 1.0)])],
        );
    }

    #[test]
    fn special_values() {
        let got = parse("a NaN\nb +Inf\nc -Inf\nd inf\ne -infinity\nf nan\ng .5\nh 5.\ni +1e3\n");
        let values: Vec<f64> = got
            .iter()
            .map(|f| {
                f.metric[0]
                    .untyped
                    .as_ref()
                    .and_then(|u| u.value)
                    .unwrap_or(0.0)
            })
            .collect();
        // Go's NaN, bit for bit.
        assert_eq!(values[0].to_bits(), 0x7FF8_0000_0000_0001);
        assert_eq!(values[5].to_bits(), 0x7FF8_0000_0000_0001);
        assert_eq!(
            values[1..5],
            [
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::INFINITY,
                f64::NEG_INFINITY
            ]
        );
        assert_eq!(values[6..], [0.5, 5.0, 1000.0]);
    }

    #[test]
    fn float_syntax_is_gos() {
        let accepted: &[(&str, f64)] = &[
            ("1", 1.0),
            ("-0", -0.0),
            ("08", 8.0),
            ("+.5e-3", 0.0005),
            ("1.e5", 1e5),
            ("00.1", 0.1),
            ("InF", f64::INFINITY),
            ("+Infinity", f64::INFINITY),
            ("-inf", f64::NEG_INFINITY),
            ("1e-1000", 0.0),
            ("4.9e-325", 0.0),
            ("1.7976931348623158e308", f64::MAX),
            ("123456789012345", 123456789012345.0),
            ("-1234567890123456789", -1234567890123456789.0),
        ];
        for &(text, want) in accepted {
            let got = parse_go_float(text.as_bytes());
            assert_eq!(got.map(f64::to_bits), Some(want.to_bits()), "{text}");
        }
        assert!(parse_go_float(b"NaN").is_some_and(f64::is_nan));
        let rejected = [
            "",
            "+nan",
            "-nan",
            "-NaN",
            "infin",
            "1e",
            "1e+",
            "1_0",
            " 1",
            "1 ",
            "0x1p3",
            "0x10",
            "0X1",
            "1e1000",
            "-1e1000",
            "1.7976931348623159e308",
            ".",
            ".e5",
            "e5",
            "1\r",
            "\u{661}",
            "++1",
            "--1",
            "1-",
        ];
        for text in rejected {
            assert_eq!(parse_go_float(text.as_bytes()), None, "{text:?}");
        }
    }

    #[test]
    fn uint64_conversion_is_amd64_gos() {
        let cases: &[(f64, u64)] = &[
            (1.5, 1),
            (-0.5, 0),
            (-1.0, u64::MAX),
            (-1.5, u64::MAX),
            (f64::NAN, 1 << 63),
            (f64::INFINITY, 1 << 63),
            (f64::NEG_INFINITY, 1 << 63),
            (1e300, 1 << 63),
            (18446744073709551616.0, 1 << 63),
            (9223372036854775808.0, 1 << 63),
            (-9223372036854775808.0, 1 << 63),
            (1e19, 10_000_000_000_000_000_000),
        ];
        for &(value, want) in cases {
            assert_eq!(go_uint64(value), want, "{value}");
        }
        let whole = |value: f64| match HistogramCount::of(value) {
            Some(HistogramCount::Whole(n)) => Some(n),
            _ => None,
        };
        assert_eq!(whole(3.0), Some(3));
        assert_eq!(whole(-0.0), Some(0));
        assert_eq!(whole(2.5), None);
        // 2^64 is not a whole count: on amd64 it converts to 2^63.
        assert_eq!(whole(18446744073709551616.0), None);
        assert!(
            matches!(HistogramCount::of(f64::NAN), Some(HistogramCount::Fraction(f)) if f.is_nan())
        );
        assert!(HistogramCount::of(-0.5).is_none());
    }

    #[test]
    fn summary_counts_convert_like_go() {
        let got =
            parse("# TYPE s summary\ns_count -1\ns_count{a=\"b\"} 1.9\ns_count{a=\"c\"} NaN\n");
        let counts: Vec<Option<u64>> = got[0]
            .metric
            .iter()
            .map(|m| m.summary.as_ref().and_then(|s| s.sample_count))
            .collect();
        assert_eq!(counts, [Some(u64::MAX), Some(1), Some(1 << 63)]);
    }

    #[test]
    fn timestamps() {
        let got = parse("a 1 -5\nb 2 +7\nc 3 9223372036854775807\n");
        let timestamps: Vec<Option<i64>> = got.iter().map(|f| f.metric[0].timestamp_ms).collect();
        assert_eq!(timestamps, [Some(-5), Some(7), Some(i64::MAX)]);
        let cases: &[(&str, &str)] = &[
            ("a 1 \n", "expected integer as timestamp, got \"\""),
            ("a 1 2 \n", "spurious string after timestamp: \" \""),
            ("a 1 2\t\n", "spurious string after timestamp: \"\\t\""),
            (
                "a 1 9223372036854775808\n",
                "expected integer as timestamp, got \"9223372036854775808\"",
            ),
            ("a 1 2\\\n", "expected integer as timestamp, got \"2\\\\\""),
        ];
        for &(input, message) in cases {
            assert_eq!(
                error(input.as_bytes(), NameValidation::Legacy),
                format!("text format parsing error in line 1: {message}")
            );
        }
    }

    #[test]
    fn samples_of_a_family_need_not_be_contiguous() {
        assert_families(
            &parse("a 1\nb 2\na{c=\"d\"} 3\n"),
            &[
                family(
                    "a",
                    None,
                    MetricType::Untyped,
                    vec![untyped(&[], 1.0), untyped(&[("c", "d")], 3.0)],
                ),
                family("b", None, MetricType::Untyped, vec![untyped(&[], 2.0)]),
            ],
        );
    }

    #[test]
    fn metric_name_inside_braces_may_follow_labels() {
        assert_families(
            &parse("{a=\"b\", x} 1\n{a=\"b\", x, c=\"d\"} 2\n"),
            &[family(
                "x",
                None,
                MetricType::Untyped,
                vec![
                    untyped(&[("a", "b")], 1.0),
                    untyped(&[("a", "b"), ("c", "d")], 2.0),
                ],
            )],
        );
    }

    #[test]
    fn braces_without_a_name_add_to_the_previous_lines_metric() {
        // Upstream's quirk: the second line relabels and overwrites the first line's metric and
        // lists it again.
        let repeated = at(untyped(&[("b", "c"), ("x", "y")], 2.0), 5);
        assert_families(
            &parse("a{b=\"c\"} 1 5\n{x=\"y\"} 2\n"),
            &[family(
                "a",
                None,
                MetricType::Untyped,
                vec![repeated.clone(), repeated],
            )],
        );
        // Even across families.
        let shared = Metric {
            counter: Some(Counter {
                value: Some(2.0),
                ..Counter::default()
            }),
            ..untyped(&[], 1.0)
        };
        assert_families(
            &parse("a 1\n# TYPE x counter\n{} 2\n"),
            &[
                family("a", None, MetricType::Untyped, vec![shared.clone()]),
                family("x", None, MetricType::Counter, vec![shared]),
            ],
        );
    }

    #[test]
    fn inputs_that_crash_upstream_are_errors() {
        assert_eq!(
            error(b"# TYPE x counter\n{} 1\n", NameValidation::Legacy),
            "text format parsing error in line 2: invalid metric name"
        );
        assert_eq!(
            error(
                b"# TYPE s summary\nfoo 1\n{s, a=\"b\"} 1\n",
                NameValidation::Legacy
            ),
            "text format parsing error in line 3: unexpected labels for summary or histogram \"s\""
        );
    }

    #[test]
    fn help_and_type_of_a_series_go_to_its_summary() {
        let got = parse("# TYPE x summary\n# HELP x_count foo\nx_count 1\nx_sum 2\n");
        assert_families(
            &got,
            &[family(
                "x",
                Some("foo"),
                MetricType::Summary,
                vec![summary(&[], Some(1), Some(2.0), &[])],
            )],
        );
        assert_eq!(
            error(
                b"# TYPE x summary\n# TYPE x_count gauge\n",
                NameValidation::Legacy
            ),
            "text format parsing error in line 2: second TYPE line for metric name \"x\", or TYPE \
             reported after samples"
        );
        // Without a summary or histogram to belong to, a suffixed name is a family of its own.
        let got = parse("x 1\nx_count 2\n# TYPE h summary\nh_bucket 3\n");
        let names: Vec<&str> = got.iter().map(|f| f.name()).collect();
        assert_eq!(names, ["x", "x_count", "h_bucket"]);
    }

    #[test]
    fn help_text_escapes() {
        let got = parse("# HELP a one\\\\two\\nthree\\\"four\"\na 1\n");
        assert_eq!(got[0].help(), "one\\two\nthree\"four\"");
        assert_eq!(
            error(b"# HELP a x\\ty\n", NameValidation::Legacy),
            "text format parsing error in line 1: invalid escape sequence '\\t'"
        );
        // Invalid UTF-8 is replaced, where upstream keeps the bytes.
        let got = parse_ok(b"# HELP a \xff!\na 1\n", NameValidation::Legacy);
        assert_eq!(got[0].help(), "\u{fffd}!");
    }

    #[test]
    fn type_words() {
        let cases = [
            ("COUNTER", MetricType::Counter),
            ("Gauge", MetricType::Gauge),
            ("untyped", MetricType::Untyped),
            // Go's upper-casing maps dotless i and long s onto ASCII letters.
            ("h\u{131}stogram", MetricType::Histogram),
            ("\u{17f}ummary", MetricType::Summary),
            // Backslashes are dropped.
            ("coun\\ter", MetricType::Counter),
        ];
        for (word, want) in cases {
            let got = parse(&format!("# TYPE x {word}\nx 1\n"));
            assert_eq!(got[0].r#type(), want, "{word}");
        }
        assert_eq!(
            error(b"# TYPE a counter \n", NameValidation::Legacy),
            "text format parsing error in line 1: unknown metric type \"counter \""
        );
        assert_eq!(
            error("# TYPE a hiﬆogram\n".as_bytes(), NameValidation::Legacy),
            "text format parsing error in line 1: unknown metric type \"hiﬆogram\""
        );
    }

    /// Every prefix of a body that touches most of the grammar, and many variants with bytes
    /// changed, inserted or removed: the parser must return, never panic.
    #[test]
    fn arbitrary_bytes_never_panic() {
        let body: &[u8] = concat!(
            "# HELP h A \\\"histogram\\\"\\n.\n# TYPE h histogram\n",
            "h_bucket{le=\"0.5\",a=\"x\\\\y\"} 1.5 123\n h_bucket{a=\"x\\\\y\",le=\"+Inf\"} 3\n",
            "h_count{a=\"x\\\\y\"} 3\nh_sum{a=\"x\\\\y\"} NaN\n",
            "# TYPE s summary\ns{quantile=\"0.9\"} 1\ns_count 2\ns_sum -Inf\n",
            "# TYPE g gauge_histogram\ng_bucket{le=\"1\"} 0.5\n",
            "# TYPE \"d.x\" counter\n{\"d.x\",\"l.y\"=\"Björn\"} 1\n{b=\"c\", \"d.x\"} 2\n",
            "\t{} 3\n{z=\"1\"} 4 -5\nc{ a = \"b\" , }\t-0\n# comment\n\n",
        )
        .as_bytes();
        let validations = [NameValidation::Legacy, NameValidation::Utf8];
        for end in 0..=body.len() {
            for validation in validations {
                let _ = parse_text(&body[..end], validation);
            }
        }
        let interesting = b" \t\n{}\",=\\#_:.\r\xff0";
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut random = move |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        };
        for _ in 0..20_000 {
            let mut input = body.to_vec();
            for _ in 0..1 + random(4) {
                let at = random(input.len());
                match random(4) {
                    0 => input[at] = random(256) as u8,
                    1 => input[at] = interesting[random(interesting.len())],
                    2 => input.insert(at, interesting[random(interesting.len())]),
                    _ => {
                        input.remove(at);
                    }
                }
            }
            for validation in validations {
                let _ = parse_text(&input, validation);
            }
        }
    }
}
