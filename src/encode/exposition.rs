//! Scrape output: the pushed families rendered once per store generation and format, merged
//! at every scrape with the gateway's own families, which change all the time.
//!
//! Families are sorted by name across both sources, so the pushed output is kept as runs of
//! families between the names of the gateway's own families, plus, for each own name, the
//! pushed metrics of the same name (merged into the own family under its help and type, as
//! upstream does). A scrape of an unchanged store then only renders the own families and copies
//! (or, for gzip, splices precompressed) cached pieces.
//!
//! In the text format (what Prometheus asks for unless native histograms are on) a run is
//! kept as chunks of about [`CHUNK_BYTES`], each remembering which families of which groups
//! it shows. The first scrape after a change renders only the chunks whose groups changed and
//! takes every other chunk, with its compressed form, from the previous rendering: rendering a
//! million series took about a second, and a push changes a handful of them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

use super::gzip::{Deflated, GzipAssembler};
use super::negotiate::{Format, Negotiated};
use super::{protobuf, text};
use crate::model::EscapingScheme;
use crate::model::proto::{Metric, MetricFamily};
use crate::store::{Group, MergedFamily, OwnFamily, Snapshot, StoredFamily};

/// A cached part of the output, with its compressed form made on first demand.
pub struct Piece {
    raw: Bytes,
    deflated: OnceLock<Deflated>,
}

impl Piece {
    fn new(raw: Vec<u8>) -> Self {
        Piece {
            raw: raw.into(),
            deflated: OnceLock::new(),
        }
    }

    fn deflated(&self) -> &Deflated {
        self.deflated.get_or_init(|| Deflated::new(&self.raw))
    }
}

/// The pushed families of one snapshot in one format.
pub struct PushedExposition {
    negotiated: Negotiated,
    /// The own families' names the runs are split by.
    own: Vec<&'static str>,
    /// `runs[i]` holds the families named between own family `i - 1` and own family `i`.
    runs: Vec<Run>,
    /// `spliced[i]` holds the pushed metrics (no header) of the family named like own family
    /// `i`.
    spliced: Vec<Run>,
}

/// Pieces of output, in order.
#[derive(Default)]
struct Run {
    chunks: Vec<Arc<Chunk>>,
}

impl Run {
    fn len(&self) -> usize {
        self.chunks.iter().map(|c| c.piece.raw.len()).sum()
    }
}

/// A piece of a run and what it shows, so that a later rendering can tell whether it may take
/// the piece as it is.
struct Chunk {
    piece: Piece,
    units: Vec<Unit>,
    /// The groups the units' parts belong to, kept alive so that no other group can reuse
    /// their addresses while this chunk may be compared against.
    _groups: Vec<Arc<Group>>,
}

/// One part of a chunk: a family's header, or one group's metrics of a family.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Unit {
    Header(Box<[u8]>),
    /// The address of the stored family inside its (immutable) group: a changed group is a
    /// new group, so an equal address means equal output.
    Part(usize),
}

/// Output size at which a chunk is closed. Large enough for compression to work well and for
/// few pieces per scrape; small enough that a change re-renders little.
const CHUNK_BYTES: usize = 64 * 1024;

thread_local! {
    /// The previous rendering in the format being rendered, handed from
    /// [`ExpositionCache::get_or_render`] to [`render_pushed`] on the same thread.
    static PREVIOUS: RefCell<Option<Arc<PushedExposition>>> = const { RefCell::new(None) };
}

/// Renders the pushed families of `snapshot`. `own` must be sorted by name. Called from the
/// render function of [`ExpositionCache::get_or_render`], it takes what did not change from
/// the previous rendering.
pub fn render_pushed(
    snapshot: &Snapshot,
    negotiated: Negotiated,
    own: &[OwnFamily],
) -> PushedExposition {
    let own_names: Vec<&'static str> = own.iter().map(|o| o.name).collect();
    let previous = PREVIOUS
        .with_borrow(Clone::clone)
        .filter(|p| p.negotiated == negotiated && p.own == own_names);
    let incremental = negotiated.format == Format::Text;
    let mut runs: Vec<Run> = Vec::with_capacity(own.len() + 1);
    let mut spliced: Vec<Run> = Vec::with_capacity(own.len());
    let merged = snapshot.merged_families();
    let mut builder = RunBuilder::new(incremental);
    for family in &merged {
        while runs.len() < own.len() && own[runs.len()].name < &**family.name {
            let before = previous.as_ref().map(|p| &p.runs[runs.len()]);
            let done = std::mem::replace(&mut builder, RunBuilder::new(incremental));
            runs.push(done.finish(before, negotiated));
        }
        let next_own = own.get(runs.len()).map(|o| o.name);
        if next_own == Some(&**family.name) {
            while spliced.len() < runs.len() {
                spliced.push(Run::default());
            }
            let mut metrics = RunBuilder::new(incremental);
            metrics.parts(family, negotiated);
            let before = previous.as_ref().map(|p| &p.spliced[spliced.len()]);
            spliced.push(metrics.finish(before, negotiated));
        } else {
            builder.family(family, negotiated);
        }
    }
    let before = previous.as_ref().map(|p| &p.runs[runs.len()]);
    runs.push(builder.finish(before, negotiated));
    while runs.len() <= own.len() {
        runs.push(Run::default());
    }
    while spliced.len() < own.len() {
        spliced.push(Run::default());
    }
    PushedExposition {
        negotiated,
        own: own_names,
        runs,
        spliced,
    }
}

/// What a run will show, unit by unit (incremental), or its rendered output (otherwise).
struct RunBuilder<'a> {
    incremental: bool,
    /// Each unit, with the family and part index it renders from (none for headers).
    units: Vec<(Unit, Option<(&'a MergedFamily<'a>, usize)>)>,
    rendered: Vec<u8>,
}

impl<'a> RunBuilder<'a> {
    fn new(incremental: bool) -> Self {
        RunBuilder {
            incremental,
            units: Vec::new(),
            rendered: Vec::new(),
        }
    }

    fn family(&mut self, family: &'a MergedFamily<'a>, negotiated: Negotiated) {
        if !self.incremental {
            write_family(&mut self.rendered, family, negotiated);
            return;
        }
        let mut header = Vec::new();
        text::write_header(
            &mut header,
            family.name,
            family.help.map(|h| &**h),
            family.kind,
            negotiated.escaping,
        );
        self.units.push((Unit::Header(header.into()), None));
        self.parts(family, negotiated);
    }

    fn parts(&mut self, family: &'a MergedFamily<'a>, negotiated: Negotiated) {
        if !self.incremental {
            write_metrics(&mut self.rendered, family, negotiated);
            return;
        }
        for (part, (_, stored)) in family.parts.iter().enumerate() {
            let address = std::ptr::from_ref(*stored) as usize;
            self.units.push((Unit::Part(address), Some((family, part))));
        }
    }

    /// The run, taking unchanged chunks from `before`.
    fn finish(self, before: Option<&Run>, negotiated: Negotiated) -> Run {
        if !self.incremental {
            let rendered = self.rendered;
            return Run {
                chunks: vec![Arc::new(Chunk {
                    piece: Piece::new(rendered),
                    units: Vec::new(),
                    _groups: Vec::new(),
                })],
            };
        }
        let starts: HashMap<&Unit, &Arc<Chunk>> = before
            .map(|run| {
                run.chunks
                    .iter()
                    .filter_map(|c| c.units.first().map(|u| (u, c)))
                    .collect()
            })
            .unwrap_or_default();
        let mut run = Run::default();
        let mut fresh = FreshChunk::default();
        let mut at = 0;
        while at < self.units.len() {
            let reusable = starts.get(&self.units[at].0).filter(|c| {
                let end = at + c.units.len();
                end <= self.units.len()
                    && self.units[at..end]
                        .iter()
                        .zip(&c.units)
                        .all(|((unit, _), old)| unit == old)
            });
            if let Some(chunk) = reusable {
                fresh.close_into(&mut run);
                run.chunks.push(Arc::clone(chunk));
                at += chunk.units.len();
                continue;
            }
            let (unit, source) = &self.units[at];
            fresh.add(unit, *source, negotiated);
            if fresh.rendered.len() >= CHUNK_BYTES {
                fresh.close_into(&mut run);
            }
            at += 1;
        }
        fresh.close_into(&mut run);
        run
    }
}

/// A chunk being rendered.
#[derive(Default)]
struct FreshChunk {
    rendered: Vec<u8>,
    units: Vec<Unit>,
    groups: Vec<Arc<Group>>,
}

impl FreshChunk {
    fn add(
        &mut self,
        unit: &Unit,
        source: Option<(&MergedFamily<'_>, usize)>,
        negotiated: Negotiated,
    ) {
        if self.rendered.capacity() == 0 {
            // Sized once rather than grown by doubling: fewer, same-sized allocations leave
            // the heap less fragmented after a large scrape.
            self.rendered.reserve(CHUNK_BYTES + CHUNK_BYTES / 4);
        }
        if let Unit::Header(header) = unit {
            self.rendered.extend_from_slice(header);
        }
        if let Some((family, part)) = source {
            let (group, stored) = family.parts[part];
            write_part(&mut self.rendered, family, group, stored, negotiated);
            if !self.groups.last().is_some_and(|g| Arc::ptr_eq(g, group)) {
                self.groups.push(Arc::clone(group));
            }
        }
        self.units.push(unit.clone());
    }

    fn close_into(&mut self, run: &mut Run) {
        if self.units.is_empty() {
            return;
        }
        let mut fresh = std::mem::take(self);
        if fresh.rendered.capacity() > 2 * fresh.rendered.len() {
            fresh.rendered.shrink_to_fit();
        }
        run.chunks.push(Arc::new(Chunk {
            piece: Piece::new(fresh.rendered),
            units: fresh.units,
            _groups: fresh.groups,
        }));
    }
}

fn write_family(out: &mut Vec<u8>, family: &MergedFamily<'_>, negotiated: Negotiated) {
    let name = negotiated.escaping.escape(family.name);
    let help = family.help.map(|h| &**h);
    match negotiated.format {
        Format::Text => {
            text::write_header(out, family.name, help, family.kind, negotiated.escaping);
            write_metrics(out, family, negotiated);
        }
        Format::Protobuf => {
            let mut metrics = Vec::new();
            write_metrics(&mut metrics, family, negotiated);
            protobuf::write_family_header(out, &name, help, family.kind, metrics.len());
            out.extend_from_slice(&metrics);
        }
    }
}

/// The metrics of a merged family, group by group.
fn write_metrics(out: &mut Vec<u8>, family: &MergedFamily<'_>, negotiated: Negotiated) {
    for (group, stored) in &family.parts {
        write_part(out, family, group, stored, negotiated);
    }
}

/// One group's metrics of a merged family.
fn write_part(
    out: &mut Vec<u8>,
    family: &MergedFamily<'_>,
    group: &Group,
    stored: &StoredFamily,
    negotiated: Negotiated,
) {
    let as_is = negotiated.format == Format::Protobuf
        && (stored.legacy_label_names || negotiated.escaping == EscapingScheme::AllowUtf8);
    if as_is {
        out.extend_from_slice(group.metric_bytes(stored));
        return;
    }
    // Unreadable metrics cannot occur (the buffer is ours); skipping them keeps a scrape
    // alive if one ever does.
    let metrics = group.metrics(stored).flatten();
    match negotiated.format {
        Format::Text => {
            for metric in metrics {
                text::write_metric(out, family.name, family.kind, &metric, negotiated.escaping);
            }
        }
        Format::Protobuf => {
            let metrics: Vec<Metric> = metrics.collect();
            protobuf::encode_metrics(out, metrics.iter(), negotiated.escaping);
        }
    }
}

/// Builds a whole scrape answer: the own families `collected` now (sorted by name), merged with
/// the cached pushed part. Returns the body in pieces, gzipped if asked.
pub fn assemble(
    pushed: &PushedExposition,
    own: &[OwnFamily],
    collected: &[MetricFamily],
    negotiated: Negotiated,
    gzip: bool,
) -> Vec<Bytes> {
    let mut body = Body::new(gzip);
    for (i, descriptor) in own.iter().enumerate() {
        body.cached(&pushed.runs[i]);
        let current = collected.iter().find(|f| f.name() == descriptor.name);
        let spliced = &pushed.spliced[i];
        if current.is_none() && spliced.len() == 0 {
            continue;
        }
        let metrics = current.map(|f| f.metric.as_slice()).unwrap_or_default();
        let mut fresh = Vec::new();
        match negotiated.format {
            Format::Text => {
                text::write_header(
                    &mut fresh,
                    descriptor.name,
                    Some(descriptor.help),
                    descriptor.kind,
                    negotiated.escaping,
                );
                for metric in metrics {
                    text::write_metric(
                        &mut fresh,
                        descriptor.name,
                        descriptor.kind,
                        metric,
                        negotiated.escaping,
                    );
                }
            }
            Format::Protobuf => {
                let mut encoded = Vec::new();
                protobuf::encode_metrics(&mut encoded, metrics.iter(), negotiated.escaping);
                protobuf::write_family_header(
                    &mut fresh,
                    descriptor.name,
                    Some(descriptor.help),
                    descriptor.kind,
                    encoded.len() + spliced.len(),
                );
                fresh.extend_from_slice(&encoded);
            }
        }
        body.fresh(fresh);
        body.cached(spliced);
    }
    body.cached(&pushed.runs[own.len()]);
    body.finish()
}

/// Collects the pieces of an answer, compressed or not.
enum Body {
    Plain(Vec<Bytes>),
    Gzip(GzipAssembler),
}

impl Body {
    fn new(gzip: bool) -> Self {
        if gzip {
            Body::Gzip(GzipAssembler::default())
        } else {
            Body::Plain(Vec::new())
        }
    }

    fn cached(&mut self, run: &Run) {
        for chunk in &run.chunks {
            let piece = &chunk.piece;
            if piece.raw.is_empty() {
                continue;
            }
            match self {
                Body::Plain(parts) => parts.push(piece.raw.clone()),
                Body::Gzip(gzip) => gzip.push(piece.deflated()),
            }
        }
    }

    fn fresh(&mut self, raw: Vec<u8>) {
        match self {
            Body::Plain(parts) => parts.push(raw.into()),
            Body::Gzip(gzip) => gzip.push(&Deflated::new(&raw)),
        }
    }

    fn finish(self) -> Vec<Bytes> {
        match self {
            Body::Plain(parts) => parts,
            Body::Gzip(gzip) => gzip.finish(),
        }
    }
}

/// What a scrape of a given store generation gets: the rendered pushed part, or the reason the
/// store cannot be exposed (only possible when pushes are not checked).
pub type Rendered = Result<Arc<PushedExposition>, Arc<str>>;

struct Slot {
    generation: u64,
    negotiated: Negotiated,
    rendered: OnceLock<Rendered>,
}

/// Remembers the rendered pushed part for the current store generation, one per format a
/// scraper asked for. Scrapes arriving together for the same generation render it once.
#[derive(Default)]
pub struct ExpositionCache {
    slots: Mutex<Vec<Arc<Slot>>>,
    /// The last rendering per format, whatever its generation: the next rendering in that
    /// format takes its unchanged chunks.
    previous: Mutex<Vec<Arc<PushedExposition>>>,
}

/// Formats remembered at once; more would only hold memory for rare scrapers.
const CACHED_FORMATS: usize = 2;

impl ExpositionCache {
    /// The pushed part for this snapshot and format, rendered by `render` if not cached. Blocks
    /// while another thread renders the same; call it off the async executor.
    pub fn get_or_render(
        &self,
        snapshot: &Snapshot,
        negotiated: Negotiated,
        render: impl FnOnce() -> Rendered,
    ) -> Rendered {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.retain(|s| s.generation == snapshot.generation());
            match slots.iter().find(|s| s.negotiated == negotiated) {
                Some(slot) => slot.clone(),
                None => {
                    let slot = Arc::new(Slot {
                        generation: snapshot.generation(),
                        negotiated,
                        rendered: OnceLock::new(),
                    });
                    if slots.len() >= CACHED_FORMATS {
                        slots.remove(0);
                    }
                    slots.push(slot.clone());
                    slot
                }
            }
        };
        slot.rendered
            .get_or_init(|| {
                let previous = self
                    .lock_previous()
                    .iter()
                    .find(|p| p.negotiated == negotiated)
                    .cloned();
                PREVIOUS.set(previous);
                let rendered = render();
                PREVIOUS.set(None);
                if let Ok(exposition) = &rendered {
                    let mut previous = self.lock_previous();
                    previous.retain(|p| p.negotiated != negotiated);
                    if previous.len() >= CACHED_FORMATS {
                        previous.remove(0);
                    }
                    previous.push(exposition.clone());
                }
                rendered
            })
            .clone()
    }

    fn lock_previous(&self) -> std::sync::MutexGuard<'_, Vec<Arc<PushedExposition>>> {
        self.previous.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::negotiate::negotiate;
    use crate::model::proto::{Gauge, Metric as ProtoMetric, MetricFamily, MetricType};
    use crate::model::{GroupingKey, Timestamp};
    use crate::store::{Push, PushMode, Store, View};
    use futures_util::FutureExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn push(store: &Store, job: &str, name: &str) {
        let family = MetricFamily {
            name: Some(name.into()),
            r#type: Some(MetricType::Gauge as i32),
            metric: vec![ProtoMetric {
                gauge: Some(Gauge { value: Some(1.0) }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let push = store.prepare(Push {
            key: GroupingKey::from_labels([("job", job)]),
            families: vec![family],
            mode: PushMode::Replace,
            time: Timestamp::now(),
            expire_after: None,
            holder: None,
            quota: None,
        });
        // Without persistence a change is done as soon as it is applied.
        let done = store.push(push).now_or_never().expect("done at once");
        done.unwrap();
    }

    #[test]
    fn an_unchanged_store_is_rendered_once() {
        let own = [OwnFamily {
            name: "pushgateway_build_info",
            kind: MetricType::Gauge,
            help: "build",
        }];
        let store = Store::in_memory(Arc::new(View::new(&own, true, Default::default())));
        push(&store, "a", "x");
        let cache = ExpositionCache::default();
        let renders = AtomicUsize::new(0);
        let text = negotiate(None);
        let render = |snapshot: &Snapshot| {
            cache
                .get_or_render(snapshot, text, || {
                    renders.fetch_add(1, Ordering::SeqCst);
                    Ok(Arc::new(render_pushed(snapshot, text, &own)))
                })
                .unwrap()
        };
        let first = render(&store.snapshot());
        let second = render(&store.snapshot());
        assert_eq!(renders.load(Ordering::SeqCst), 1);
        assert!(Arc::ptr_eq(&first, &second));
        push(&store, "b", "y");
        render(&store.snapshot());
        assert_eq!(renders.load(Ordering::SeqCst), 2, "a change renders again");
    }

    #[test]
    fn pushed_families_named_like_own_ones_are_spliced_under_the_own_header() {
        let own = [
            OwnFamily {
                name: "b_own",
                kind: MetricType::Gauge,
                help: "own help",
            },
            OwnFamily {
                name: "d_own",
                kind: MetricType::Gauge,
                help: "other",
            },
        ];
        let store = Store::in_memory(Arc::new(View::new(&own, true, Default::default())));
        for name in ["a", "b_own", "c", "e"] {
            push(&store, name, name);
        }
        let text = negotiate(None);
        let pushed = render_pushed(&store.snapshot(), text, &own);
        let collected = vec![MetricFamily {
            name: Some("b_own".into()),
            help: Some("own help".into()),
            r#type: Some(MetricType::Gauge as i32),
            metric: vec![ProtoMetric {
                gauge: Some(Gauge { value: Some(7.0) }),
                ..Default::default()
            }],
            ..Default::default()
        }];
        let body: Vec<u8> = assemble(&pushed, &own, &collected, text, false).concat();
        let body = String::from_utf8(body).unwrap();
        let headers: Vec<&str> = body.lines().filter(|l| l.starts_with("# TYPE")).collect();
        assert_eq!(
            headers,
            vec![
                "# TYPE a gauge",
                "# TYPE b_own gauge",
                "# TYPE c gauge",
                "# TYPE e gauge",
                "# TYPE push_failure_time_seconds gauge",
                "# TYPE push_time_seconds gauge",
            ]
        );
        assert!(body.contains("# HELP b_own own help\n# TYPE b_own gauge\nb_own 7\nb_own{instance=\"\",job=\"b_own\"} 1\n"), "{body}");
    }
}
