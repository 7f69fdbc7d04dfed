//! The authorization file as written, parsed strictly (unknown keys, repeated keys and wrong
//! types are errors), and compiled into a [`Policy`](super::Policy).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::pattern::Pattern;
use super::{AuthzError, Kind, Policy, PushGrant, Rule, RuleQuota};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthzFile {
    #[serde(default)]
    unauthenticated_health_checks: bool,
    #[serde(default)]
    rules: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: String,
    identities: IdentitiesFile,
    #[serde(default)]
    push: Vec<PushGrantFile>,
    #[serde(default)]
    scrape: bool,
    #[serde(default)]
    read: bool,
    #[serde(default)]
    admin: bool,
    quota: Option<QuotaFile>,
}

/// How much a requester of the rule may hold in total.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaFile {
    groups: Option<usize>,
    series: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentitiesFile {
    #[serde(default)]
    anyone: bool,
    #[serde(default)]
    dns_san: Vec<String>,
    #[serde(default)]
    uri_san: Vec<String>,
    #[serde(default)]
    email_san: Vec<String>,
    #[serde(default)]
    ip_san: Vec<String>,
    #[serde(default)]
    common_name: Vec<String>,
    #[serde(default)]
    user: Vec<String>,
}

impl IdentitiesFile {
    fn patterns(&self, kind: Kind) -> &[String] {
        match kind {
            Kind::DnsSan => &self.dns_san,
            Kind::UriSan => &self.uri_san,
            Kind::EmailSan => &self.email_san,
            Kind::IpSan => &self.ip_san,
            Kind::CommonName => &self.common_name,
            Kind::User => &self.user,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushGrantFile {
    job: String,
    #[serde(default, deserialize_with = "crate::web_config::unique_keys")]
    labels: Option<BTreeMap<String, String>>,
    /// The group may have no label besides `job` and those in `labels`.
    #[serde(default)]
    exact_labels: bool,
}

/// Parses and checks the file's content. An empty file is valid and allows nothing.
pub(super) fn parse(content: &str) -> Result<Policy, AuthzError> {
    let is_empty = content
        .lines()
        .all(|line| line.trim().is_empty() || line.trim_start().starts_with('#'));
    let file: AuthzFile = if is_empty {
        AuthzFile::default()
    } else {
        serde_yaml::from_str(content).map_err(|e| AuthzError::Yaml(e.to_string()))?
    };
    let mut names = BTreeSet::new();
    let mut rules = Vec::with_capacity(file.rules.len());
    for rule in file.rules {
        if rule.name.is_empty() {
            return Err(AuthzError::Rule {
                rule: rule.name,
                reason: "a rule needs a name".into(),
            });
        }
        if !names.insert(rule.name.clone()) {
            return Err(AuthzError::Rule {
                rule: rule.name,
                reason: "another rule has the same name".into(),
            });
        }
        rules.push(compile_rule(rule)?);
    }
    Ok(Policy {
        unauthenticated_health_checks: file.unauthenticated_health_checks,
        rules,
    })
}

fn compile_rule(rule: RuleFile) -> Result<Rule, AuthzError> {
    let fail = |reason: String| AuthzError::Rule {
        rule: rule.name.clone(),
        reason,
    };
    let mut identities = Vec::new();
    for kind in Kind::ALL {
        for source in rule.identities.patterns(kind) {
            let pattern = Pattern::parse_without_placeholders(source)
                .map_err(|e| fail(format!("identities.{}: {e}", kind.key())))?;
            identities.push((kind, pattern));
        }
    }
    if !rule.identities.anyone && identities.is_empty() {
        return Err(fail(
            "identities names nobody: give anyone: true or at least one name pattern".into(),
        ));
    }
    if rule.identities.anyone && !identities.is_empty() {
        return Err(fail(
            "identities: anyone: true already matches everybody; remove the name patterns".into(),
        ));
    }
    let mut push = Vec::with_capacity(rule.push.len());
    for grant in &rule.push {
        let job = Pattern::parse(&grant.job).map_err(|e| fail(format!("push.job: {e}")))?;
        let mut labels = Vec::new();
        for (name, value) in grant.labels.iter().flatten() {
            if name == "job" {
                return Err(fail(
                    "push.labels: give the job in push.job, not as a label".into(),
                ));
            }
            if name.is_empty() {
                return Err(fail("push.labels: a label name cannot be empty".into()));
            }
            let pattern =
                Pattern::parse(value).map_err(|e| fail(format!("push.labels.{name}: {e}")))?;
            labels.push((name.clone(), pattern));
        }
        push.push(PushGrant {
            job,
            labels,
            exact: grant.exact_labels,
        });
    }
    if push.is_empty() && !rule.scrape && !rule.read && !rule.admin {
        return Err(fail(
            "the rule grants nothing: give push, scrape, read or admin".into(),
        ));
    }
    let quota = match &rule.quota {
        None => None,
        Some(QuotaFile {
            groups: None,
            series: None,
        }) => {
            return Err(fail(
                "quota: give groups, series or both (or leave quota out)".into(),
            ));
        }
        Some(_) if push.is_empty() => {
            return Err(fail("quota: the rule grants no push".into()));
        }
        Some(QuotaFile { groups, series }) => Some(RuleQuota {
            groups: *groups,
            series: *series,
        }),
    };
    Ok(Rule {
        quota,
        name: rule.name,
        anyone: rule.identities.anyone,
        identities,
        push,
        scrape: rule.scrape,
        read: rule.read,
        admin: rule.admin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(content: &str) -> String {
        parse(content).unwrap_err().to_string()
    }

    #[test]
    fn empty_file_allows_nothing() {
        let policy = parse("# nothing yet\n\n").unwrap();
        assert!(policy.rules.is_empty());
        assert!(!policy.unauthenticated_health_checks);
    }

    #[test]
    fn full_rule() {
        let policy = parse(
            r#"
unauthenticated_health_checks: true
rules:
  - name: team-a
    identities:
      dns_san: ["*.team-a.example.com"]
      user: [team-a]
    push:
      - job: "team-a-*"
        labels:
          instance: "{dns_san}"
    read: true
  - name: everyone-scrapes
    identities: {anyone: true}
    scrape: true
"#,
        )
        .unwrap();
        assert!(policy.unauthenticated_health_checks);
        assert_eq!(policy.rules.len(), 2);
        let rule = &policy.rules[0];
        assert_eq!(rule.identities.len(), 2);
        assert_eq!(rule.push[0].labels[0].0, "instance");
        assert!(rule.read && !rule.scrape && !rule.admin);
        assert!(policy.rules[1].anyone);
    }

    #[test]
    fn strictness() {
        assert!(
            error("rules: [{name: a, identities: {anyone: true}, scrap: true}]")
                .contains("unknown field `scrap`")
        );
        assert!(error("unauthenticated_health_checks: yes please").starts_with("yaml: "));
        assert!(
            error("rules: [{name: a, identities: {anyone: true}, push: [{job: x, labels: {i: a, i: b}}]}]")
                .contains("duplicate")
        );
        assert!(
            error("rules: [{name: a, identities: {anyone: true}, scrape: true}, {name: a, identities: {user: [b]}, read: true}]")
                .contains("another rule has the same name")
        );
        assert!(error("rules: [{name: a, identities: {}, scrape: true}]").contains("names nobody"));
        assert!(error("rules: [{name: a, identities: {user: [b]}}]").contains("grants nothing"));
        assert!(
            error("rules: [{name: a, identities: {user: ['{dns_san}']}, scrape: true}]")
                .contains("placeholders cannot be used here")
        );
        assert!(
            error("rules: [{name: a, identities: {user: [b]}, push: [{job: '{dns}'}]}]")
                .contains("unknown placeholder {dns}")
        );
        assert!(
            error(
                "rules: [{name: a, identities: {user: [b]}, push: [{job: x, labels: {job: y}}]}]"
            )
            .contains("not as a label")
        );
        assert!(
            error("rules: [{name: a, identities: {user: [b]}, push: [{job: x}], quota: {}}]")
                .contains("give groups, series or both")
        );
        assert!(
            error("rules: [{name: a, identities: {user: [b]}, scrape: true, quota: {groups: 1}}]")
                .contains("grants no push")
        );
        assert!(
            error(
                "rules: [{name: a, identities: {user: [b]}, push: [{job: x}], quota: {group: 1}}]"
            )
            .contains("unknown field `group`")
        );
        assert!(
            error(
                "rules: [{name: a, identities: {user: [b]}, push: [{job: x}], quota: {groups: -1}}]"
            )
            .starts_with("yaml: ")
        );
    }
}
