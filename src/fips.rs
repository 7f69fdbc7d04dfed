//! FIPS 140 mode: whether this build serves cryptography only through the FIPS-validated
//! AWS-LC module, and the start-up check that proves it at run time.
//!
//! The `fips` cargo feature links rustls and aws-lc-rs against `aws-lc-fips-sys` (the AWS-LC
//! FIPS module, built from source with Go and CMake); every other code path is shared with the
//! default build. A FIPS build refuses to start when the module does not report FIPS mode, and
//! refuses any TLS configuration that rustls does not report as FIPS.

/// Whether this binary was built with the `fips` feature.
pub const BUILD: bool = cfg!(feature = "fips");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("FIPS mode is not active: {0}; refusing to start a FIPS build without it")]
pub struct NotInFipsMode(pub String);

/// In a FIPS build, checks that the module runs in FIPS mode (its power-on self tests passed).
/// Default builds have nothing to check.
pub fn check_module() -> Result<(), NotInFipsMode> {
    if !BUILD {
        return Ok(());
    }
    aws_lc_rs::try_fips_mode().map_err(|e| NotInFipsMode(e.to_string()))
}

/// The cryptographic module this build links, for logs, metrics and the status API, e.g.
/// `AWS-LC 5.1.0` or `AWS-LC FIPS module 3 (AWS-LC 3.6.0)`.
pub fn module() -> String {
    let version = aws_lc_rs::awslc_version();
    match aws_lc_rs::fips_version() {
        Some(fips) if BUILD => format!("AWS-LC FIPS module {fips} (AWS-LC {version})"),
        _ => format!("AWS-LC {version}"),
    }
}

/// The NIST CMVP certificate of the AWS-LC FIPS module line 3, static build: what aws-lc-rs 1.17
/// links (its release notes for 1.17.1 say that aws-lc-fips-sys uses the validated FIPS v3
/// module; aws/aws-lc's `crypto/fipsmodule/FIPS.md` lists #5314 for the static library, #5298
/// for the dynamic one). This binary is static, so #5314 is the one that applies.
const MODULE_3_STATIC_CERTIFICATE: u32 = 5314;

/// The CMVP certificate of the module this build links, as the outputs state it:
/// `CMVP #5314`, or `none` when the module is not a validated one (every default build, which
/// links plain AWS-LC, and a FIPS build of a module line with no certificate recorded here).
/// `--version`, the start-up log, `/api/v1/status` and `pushgateway_build_info` all show this
/// value, and the FIPS image's build checks it against its attestation.
pub fn certificate() -> String {
    match aws_lc_rs::fips_version() {
        Some(3) if BUILD => format!("CMVP #{MODULE_3_STATIC_CERTIFICATE}"),
        _ => "none".to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn module_check_matches_the_build() {
        assert!(super::check_module().is_ok());
        assert_eq!(aws_lc_rs::try_fips_mode().is_ok(), super::BUILD);
        let module = super::module();
        println!("{module}");
        assert!(module.starts_with("AWS-LC"));
        assert_eq!(module.contains("FIPS"), super::BUILD);
        let certificate = super::certificate();
        if super::BUILD {
            assert_eq!(certificate, "CMVP #5314");
        } else {
            assert_eq!(certificate, "none");
        }
    }
}
