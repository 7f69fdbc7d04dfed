//! Patterns for names in the authorization file: `*` matches any run of characters, `?` one
//! character, `{dns_san}` (and the other identity kinds) any one of the requester's own names
//! of that kind, taken literally; `\` escapes the next character.

use super::Kind;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(char),
    Any,
    One,
    Own(Kind),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("pattern {pattern:?}: unknown placeholder {{{name}}} (known: {known})")]
    UnknownPlaceholder {
        pattern: String,
        name: String,
        known: String,
    },
    #[error("pattern {0:?}: unclosed {{")]
    Unclosed(String),
    #[error("pattern {0:?} ends with a lone \\")]
    TrailingEscape(String),
    #[error("pattern {0:?}: placeholders cannot be used here")]
    PlaceholderNotAllowed(String),
}

impl Pattern {
    /// Whether the pattern has a placeholder for a name from a client certificate.
    pub fn uses_certificate(&self) -> bool {
        self.tokens
            .iter()
            .any(|t| matches!(t, Token::Own(kind) if kind.is_certificate()))
    }

    pub fn parse(source: &str) -> Result<Pattern, PatternError> {
        let mut tokens = Vec::new();
        let mut chars = source.chars();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' => Token::Any,
                '?' => Token::One,
                '\\' => Token::Literal(
                    chars
                        .next()
                        .ok_or_else(|| PatternError::TrailingEscape(source.to_string()))?,
                ),
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(PatternError::Unclosed(source.to_string()));
                    }
                    let kind = Kind::from_placeholder(&name).ok_or_else(|| {
                        PatternError::UnknownPlaceholder {
                            pattern: source.to_string(),
                            name: name.clone(),
                            known: Kind::ALL
                                .iter()
                                .map(|k| format!("{{{}}}", k.key()))
                                .collect::<Vec<_>>()
                                .join(", "),
                        }
                    })?;
                    Token::Own(kind)
                }
                c => Token::Literal(c),
            });
        }
        Ok(Pattern {
            source: source.to_string(),
            tokens,
        })
    }

    /// A pattern that must not refer to the requester's names (those that select requesters).
    pub fn parse_without_placeholders(source: &str) -> Result<Pattern, PatternError> {
        let pattern = Self::parse(source)?;
        if pattern.tokens.iter().any(|t| matches!(t, Token::Own(_))) {
            return Err(PatternError::PlaceholderNotAllowed(source.to_string()));
        }
        Ok(pattern)
    }

    /// Whether `text` matches, with `own(kind)` giving the requester's names of a kind.
    pub fn matches<'a>(&self, text: &str, own: &dyn Fn(Kind) -> Vec<&'a str>) -> bool {
        let text: Vec<char> = text.chars().collect();
        // memo[t][i]: whether tokens[t..] match text[i..]; filled lazily. The sizes are a URL
        // segment and a line of the operator's file, so the table stays small.
        let mut memo = vec![vec![None; text.len() + 1]; self.tokens.len() + 1];
        self.match_from(0, 0, &text, own, &mut memo)
    }

    fn match_from<'a>(
        &self,
        t: usize,
        i: usize,
        text: &[char],
        own: &dyn Fn(Kind) -> Vec<&'a str>,
        memo: &mut Vec<Vec<Option<bool>>>,
    ) -> bool {
        if let Some(known) = memo[t][i] {
            return known;
        }
        let result = match self.tokens.get(t) {
            None => i == text.len(),
            Some(Token::Literal(c)) => {
                text.get(i) == Some(c) && self.match_from(t + 1, i + 1, text, own, memo)
            }
            Some(Token::One) => i < text.len() && self.match_from(t + 1, i + 1, text, own, memo),
            Some(Token::Any) => {
                (i..=text.len()).any(|j| self.match_from(t + 1, j, text, own, memo))
            }
            Some(Token::Own(kind)) => own(*kind).iter().any(|value| {
                let value: Vec<char> = value.chars().collect();
                !value.is_empty()
                    && text[i..].starts_with(&value)
                    && self.match_from(t + 1, i + value.len(), text, own, memo)
            }),
        };
        memo[t][i] = Some(result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: Kind) -> Vec<&'static str> {
        Vec::new()
    }

    #[test]
    fn globs() {
        let p = Pattern::parse("team-a-*").unwrap();
        assert!(p.matches("team-a-", &none));
        assert!(p.matches("team-a-backup", &none));
        assert!(!p.matches("team-b-backup", &none));
        assert!(!p.matches("xteam-a-1", &none));
        let p = Pattern::parse("a?c").unwrap();
        assert!(p.matches("abc", &none) && p.matches("a.c", &none));
        assert!(!p.matches("ac", &none) && !p.matches("abbc", &none));
        let exact = Pattern::parse("batch").unwrap();
        assert!(exact.matches("batch", &none) && !exact.matches("batch2", &none));
        let escaped = Pattern::parse(r"a\*\{b").unwrap();
        assert!(escaped.matches("a*{b", &none) && !escaped.matches("aX{b", &none));
        let many = Pattern::parse("*a*a*a*a*a*b").unwrap();
        assert!(!many.matches(&"a".repeat(200), &none));
    }

    #[test]
    fn placeholders_match_the_requesters_own_names() {
        let own = |kind: Kind| match kind {
            Kind::DnsSan => vec!["host1.example.com", "alt.example.com"],
            Kind::User => vec!["alice"],
            _ => Vec::new(),
        };
        let p = Pattern::parse("{dns_san}").unwrap();
        assert!(p.matches("host1.example.com", &own));
        assert!(p.matches("alt.example.com", &own));
        assert!(!p.matches("other.example.com", &own));
        assert!(!p.matches("host1.example.co", &own));
        let p = Pattern::parse("{user}-*").unwrap();
        assert!(p.matches("alice-nightly", &own));
        assert!(!p.matches("bob-nightly", &own));
        // No names of that kind: nothing matches, not even the empty string.
        assert!(!Pattern::parse("{uri_san}").unwrap().matches("", &own));
    }

    #[test]
    fn bad_patterns() {
        assert!(matches!(
            Pattern::parse("{dns}"),
            Err(PatternError::UnknownPlaceholder { .. })
        ));
        assert!(matches!(
            Pattern::parse("{dns_san"),
            Err(PatternError::Unclosed(_))
        ));
        assert!(matches!(
            Pattern::parse("a\\"),
            Err(PatternError::TrailingEscape(_))
        ));
        assert!(matches!(
            Pattern::parse_without_placeholders("{user}"),
            Err(PatternError::PlaceholderNotAllowed(_))
        ));
    }
}
