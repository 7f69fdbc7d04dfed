//! Go's text conventions, which upstream's clients, operators and tests compare byte for byte:
//! how floats, quoted strings and durations are written (and durations read). A leaf: it
//! depends on nothing else in the crate, and every layer may use it.

mod strconv;
mod time;

pub use strconv::{float_string, push_float, quote, quote_char};
pub use time::{format_duration, parse_duration};
