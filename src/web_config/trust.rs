//! Whether a client certificate can name anybody. A certificate's names count only when the
//! web configuration verifies it against a CA ([`super::Identity::verified_certificate`]); with
//! `RequestClientCert` or `RequireAnyClientCert` any self-made certificate is taken, so rules of
//! the authorization file that name requesters by certificate would silently match nobody.
//!
//! The two files are loaded, and reloaded, apart. Each tells this cell what the version it is
//! about to put into service says (the web configuration: whether it verifies certificates;
//! the rules: which rule names requesters by certificate), and the cell refuses a version that
//! would make such rules meet a configuration that does not verify. Start-up checks the pair
//! once both are loaded ([`CertificateTrust::check`]), and a refused reload keeps the last good
//! version, as any refused reload does.

use std::sync::Mutex;

/// What the web configuration does with client certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// Verified against a CA (`VerifyClientCertIfGiven`, `RequireAndVerifyClientCert`).
    Verified,
    /// Taken, but not verified: the `client_auth_type`.
    Unverified(&'static str),
    /// Not asked for: why.
    NotAsked(&'static str),
}

/// Rules that name requesters by certificate, with a configuration that does not verify them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "rule {rule:?} of the authorization file names requesters by their client certificate, but {reason}, so it would match nobody: verify client certificates (client_auth_type RequireAndVerifyClientCert or VerifyClientCertIfGiven, with client_ca_file), or name requesters by user"
)]
pub struct TrustError {
    pub rule: String,
    pub reason: String,
}

#[derive(Debug)]
struct State {
    verification: Verification,
    /// A rule that names requesters by certificate, if any does.
    certificate_rule: Option<String>,
}

/// The pair in service.
#[derive(Debug)]
pub struct CertificateTrust(Mutex<State>);

impl Default for CertificateTrust {
    fn default() -> Self {
        CertificateTrust(Mutex::new(State {
            verification: Verification::NotAsked("there is no --web.config.file"),
            certificate_rule: None,
        }))
    }
}

impl CertificateTrust {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the pair in service fits; start-up asks once both files are loaded.
    pub fn check(&self) -> Result<(), TrustError> {
        let state = self.lock();
        judge(state.verification, state.certificate_rule.as_deref())
    }

    /// The web configuration's version at start-up (checked with [`CertificateTrust::check`]).
    pub fn start_web_config(&self, verification: Verification) {
        self.lock().verification = verification;
    }

    /// The authorization rules at start-up (checked with [`CertificateTrust::check`]).
    pub fn start_rules(&self, certificate_rule: Option<&str>) {
        self.lock().certificate_rule = certificate_rule.map(str::to_string);
    }

    /// A reloaded web configuration: refused if it does not verify certificates that the
    /// rules in service name requesters by; otherwise it is what the rules are judged by.
    pub fn reload_web_config(&self, verification: Verification) -> Result<(), TrustError> {
        let mut state = self.lock();
        judge(verification, state.certificate_rule.as_deref())?;
        state.verification = verification;
        Ok(())
    }

    /// Reloaded rules: refused if they name requesters by certificate and the web
    /// configuration in service does not verify certificates.
    pub fn reload_rules(&self, certificate_rule: Option<&str>) -> Result<(), TrustError> {
        let mut state = self.lock();
        judge(state.verification, certificate_rule)?;
        state.certificate_rule = certificate_rule.map(str::to_string);
        Ok(())
    }
}

fn judge(verification: Verification, certificate_rule: Option<&str>) -> Result<(), TrustError> {
    let Some(rule) = certificate_rule else {
        return Ok(());
    };
    let reason = match verification {
        Verification::Verified => return Ok(()),
        Verification::Unverified(client_auth_type) => format!(
            "client_auth_type {client_auth_type} takes client certificates without verifying them"
        ),
        Verification::NotAsked(why) => format!("no client certificate is asked for ({why})"),
    };
    Err(TrustError {
        rule: rule.to_string(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_rules_need_verified_certificates() {
        let trust = CertificateTrust::default();
        trust.start_rules(Some("team-a"));
        let err = trust.check().unwrap_err();
        assert!(err.to_string().contains("no --web.config.file"), "{err}");
        trust.start_web_config(Verification::Verified);
        assert_eq!(trust.check(), Ok(()));

        // A reload to a configuration that does not verify is refused; the pair stays.
        let err = trust
            .reload_web_config(Verification::Unverified("RequestClientCert"))
            .unwrap_err();
        assert_eq!(err.rule, "team-a");
        assert!(
            err.to_string()
                .contains("RequestClientCert takes client certificates without verifying them")
        );
        assert_eq!(trust.check(), Ok(()));

        // Without certificate rules it is accepted, and then certificate rules are refused.
        assert_eq!(trust.reload_rules(None), Ok(()));
        assert_eq!(
            trust.reload_web_config(Verification::Unverified("RequireAnyClientCert")),
            Ok(())
        );
        assert!(trust.reload_rules(Some("team-b")).is_err());
        assert_eq!(trust.check(), Ok(()));
    }
}
