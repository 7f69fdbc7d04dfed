//! Scrape output: the pushed families rendered once per store generation and format, merged
//! at every scrape with the gateway's own families, which change all the time.
//!
//! Families are sorted by name across both sources, so the pushed output is kept as runs of
//! families between the names of the gateway's own families, plus, for each own name, the
//! pushed metrics of the same name (merged into the own family under its help and type, as
//! upstream does). A scrape of an unchanged store then only renders the own families and copies
//! (or, for gzip, splices precompressed) cached pieces.

use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

use super::gzip::{Deflated, GzipAssembler};
use super::negotiate::{Format, Negotiated};
use super::{proto_write, text_write};
use crate::model::EscapingScheme;
use crate::model::proto::{Metric, MetricFamily};
use crate::store::{MergedFamily, OwnFamily, Snapshot};

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
    /// `runs[i]` holds the families named between own family `i - 1` and own family `i`.
    runs: Vec<Piece>,
    /// `spliced[i]` holds the pushed metrics (no header) of the family named like own family
    /// `i`.
    spliced: Vec<Piece>,
}

/// Renders the pushed families of `snapshot`. `own` must be sorted by name.
pub fn render_pushed(
    snapshot: &Snapshot,
    negotiated: Negotiated,
    own: &[OwnFamily],
) -> PushedExposition {
    let mut runs = Vec::with_capacity(own.len() + 1);
    let mut spliced: Vec<Piece> = Vec::with_capacity(own.len());
    let mut run = Vec::new();
    for family in snapshot.merged_families() {
        while runs.len() < own.len() && own[runs.len()].name < &**family.name {
            runs.push(Piece::new(std::mem::take(&mut run)));
        }
        let next_own = own.get(runs.len()).map(|o| o.name);
        if next_own == Some(&**family.name) {
            while spliced.len() < runs.len() {
                spliced.push(Piece::new(Vec::new()));
            }
            let mut metrics = Vec::new();
            write_metrics(&mut metrics, &family, negotiated);
            spliced.push(Piece::new(metrics));
        } else {
            write_family(&mut run, &family, negotiated);
        }
    }
    runs.push(Piece::new(run));
    while runs.len() <= own.len() {
        runs.push(Piece::new(Vec::new()));
    }
    while spliced.len() < own.len() {
        spliced.push(Piece::new(Vec::new()));
    }
    PushedExposition { runs, spliced }
}

fn write_family(out: &mut Vec<u8>, family: &MergedFamily<'_>, negotiated: Negotiated) {
    let name = negotiated.escaping.escape(family.name);
    let help = family.help.map(|h| &**h);
    match negotiated.format {
        Format::Text => {
            text_write::write_header(out, family.name, help, family.kind, negotiated.escaping);
            write_metrics(out, family, negotiated);
        }
        Format::Protobuf => {
            let mut metrics = Vec::new();
            write_metrics(&mut metrics, family, negotiated);
            proto_write::write_family_header(out, &name, help, family.kind, metrics.len());
            out.extend_from_slice(&metrics);
        }
    }
}

/// The metrics of a merged family, group by group.
fn write_metrics(out: &mut Vec<u8>, family: &MergedFamily<'_>, negotiated: Negotiated) {
    for (group, stored) in &family.parts {
        let as_is = negotiated.format == Format::Protobuf
            && (stored.legacy_label_names || negotiated.escaping == EscapingScheme::AllowUtf8);
        if as_is {
            out.extend_from_slice(group.metric_bytes(stored));
            continue;
        }
        // Unreadable metrics cannot occur (the buffer is ours); skipping them keeps a scrape
        // alive if one ever does.
        let metrics = group.metrics(stored).flatten();
        match negotiated.format {
            Format::Text => {
                for metric in metrics {
                    text_write::write_metric(
                        out,
                        family.name,
                        family.kind,
                        &metric,
                        negotiated.escaping,
                    );
                }
            }
            Format::Protobuf => {
                let metrics: Vec<Metric> = metrics.collect();
                proto_write::encode_metrics(out, metrics.iter(), negotiated.escaping);
            }
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
        if current.is_none() && spliced.raw.is_empty() {
            continue;
        }
        let metrics = current.map(|f| f.metric.as_slice()).unwrap_or_default();
        let mut fresh = Vec::new();
        match negotiated.format {
            Format::Text => {
                text_write::write_header(
                    &mut fresh,
                    descriptor.name,
                    Some(descriptor.help),
                    descriptor.kind,
                    negotiated.escaping,
                );
                for metric in metrics {
                    text_write::write_metric(
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
                proto_write::encode_metrics(&mut encoded, metrics.iter(), negotiated.escaping);
                proto_write::write_family_header(
                    &mut fresh,
                    descriptor.name,
                    Some(descriptor.help),
                    descriptor.kind,
                    encoded.len() + spliced.raw.len(),
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

    fn cached(&mut self, piece: &Piece) {
        if piece.raw.is_empty() {
            return;
        }
        match self {
            Body::Plain(parts) => parts.push(piece.raw.clone()),
            Body::Gzip(gzip) => gzip.push(piece.deflated()),
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
        slot.rendered.get_or_init(render).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::negotiate::negotiate;
    use crate::model::proto::{Gauge, Metric as ProtoMetric, MetricFamily, MetricType};
    use crate::model::{GroupingKey, Timestamp};
    use crate::store::{Push, PushMode, Store};
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
        store
            .push(Push {
                key: GroupingKey::from_labels([("job", job)]),
                families: vec![family],
                mode: PushMode::Replace,
                time: Timestamp::now(),
            })
            .unwrap();
    }

    #[test]
    fn an_unchanged_store_is_rendered_once() {
        let own = [OwnFamily {
            name: "pushgateway_build_info",
            kind: MetricType::Gauge,
            help: "build",
        }];
        let store = Store::new(&own, true);
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
        let store = Store::new(&own, true);
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
