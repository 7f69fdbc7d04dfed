//! `--web.authz-file`: who may do what. Upstream lets anybody who passed TLS and basic auth
//! push to and delete any group, wipe the store and read everything; here rules map requesters
//! (the names in their verified client certificate, their basic-auth user) to what they may
//! do: push to (and delete) grouping keys matching patterns, scrape, read the API and UI, and
//! use the admin endpoints. Without the flag nothing here runs and behaviour is upstream's.
//!
//! The file is separate from the web configuration so that web-config files stay readable by
//! upstream. Every request first looks at the file (its metadata, see [`crate::reload`]) and
//! it is loaded again when it changed, so a changed rule counts from the very next request; a
//! broken version is logged and counted and the last good one stays in service.

mod file;
mod pattern;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::model::GroupingKey;
use crate::reload::{FileReads, Loader, ReloadReport, Reloadable};
use crate::store::{Holder, Quota, QuotaLimit};
use crate::telemetry::{self, Telemetry};
use crate::web_config::{CertificateTrust, Identity, TrustError};
use pattern::Pattern;

/// The kinds of names a requester can be known by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    DnsSan,
    UriSan,
    EmailSan,
    IpSan,
    CommonName,
    User,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::DnsSan,
        Kind::UriSan,
        Kind::EmailSan,
        Kind::IpSan,
        Kind::CommonName,
        Kind::User,
    ];

    /// The name used for the kind in the file, both as a key under `identities` and as a
    /// `{placeholder}` in push patterns.
    pub fn key(self) -> &'static str {
        match self {
            Kind::DnsSan => "dns_san",
            Kind::UriSan => "uri_san",
            Kind::EmailSan => "email_san",
            Kind::IpSan => "ip_san",
            Kind::CommonName => "common_name",
            Kind::User => "user",
        }
    }

    /// Whether names of this kind come from a client certificate.
    fn is_certificate(self) -> bool {
        self != Kind::User
    }

    fn from_placeholder(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.key() == name)
    }
}

/// What a request wants to do.
#[derive(Clone, Copy, Debug)]
pub enum Access<'a> {
    /// PUT or POST to a group.
    Push(&'a GroupingKey),
    /// DELETE of a group (allowed by the same grants as pushing to it).
    Delete(&'a GroupingKey),
    /// GET of the metrics path.
    Scrape,
    /// The web UI, its files and the JSON API's read endpoints.
    Read,
    /// Wiping the store and `/-/quit`.
    Admin,
}

impl Access<'_> {
    /// The `action` label of the denial counter.
    pub fn action(self) -> &'static str {
        match self {
            Access::Push(_) | Access::Delete(_) => "push",
            Access::Scrape => "scrape",
            Access::Read => "read",
            Access::Admin => "admin",
        }
    }

    fn describe(self) -> String {
        match self {
            Access::Push(key) => format!("push to group {key}"),
            Access::Delete(key) => format!("delete group {key}"),
            Access::Scrape => "scrape metrics".into(),
            Access::Read => "read the web UI and API".into(),
            Access::Admin => "use the admin endpoints".into(),
        }
    }
}

/// Why the file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthzError {
    #[error("open {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("yaml: {0}")]
    Yaml(String),
    #[error("rule {rule:?}: {reason}")]
    Rule { rule: String, reason: String },
    #[error(
        "unauthenticated_health_checks cannot change while the gateway runs; restart it to apply the change"
    )]
    FixedAtStartUp,
    #[error(transparent)]
    Trust(#[from] TrustError),
}

/// One checked version of the file.
#[derive(Debug)]
pub struct Policy {
    unauthenticated_health_checks: bool,
    rules: Vec<Rule>,
}

#[derive(Debug)]
struct Rule {
    name: String,
    anyone: bool,
    identities: Vec<(Kind, Pattern)>,
    push: Vec<PushGrant>,
    scrape: bool,
    read: bool,
    admin: bool,
    quota: Option<RuleQuota>,
}

/// How much one requester of a rule may hold in total.
#[derive(Debug, Clone, Copy)]
struct RuleQuota {
    groups: Option<usize>,
    series: Option<usize>,
}

/// Push and delete for grouping keys whose job matches `job` and which have every label in
/// `labels` with a matching value. Labels not named are free, unless `exact`: then the key has
/// no label besides `job` and those named.
#[derive(Debug)]
struct PushGrant {
    job: Pattern,
    labels: Vec<(String, Pattern)>,
    exact: bool,
}

/// A requester's names, taken from what was verified: the client certificate only when the
/// web configuration checks it against CAs, the user only when the password was right.
pub struct Requester {
    names: Vec<(Kind, String)>,
}

impl Requester {
    pub fn of(identity: &Identity) -> Requester {
        let mut names = Vec::new();
        if let Some(cert) = identity.verified_certificate() {
            names.extend(cert.dns_names.iter().map(|n| (Kind::DnsSan, n.clone())));
            names.extend(cert.uris.iter().map(|n| (Kind::UriSan, n.clone())));
            names.extend(
                cert.email_addresses
                    .iter()
                    .map(|n| (Kind::EmailSan, n.clone())),
            );
            names.extend(
                cert.ip_addresses
                    .iter()
                    .map(|ip| (Kind::IpSan, ip.to_string())),
            );
            names.extend(
                cert.subject_common_name
                    .iter()
                    .map(|n| (Kind::CommonName, n.clone())),
            );
        }
        names.extend(identity.user.iter().map(|u| (Kind::User, u.clone())));
        Requester { names }
    }

    fn own(&self, kind: Kind) -> Vec<&str> {
        self.names
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, n)| n.as_str())
            .collect()
    }
}

/// `dns_san="a.example.com" user="alice"`, or what is missing.
impl fmt::Display for Requester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.names.is_empty() {
            return f.write_str("an anonymous requester (no verified client certificate, no user)");
        }
        for (i, (kind, name)) in self.names.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{}={name:?}", kind.key())?;
        }
        Ok(())
    }
}

/// A refused request: who asked, for what, and which rules applied to them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("forbidden: {requester} may not {access}: {reason}")]
pub struct Denial {
    pub requester: String,
    pub access: String,
    pub action: &'static str,
    pub reason: String,
}

impl Rule {
    fn applies_to(&self, requester: &Requester) -> bool {
        self.anyone
            || self.identities.iter().any(|(kind, pattern)| {
                requester
                    .own(*kind)
                    .iter()
                    .any(|name| pattern.matches(name, &|_| Vec::new()))
            })
    }

    fn grants(&self, access: Access<'_>, requester: &Requester) -> bool {
        match access {
            Access::Push(key) | Access::Delete(key) => self.push.iter().any(|grant| {
                let own = |kind: Kind| requester.own(kind);
                grant.job.matches(key.job(), &own)
                    && grant.labels.iter().all(|(name, pattern)| {
                        key.get(name)
                            .is_some_and(|value| pattern.matches(value, &own))
                    })
                    // The key's labels are `job` and (all distinct) names among those above.
                    && (!grant.exact || key.len() == grant.labels.len() + 1)
            }),
            Access::Scrape => self.scrape,
            Access::Read => self.read,
            Access::Admin => self.admin,
        }
    }
}

impl Policy {
    /// Parses and checks an authorization file's content, as a load does.
    pub fn parse(content: &str) -> Result<Policy, AuthzError> {
        file::parse(content)
    }

    /// The first rule that names requesters by their client certificate, in its identities or
    /// in the placeholders of its push patterns (which stand for the requester's own names).
    pub fn certificate_rule(&self) -> Option<&str> {
        self.rules
            .iter()
            .find(|rule| {
                rule.identities
                    .iter()
                    .any(|(kind, _)| kind.is_certificate())
                    || rule.push.iter().any(|grant| {
                        grant.job.uses_certificate()
                            || grant.labels.iter().any(|(_, p)| p.uses_certificate())
                    })
            })
            .map(|rule| rule.name.as_str())
    }

    /// What a requester may hold when it pushes to `key`: of the rules that name it and grant
    /// this push, the smallest limit of each kind.
    pub fn quota(&self, requester: &Requester, key: &GroupingKey) -> Quota {
        let mut quota = Quota::default();
        let tighter = |current: &mut Option<QuotaLimit>, max: Option<usize>, rule: &Rule| {
            if let Some(max) = max
                && current.as_ref().is_none_or(|c| max < c.max)
            {
                *current = Some(QuotaLimit {
                    max,
                    rule: rule.name.as_str().into(),
                });
            }
        };
        for rule in &self.rules {
            let Some(limits) = rule.quota else { continue };
            if rule.applies_to(requester) && rule.grants(Access::Push(key), requester) {
                tighter(&mut quota.groups, limits.groups, rule);
                tighter(&mut quota.series, limits.series, rule);
            }
        }
        quota
    }

    pub fn decide(&self, requester: &Requester, access: Access<'_>) -> Result<(), Denial> {
        let applying: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|rule| rule.applies_to(requester))
            .collect();
        if applying.iter().any(|rule| rule.grants(access, requester)) {
            return Ok(());
        }
        let reason = if applying.is_empty() {
            "no rule names this requester".to_string()
        } else {
            let names: Vec<String> = applying.iter().map(|r| format!("{:?}", r.name)).collect();
            let what = match access {
                Access::Push(_) | Access::Delete(_) => "a push grant matching this group",
                Access::Scrape => "scrape",
                Access::Read => "read",
                Access::Admin => "admin",
            };
            format!(
                "the rules for this requester ({}) do not grant {what}",
                names.join(", ")
            )
        };
        Err(Denial {
            requester: requester.to_string(),
            access: access.describe(),
            action: access.action(),
            reason,
        })
    }
}

/// How the file is loaded while the gateway runs.
struct PolicyLoader {
    path: PathBuf,
    trust: Arc<CertificateTrust>,
}

impl Loader for PolicyLoader {
    type Value = Policy;
    type Error = AuthzError;

    const REPORT: ReloadReport = ReloadReport {
        what: "authorization rules",
        reloads_total: telemetry::AUTHZ_RELOADS,
        last_reload_successful: telemetry::AUTHZ_LAST_RELOAD_OK,
        last_reload_success_time: telemetry::AUTHZ_LAST_RELOAD_TIME,
    };

    fn path(&self) -> &Path {
        &self.path
    }

    fn load(&self, files: &mut FileReads) -> Result<Policy, AuthzError> {
        let content = files
            .read_to_string(&self.path)
            .map_err(|e| AuthzError::Io {
                path: self.path.display().to_string(),
                reason: e.to_string(),
            })?;
        file::parse(&content)
    }

    fn check_reload(&self, current: &Policy, new: &Policy) -> Result<(), AuthzError> {
        if new.unauthenticated_health_checks != current.unauthenticated_health_checks {
            return Err(AuthzError::FixedAtStartUp);
        }
        Ok(self.trust.reload_rules(new.certificate_rule())?)
    }
}

/// The policy in service, reloaded when its file changes.
pub struct Authorizer {
    policy: Reloadable<PolicyLoader>,
    unauthenticated_health_checks: bool,
    telemetry: Arc<Telemetry>,
}

impl Authorizer {
    /// Loads the file for start-up; any error refuses start-up. Which rule names requesters by
    /// certificate is told to `trust` now, and every reload is judged by it.
    pub fn start(
        path: &Path,
        trust: Arc<CertificateTrust>,
        telemetry: Arc<Telemetry>,
    ) -> Result<Arc<Authorizer>, AuthzError> {
        let loader = PolicyLoader {
            path: path.to_path_buf(),
            trust: trust.clone(),
        };
        let policy = Reloadable::start(loader, telemetry.clone())?;
        trust.start_rules(policy.loaded().certificate_rule());
        Ok(Arc::new(Authorizer {
            unauthenticated_health_checks: policy.loaded().unauthenticated_health_checks,
            policy,
            telemetry,
        }))
    }

    /// Whether `/-/healthy` and `/-/ready` are open to requesters without a client certificate
    /// or password (fixed at start-up, because it decides how TLS handshakes are made).
    pub fn unauthenticated_health_checks(&self) -> bool {
        self.unauthenticated_health_checks
    }

    /// Looks at the file, and loads it if it changed. Every request runs this before it is
    /// checked, so that a changed rule counts from the very next request.
    pub async fn refresh(&self) {
        self.policy.current().await;
    }

    /// Allows the request, or logs, counts and returns the denial. Decides by the rules as the
    /// request's [`Authorizer::refresh`] left them.
    pub fn check(&self, identity: &Identity, access: Access<'_>) -> Result<(), Denial> {
        let requester = Requester::of(identity);
        let decision = self.policy.loaded().decide(&requester, access);
        if let Err(denial) = &decision {
            tracing::warn!(
                requester = %denial.requester,
                action = denial.action,
                request = %denial.access,
                reason = %denial.reason,
                "request denied by the authorization rules"
            );
            self.telemetry
                .increment(telemetry::AUTHZ_DENIED, &[("action", denial.action)]);
        }
        decision
    }

    /// Who pushes to `key` (the holder of the group it writes, for quotas) and what the rules
    /// let it hold. Asked after [`Authorizer::check`] allowed the push.
    pub fn push_quota(&self, identity: &Identity, key: &GroupingKey) -> (Holder, Quota) {
        let requester = Requester::of(identity);
        let quota = self.policy.loaded().quota(&requester, key);
        (requester.to_string().into(), quota)
    }

    /// Looks at the file every [`crate::reload::CHECK_INTERVAL`] until the task is dropped,
    /// so that changes are loaded and reported while no request comes.
    pub async fn watch(self: Arc<Self>) {
        self.policy.clone().watch().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web_config::{CertificateIdentity, ClientCertificate};

    /// A requester with a certificate (common name `cn`, DNS names `dns`) when `cn` is given.
    fn requester(cn: Option<&str>, dns: &[&str], user: Option<&str>, verified: bool) -> Requester {
        let certificate = cn.map(|cn| {
            Arc::new(ClientCertificate {
                identity: CertificateIdentity {
                    subject_common_name: Some(cn.into()),
                    dns_names: dns.iter().map(|s| s.to_string()).collect(),
                    ..Default::default()
                },
                verified,
            })
        });
        Requester::of(&Identity {
            client_certificate: certificate,
            user: user.map(str::to_string),
        })
    }

    fn key(labels: &[(&str, &str)]) -> GroupingKey {
        GroupingKey::from_labels(labels.iter().copied())
    }

    const POLICY: &str = r#"
rules:
  - name: team-a
    identities: {dns_san: ["*.team-a.example.com"]}
    push:
      - job: "team-a-*"
        labels: {instance: "{dns_san}"}
  - name: prometheus
    identities: {user: [prometheus]}
    scrape: true
    read: true
  - name: ops
    identities: {common_name: [ops]}
    admin: true
"#;

    #[test]
    fn push_grants_follow_job_and_label_patterns() {
        let policy = file::parse(POLICY).unwrap();
        let host = requester(Some("cn"), &["h1.team-a.example.com"], None, true);
        let own = key(&[
            ("job", "team-a-backup"),
            ("instance", "h1.team-a.example.com"),
        ]);
        assert_eq!(policy.decide(&host, Access::Push(&own)), Ok(()));
        assert_eq!(policy.decide(&host, Access::Delete(&own)), Ok(()));
        let other_instance = key(&[
            ("job", "team-a-backup"),
            ("instance", "h2.team-a.example.com"),
        ]);
        let denial = policy
            .decide(&host, Access::Push(&other_instance))
            .unwrap_err();
        assert_eq!(
            denial.to_string(),
            "forbidden: dns_san=\"h1.team-a.example.com\" common_name=\"cn\" may not push to group \
             {instance=\"h2.team-a.example.com\", job=\"team-a-backup\"}: the rules for this \
             requester (\"team-a\") do not grant a push grant matching this group"
        );
        let no_instance = key(&[("job", "team-a-backup")]);
        assert!(policy.decide(&host, Access::Push(&no_instance)).is_err());
        let other_job = key(&[("job", "team-b"), ("instance", "h1.team-a.example.com")]);
        assert!(policy.decide(&host, Access::Push(&other_job)).is_err());
        assert_eq!(
            policy.decide(&host, Access::Scrape).unwrap_err().action,
            "scrape"
        );
    }

    #[test]
    fn exact_labels_forbid_further_labels() {
        let policy = file::parse(
            r#"
rules:
  - name: confined
    identities: {user: [pusher]}
    push:
      - job: "batch"
        labels: {instance: "*"}
        exact_labels: true
  - name: loose
    identities: {user: [loose]}
    push:
      - job: "batch"
        labels: {instance: "*"}
"#,
        )
        .unwrap();
        let confined = requester(None, &[], Some("pusher"), true);
        let loose = requester(None, &[], Some("loose"), true);
        let exact = key(&[("job", "batch"), ("instance", "a")]);
        let extra = key(&[("job", "batch"), ("instance", "a"), ("team", "x")]);
        let missing = key(&[("job", "batch")]);
        assert_eq!(policy.decide(&confined, Access::Push(&exact)), Ok(()));
        assert_eq!(policy.decide(&confined, Access::Delete(&exact)), Ok(()));
        let denial = policy.decide(&confined, Access::Push(&extra)).unwrap_err();
        assert_eq!(
            denial.reason,
            "the rules for this requester (\"confined\") do not grant a push grant matching this group"
        );
        assert!(policy.decide(&confined, Access::Push(&missing)).is_err());
        assert_eq!(policy.decide(&loose, Access::Push(&extra)), Ok(()));
    }

    #[test]
    fn rules_that_name_certificates_are_found() {
        assert_eq!(
            file::parse(POLICY).unwrap().certificate_rule(),
            Some("team-a")
        );
        let users_only = "rules: [{name: p, identities: {user: [prom]}, scrape: true}]";
        assert_eq!(file::parse(users_only).unwrap().certificate_rule(), None);
        // A user's rule whose push pattern stands for a certificate name.
        let placeholder = "rules: [{name: p, identities: {user: [u]}, push: [{job: x, labels: {instance: '{dns_san}'}}]}]";
        assert_eq!(
            file::parse(placeholder).unwrap().certificate_rule(),
            Some("p")
        );
        let own_user = "rules: [{name: p, identities: {user: [u]}, push: [{job: '{user}'}]}]";
        assert_eq!(file::parse(own_user).unwrap().certificate_rule(), None);
    }

    #[test]
    fn unverified_certificates_name_nobody() {
        let policy = file::parse(POLICY).unwrap();
        let unverified = requester(Some("cn"), &["h1.team-a.example.com"], None, false);
        let own = key(&[
            ("job", "team-a-backup"),
            ("instance", "h1.team-a.example.com"),
        ]);
        let denial = policy.decide(&unverified, Access::Push(&own)).unwrap_err();
        assert_eq!(denial.reason, "no rule names this requester");
        assert!(denial.requester.starts_with("an anonymous requester"));
    }

    #[test]
    fn users_and_common_names() {
        let policy = file::parse(POLICY).unwrap();
        let prometheus = requester(None, &[], Some("prometheus"), true);
        assert!(policy.decide(&prometheus, Access::Scrape).is_ok());
        assert!(policy.decide(&prometheus, Access::Read).is_ok());
        assert!(policy.decide(&prometheus, Access::Admin).is_err());
        let ops = requester(Some("ops"), &["ops.example.com"], None, true);
        assert!(policy.decide(&ops, Access::Admin).is_ok());
        assert!(policy.decide(&ops, Access::Read).is_err());
    }
}
