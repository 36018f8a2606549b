//! The SDK conformance kit against the ctm plugin, loaded from the built cdylib as the
//! host loads it, and used directly through the rlib.

mod common;

use keyhold_sdk::{conformance, guard, testing::MemoryHost};
use plugin_ctm::CtmSource;

#[test]
fn conformance_kit_passes_through_the_loaded_cdylib() {
    let (host, _kf, source) = common::opened(&[0x11; 32]);
    let report = conformance::run(&source).unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(report.passed, conformance::CHECKS);
    // Only the non-deletable keys the kit needs remain, all named with its prefix.
    let left: Vec<String> = host.entries().keys().cloned().collect();
    assert!(!left.is_empty());
    for k in &left {
        let name = k.strip_prefix("keys/").unwrap();
        assert!(name.starts_with(&report.key_prefix), "{k}");
        assert!(report.leftover_keys.iter().any(|l| l == name), "{k}");
    }
    // A second run in the same source uses fresh names.
    let again = conformance::run(&source).unwrap_or_else(|f| panic!("{f}"));
    assert_ne!(again.key_prefix, report.key_prefix);
}

#[test]
fn conformance_kit_passes_in_process() {
    let host = MemoryHost::new();
    let kf = common::key_file(&[0x22; 32]);
    let source = CtmSource::open(&kf.config, host.boxed()).unwrap();
    conformance::run(&guard(source)).unwrap_or_else(|f| panic!("{f}"));
}

#[test]
fn conformance_kit_leaves_other_keys_alone() {
    let (host, _kf, source) = common::opened(&[0x33; 32]);
    let mine = source
        .create_key(keyhold_sdk::NewKey {
            name: "mine".into(),
            usage: keyhold_sdk::KeyUsage::ENCRYPT,
            exportable: false,
            deletable: true,
        })
        .unwrap();
    let before = host.entries()["keys/mine"].clone();
    conformance::run(&source).unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(host.entries()["keys/mine"], before);
    assert_eq!(source.get_key("mine".into()).unwrap(), mine);
}

/// A ctm source with one injected fault, to check that the kit catches it.
struct Faulty {
    inner: CtmSource,
    fault: Fault,
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    EmptyHealth,
    ListOmitsKeys,
    TamperIsInternal,
    ShortTag,
    EnableIsNoop,
    DeleteRefusalIsUnsupported,
}

use keyhold_sdk::{
    DecryptInput, EkmNode, Encrypted, KeyInfo, KeySourceError, KeySourceImpl, NewKey, SourceInfo,
};

impl KeySourceImpl for Faulty {
    fn info(&self) -> SourceInfo {
        self.inner.info()
    }
    fn health(&self) -> Vec<EkmNode> {
        match self.fault {
            Fault::EmptyHealth => Vec::new(),
            _ => self.inner.health(),
        }
    }
    fn list_keys(&self) -> Result<Vec<KeyInfo>, KeySourceError> {
        match self.fault {
            Fault::ListOmitsKeys => Ok(Vec::new()),
            _ => self.inner.list_keys(),
        }
    }
    fn get_key(&self, name: &str) -> Result<KeyInfo, KeySourceError> {
        self.inner.get_key(name)
    }
    fn create_key(&self, spec: NewKey) -> Result<KeyInfo, KeySourceError> {
        self.inner.create_key(spec)
    }
    fn delete_key(&self, name: &str) -> Result<(), KeySourceError> {
        match (self.fault, self.inner.delete_key(name)) {
            (Fault::DeleteRefusalIsUnsupported, Err(KeySourceError::InvalidKey { .. })) => {
                Err(KeySourceError::Unsupported {
                    reason: "no".into(),
                })
            }
            (_, r) => r,
        }
    }
    fn set_enabled(&self, name: &str, enabled: bool) -> Result<KeyInfo, KeySourceError> {
        match self.fault {
            Fault::EnableIsNoop => self.inner.get_key(name).map(|mut i| {
                i.enabled = enabled;
                i
            }),
            _ => self.inner.set_enabled(name, enabled),
        }
    }
    fn validate_health_check_key(&self, name: &str) -> Result<(), KeySourceError> {
        self.inner.validate_health_check_key(name)
    }
    fn encrypt(&self, name: &str, pt: &[u8], aad: &[u8]) -> Result<Encrypted, KeySourceError> {
        let mut enc = self.inner.encrypt(name, pt, aad)?;
        if let Fault::ShortTag = self.fault {
            enc.tag.truncate(15);
        }
        Ok(enc)
    }
    fn decrypt(&self, name: &str, input: DecryptInput<'_>) -> Result<Vec<u8>, KeySourceError> {
        match (self.fault, self.inner.decrypt(name, input)) {
            (Fault::TamperIsInternal, Err(KeySourceError::InvalidCiphertext)) => {
                Err(KeySourceError::internal("tag mismatch"))
            }
            (_, r) => r,
        }
    }
}

#[test]
fn conformance_kit_catches_faults_and_cleans_up() {
    let cases = [
        (Fault::EmptyHealth, "health"),
        (Fault::ListOmitsKeys, "create_key"),
        (Fault::ShortTag, "round_trip"),
        (Fault::TamperIsInternal, "tampering"),
        (Fault::EnableIsNoop, "enable_disable"),
        (Fault::DeleteRefusalIsUnsupported, "delete_key"),
    ];
    let kf = common::key_file(&[0x77; 32]);
    for (fault, check) in cases {
        let host = MemoryHost::new();
        let inner = CtmSource::open(&kf.config, host.boxed()).unwrap();
        let failure = conformance::run(&guard(Faulty { inner, fault })).unwrap_err();
        assert_eq!(failure.check, check, "{fault:?}: {failure}");
        // Every deletable key the kit created is gone again.
        for (k, v) in host.entries() {
            let record: plugin_ctm::record::KeyRecord = serde_json::from_slice(&v).unwrap();
            assert!(!record.deletable, "{fault:?}: {k} left behind");
        }
    }
}
