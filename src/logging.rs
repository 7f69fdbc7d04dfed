//! Log output as upstream's: logfmt (`ts=... level=info caller=file:line msg="..." key=value`)
//! or JSON with the same keys, filtered by `--log.level`.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::cli::{LogFormat, LogLevel};
use crate::model::Timestamp;

/// Installs the global logger (once; later calls are ignored, which tests rely on).
pub fn init(level: LogLevel, format: LogFormat) {
    let level = match level {
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    };
    // Our own events at the chosen level; libraries only when they warn.
    let filter = Targets::new()
        .with_target(env!("CARGO_CRATE_NAME"), level)
        .with_default(level.min(LevelFilter::WARN));
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .event_format(Format(format));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init();
}

struct Format(LogFormat);

impl<S, N> FormatEvent<S, N> for Format
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = match *meta.level() {
            Level::ERROR => "error",
            Level::WARN => "warn",
            Level::INFO => "info",
            _ => "debug",
        };
        let caller = match (meta.file(), meta.line()) {
            (Some(file), Some(line)) => {
                let file = file.rsplit('/').next().unwrap_or(file);
                format!("{file}:{line}")
            }
            _ => meta.target().to_string(),
        };
        let mut entries = vec![
            ("ts", Timestamp::now().rfc3339_millis()),
            ("level", level.to_string()),
            ("caller", caller),
            ("msg", fields.message),
        ];
        entries.extend(fields.rest);
        let mut line = String::with_capacity(128);
        match self.0 {
            LogFormat::Logfmt => {
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        line.push(' ');
                    }
                    let _ = write!(line, "{key}={}", logfmt_value(value));
                }
            }
            LogFormat::Json => {
                line.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    let _ = write!(
                        line,
                        "{}:{}",
                        serde_json::Value::from(*key),
                        serde_json::Value::from(value.as_str())
                    );
                }
                line.push('}');
            }
        }
        writeln!(writer, "{line}")
    }
}

/// Quotes a value when logfmt needs it (spaces, quotes, `=`, or empty).
fn logfmt_value(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && c != '"' && c != '=' && !c.is_control());
    if plain {
        value.to_string()
    } else {
        format!("{value:?}")
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.rest.push((field.name(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.rest.push((field.name(), text));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::logfmt_value;

    #[test]
    fn logfmt_quoting() {
        assert_eq!(logfmt_value("plain"), "plain");
        assert_eq!(logfmt_value("two words"), "\"two words\"");
        assert_eq!(logfmt_value("a=b"), "\"a=b\"");
        assert_eq!(logfmt_value(""), "\"\"");
        assert_eq!(logfmt_value("say \"hi\""), "\"say \\\"hi\\\"\"");
    }
}
