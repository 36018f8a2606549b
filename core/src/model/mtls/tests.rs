//! The mutual TLS setting rules.

use super::*;

fn ca_pem() -> String {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

fn reason(r: Result<(), ModelError>) -> String {
    match r.unwrap_err() {
        ModelError::Mtls { reason } => reason,
        other => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn ca_bundles_must_be_pem_ca_certificates_within_the_size_limit() {
    validate_settings(Some(&ca_pem()), &[]).unwrap();
    let two = ca_pem() + &ca_pem();
    validate_settings(Some(&two), &[]).unwrap();
    assert!(reason(validate_settings(Some("hello"), &[])).contains("no PEM certificate"));
    let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    assert!(reason(validate_settings(Some(garbage), &[])).starts_with("mtls_ca_pem:"));
    let huge = ca_pem().repeat(MAX_CA_PEM_BYTES / 500);
    assert!(huge.len() > MAX_CA_PEM_BYTES);
    assert!(reason(validate_settings(Some(&huge), &[])).contains("at most 65536 bytes"));
}

#[test]
fn cn_lists_are_bounded_printable_and_unique() {
    let cn = |s: &str| s.to_string();
    validate_settings(None, &[cn("cks.kms.us-east-1.amazonaws.com"), cn("a b")]).unwrap();
    assert!(reason(validate_settings(None, &[cn("")])).contains("mtls_cns[0]"));
    assert!(reason(validate_settings(None, &["x".repeat(254)])).contains("1..=253"));
    assert!(reason(validate_settings(None, &[cn("ok"), cn("new\nline")])).contains("mtls_cns[1]"));
    assert!(reason(validate_settings(None, &[cn("a"), cn("a")])).contains("twice"));
    let many: Vec<String> = (0..=MAX_CNS).map(|i| format!("cn{i}")).collect();
    assert!(reason(validate_settings(None, &many)).contains("at most 20"));
}

#[test]
fn mutual_tls_needs_https_a_ca_and_cns() {
    let https = MtlsListener {
        https: true,
        default_ca: true,
        default_cns: true,
    };
    let mut store = StoreRecord::sample("s1", "p1");
    // Off: anything goes.
    ensure_possible(&store, &MtlsListener::default()).unwrap();
    store.mtls = true;
    ensure_possible(&store, &https).unwrap();
    let code = |s: &StoreRecord, l: MtlsListener| ensure_possible(s, &l).unwrap_err().code;
    let plain = MtlsListener {
        https: false,
        ..https
    };
    assert_eq!(code(&store, plain), "mtls_unavailable");
    let no_ca = MtlsListener {
        default_ca: false,
        ..https
    };
    assert_eq!(code(&store, no_ca), "mtls_ca_required");
    store.mtls_ca_pem = Some(ca_pem());
    ensure_possible(&store, &no_ca).unwrap();
    let no_cns = MtlsListener {
        default_cns: false,
        ..https
    };
    assert_eq!(code(&store, no_cns), "mtls_cn_required");
    // The region gives AWS KMS's CN; the store's own list does too.
    store.region = Some("eu-west-1".into());
    ensure_possible(&store, &no_cns).unwrap();
    store.region = None;
    store.mtls_cns = vec!["client".into()];
    ensure_possible(&store, &no_cns).unwrap();
}
