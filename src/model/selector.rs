//! Label selectors over grouping keys, in Prometheus' syntax: `{job="nightly",instance=~"db-.*"}`
//! with `=`, `!=`, `=~` and `!~`. As in Prometheus, a label the key lacks has the empty value,
//! and regular expressions match the whole value (they are anchored).

use std::fmt;
use std::str::FromStr;

use regex::Regex;

use super::GroupingKey;
use super::names::is_legacy_label_name;

/// A selector with at least one matcher: a group matches when every matcher does.
#[derive(Clone, Debug)]
pub struct Selector {
    matchers: Vec<Matcher>,
}

#[derive(Clone, Debug)]
struct Matcher {
    name: String,
    op: MatchOp,
    value: String,
    /// For `=~` and `!~`: the value, anchored.
    regex: Option<Regex>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error(
        "the selector has no matchers; to select every group, write it out, e.g. {{job=~\".+\"}}"
    )]
    Empty,
    #[error("invalid selector at character {at}: {problem}")]
    Syntax { at: usize, problem: String },
    #[error("invalid regular expression {pattern:?} for label {label:?}: {reason}")]
    Regex {
        label: String,
        pattern: String,
        reason: String,
    },
}

impl Selector {
    /// Whether every matcher accepts the key's labels (a missing label is the empty value).
    pub fn matches(&self, key: &GroupingKey) -> bool {
        self.matchers.iter().all(|m| {
            let value = key.get(&m.name).unwrap_or_default();
            match (m.op, &m.regex) {
                (MatchOp::Equal, _) => value == m.value,
                (MatchOp::NotEqual, _) => value != m.value,
                (MatchOp::Regex, Some(re)) => re.is_match(value),
                (MatchOp::NotRegex, Some(re)) => !re.is_match(value),
                (MatchOp::Regex | MatchOp::NotRegex, None) => false,
            }
        })
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(text: &str) -> Result<Selector, SelectorError> {
        let mut parser = Parser { text, at: 0 };
        parser.skip_space();
        parser.expect('{')?;
        let mut matchers = Vec::new();
        loop {
            parser.skip_space();
            if parser.eat('}') {
                break;
            }
            matchers.push(parser.matcher()?);
            parser.skip_space();
            if parser.eat(',') {
                continue;
            }
            parser.expect('}')?;
            break;
        }
        parser.skip_space();
        if parser.at < text.len() {
            return Err(parser.error("unexpected text after '}'"));
        }
        if matchers.is_empty() {
            return Err(SelectorError::Empty);
        }
        Ok(Selector { matchers })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if is_legacy_label_name(&m.name) {
                f.write_str(&m.name)?;
            } else {
                write!(f, "{}", crate::go::quote(&m.name))?;
            }
            write!(f, "{}{}", m.op.as_str(), crate::go::quote(&m.value))?;
        }
        f.write_str("}")
    }
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.at += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), SelectorError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.error(&format!("expected '{c}'")))
        }
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += self.peek().map_or(0, char::len_utf8);
        }
    }

    fn error(&self, problem: &str) -> SelectorError {
        SelectorError::Syntax {
            at: self.text[..self.at].chars().count() + 1,
            problem: problem.to_string(),
        }
    }

    fn matcher(&mut self) -> Result<Matcher, SelectorError> {
        let name = match self.peek() {
            Some('"' | '\'' | '`') => self.string()?,
            _ => self.identifier()?,
        };
        if name.is_empty() {
            return Err(self.error("empty label name"));
        }
        self.skip_space();
        let op = if self.rest().starts_with("=~") {
            MatchOp::Regex
        } else if self.rest().starts_with("!~") {
            MatchOp::NotRegex
        } else if self.rest().starts_with("!=") {
            MatchOp::NotEqual
        } else if self.rest().starts_with('=') {
            MatchOp::Equal
        } else {
            return Err(self.error("expected one of =, !=, =~, !~"));
        };
        self.at += op.as_str().len();
        self.skip_space();
        let value = self.string()?;
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                Regex::new(&format!("^(?:{value})$")).map_err(|err| SelectorError::Regex {
                    label: name.clone(),
                    pattern: value.clone(),
                    reason: err.to_string(),
                })?,
            ),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher {
            name,
            op,
            value,
            regex,
        })
    }

    fn identifier(&mut self) -> Result<String, SelectorError> {
        let len = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(self.rest().len());
        let name = self.rest()[..len].to_string();
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(self.error("expected a label name"));
        }
        self.at += len;
        Ok(name)
    }

    /// A string in double or single quotes (with Go's escapes) or backticks (raw).
    fn string(&mut self) -> Result<String, SelectorError> {
        let Some(quote) = self.peek().filter(|c| matches!(c, '"' | '\'' | '`')) else {
            return Err(self.error("expected a quoted string"));
        };
        self.at += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error("unterminated string"));
            };
            self.at += c.len_utf8();
            match c {
                c if c == quote => return Ok(out),
                '\\' if quote != '`' => out.push(self.escape(quote)?),
                '\n' if quote != '`' => return Err(self.error("newline in string")),
                c => out.push(c),
            }
        }
    }

    fn escape(&mut self, quote: char) -> Result<char, SelectorError> {
        let Some(c) = self.peek() else {
            return Err(self.error("unterminated string"));
        };
        self.at += c.len_utf8();
        let simple = match c {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '\\' => Some('\\'),
            c if c == quote => Some(c),
            _ => None,
        };
        if let Some(c) = simple {
            return Ok(c);
        }
        let digits = match c {
            'x' => 2,
            'u' => 4,
            'U' => 8,
            _ => return Err(self.error(&format!("unknown escape sequence \\{c}"))),
        };
        let hex = self.rest().get(..digits).unwrap_or_default();
        let code = u32::from_str_radix(hex, 16)
            .ok()
            .filter(|_| hex.len() == digits)
            .and_then(char::from_u32)
            .ok_or_else(|| self.error("invalid escape sequence"))?;
        self.at += digits;
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(labels: &[(&str, &str)]) -> GroupingKey {
        GroupingKey::from_labels(labels.iter().copied())
    }

    fn selected(selector: &str, labels: &[(&str, &str)]) -> bool {
        selector
            .parse::<Selector>()
            .expect(selector)
            .matches(&key(labels))
    }

    #[test]
    fn each_matcher_kind() {
        let nightly_db = [("job", "nightly"), ("instance", "db-1")];
        assert!(selected(r#"{job="nightly"}"#, &nightly_db));
        assert!(!selected(r#"{job="night"}"#, &nightly_db));
        assert!(selected(r#"{job!="other"}"#, &nightly_db));
        assert!(!selected(r#"{job!="nightly"}"#, &nightly_db));
        assert!(selected(r#"{instance=~"db-.*"}"#, &nightly_db));
        assert!(!selected(r#"{instance=~"db"}"#, &nightly_db), "anchored");
        assert!(selected(r#"{instance!~"web-.*"}"#, &nightly_db));
        assert!(!selected(r#"{instance!~"db-.*"}"#, &nightly_db));
        assert!(selected(
            r#"{ job = "nightly" , instance =~ "db-.*" , }"#,
            &nightly_db
        ));
        assert!(!selected(
            r#"{job="nightly",instance=~"web-.*"}"#,
            &nightly_db
        ));
    }

    #[test]
    fn missing_labels_are_empty() {
        assert!(selected(r#"{zone=""}"#, &[("job", "a")]));
        assert!(!selected(r#"{zone=~".+"}"#, &[("job", "a")]));
        assert!(selected(r#"{job=~".+"}"#, &[("job", "a")]));
    }

    #[test]
    fn quoting() {
        assert!(selected(
            r#"{"dotted.name"="x"}"#,
            &[("job", "j"), ("dotted.name", "x")]
        ));
        assert!(selected(r#"{job='a"b'}"#, &[("job", "a\"b")]));
        assert!(selected(r#"{job="a\"b\\c"}"#, &[("job", "a\"b\\c")]));
        assert!(selected(r#"{job=`a\d`}"#, &[("job", "a\\d")]));
        assert!(selected(r#"{job="\u00e9"}"#, &[("job", "é")]));
    }

    #[test]
    fn errors() {
        assert_eq!("{}".parse::<Selector>().unwrap_err(), SelectorError::Empty);
        assert_eq!(
            " { } ".parse::<Selector>().unwrap_err(),
            SelectorError::Empty
        );
        for bad in [
            "",
            "job=\"a\"",
            "{job}",
            "{job=a}",
            "{job=\"a\"",
            "{job==\"a\"}",
            "{job=\"a\"} x",
            "{1job=\"a\"}",
            "{job=\"a\\q\"}",
        ] {
            assert!(
                matches!(bad.parse::<Selector>(), Err(SelectorError::Syntax { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            r#"{job=~"("}"#.parse::<Selector>(),
            Err(SelectorError::Regex { .. })
        ));
    }

    #[test]
    fn displays_as_written() {
        let selector: Selector = r#"{ job = "a" ,x!~'b.*'}"#.parse().unwrap();
        assert_eq!(selector.to_string(), r#"{job="a",x!~"b.*"}"#);
    }
}
