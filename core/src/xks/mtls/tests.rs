//! Per-store client certificate checks, with certificates made by rcgen.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

use super::*;

struct Ca {
    cert: Certificate,
    key: KeyPair,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            cert,
            key,
        }
    }

    fn client(&self, cn: &str) -> PeerCertificates {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        PeerCertificates(Arc::from(vec![cert.der().clone()]))
    }

    fn roots(&self) -> Vec<CertificateDer<'static>> {
        tls::parse_pem_certs(&self.pem).unwrap()
    }
}

fn store(ca: Option<&Ca>, cns: &[&str]) -> StoreRecord {
    StoreRecord {
        mtls: true,
        mtls_ca_pem: ca.map(|c| c.pem.clone()),
        mtls_cns: cns.iter().map(|c| c.to_string()).collect(),
        ..StoreRecord::sample("s1", "p1")
    }
}

fn message(r: Result<(), XksError>) -> String {
    let e = r.unwrap_err();
    assert_eq!(e.kind, XksErrorKind::AuthenticationFailed);
    e.message
}

#[test]
fn a_store_without_mutual_tls_needs_no_certificate() {
    let rule = store_rule(&StoreRecord::sample("s1", "p1"), &Default::default());
    assert!(rule.is_none());
    check(&rule, None).unwrap();
}

#[test]
fn the_store_ca_and_cn_list_decide() {
    let ca = Ca::new("store CA");
    let other = Ca::new("other CA");
    let rule = store_rule(&store(Some(&ca), &["kms-client"]), &Default::default());
    check(&rule, Some(&ca.client("kms-client"))).unwrap();
    assert!(message(check(&rule, None)).contains("none was presented"));
    assert!(message(check(&rule, Some(&other.client("kms-client")))).contains("does not chain"));
    assert!(message(check(&rule, Some(&ca.client("intruder")))).contains("\"intruder\""));
}

#[test]
fn the_listener_defaults_apply_and_the_region_gives_aws_kms_cn() {
    let ca = Ca::new("listener CA");
    let defaults = ClientTrustDefaults {
        roots: ca.roots(),
        cns: vec![],
    };
    let mut rec = store(None, &[]);
    rec.region = Some("eu-west-1".into());
    let rule = store_rule(&rec, &defaults);
    check(&rule, Some(&ca.client("cks.kms.eu-west-1.amazonaws.com"))).unwrap();
    let msg = message(check(
        &rule,
        Some(&ca.client("cks.kms.us-east-1.amazonaws.com")),
    ));
    assert!(msg.contains("not accepted"), "{msg}");
    // The listener's CN list comes before the region.
    let defaults = ClientTrustDefaults {
        cns: vec!["listener-cn".into()],
        ..defaults
    };
    let rule = store_rule(&rec, &defaults);
    check(&rule, Some(&ca.client("listener-cn"))).unwrap();
}

#[test]
fn a_rule_that_cannot_be_met_refuses_every_request_with_its_reason() {
    let rule = store_rule(&store(None, &["cn"]), &Default::default());
    let msg = message(check(&rule, None));
    assert!(msg.contains("no client CA is configured"), "{msg}");
    let ca = Ca::new("ca");
    let rule = store_rule(&store(Some(&ca), &[]), &Default::default());
    assert!(message(check(&rule, Some(&ca.client("x")))).contains("no accepted client CN"));
}

#[test]
fn the_handshake_trusts_the_union_of_the_cas_in_use() {
    let (a, b) = (Ca::new("a"), Ca::new("b"));
    assert!(handshake_verifier([None, None].iter()).is_none());
    let rules = [
        store_rule(&store(Some(&a), &["x"]), &Default::default()),
        store_rule(&store(Some(&b), &["x"]), &Default::default()),
        None,
    ];
    let v = handshake_verifier(rules.iter()).expect("a verifier");
    assert!(v.offer_client_auth());
    assert!(!v.client_auth_mandatory());
    let now = UnixTime::now();
    for ca in [&a, &b] {
        let c = ca.client("whoever");
        v.verify_client_cert(&c.0[0], &[], now).unwrap();
    }
    let stranger = Ca::new("stranger").client("x");
    assert!(v.verify_client_cert(&stranger.0[0], &[], now).is_err());
}
