//! The attributes of key objects: what is read from a key, how it is shown
//! ([`KeyInfo`](keyhold_sdk::KeyInfo) attributes), what keeps it from being a
//! health-check key, and the template of the keys this source creates.

use cryptoki::{
    error::Error,
    object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle},
    session::Session,
};
use keyhold_sdk::{KeyAttribute, KeyUsage};

use crate::KEY_BYTES;

/// The attributes this source reads from a key object.
#[derive(Debug, Default)]
pub(crate) struct KeyAttrs {
    pub label: Option<String>,
    pub id: Option<Vec<u8>>,
    pub key_type: Option<KeyType>,
    pub value_len: Option<u64>,
    pub token: Option<bool>,
    pub private: Option<bool>,
    pub sensitive: Option<bool>,
    pub extractable: Option<bool>,
    pub always_sensitive: Option<bool>,
    pub never_extractable: Option<bool>,
    pub modifiable: Option<bool>,
    pub destroyable: Option<bool>,
    pub encrypt: Option<bool>,
    pub decrypt: Option<bool>,
    pub wrap: Option<bool>,
    pub unwrap: Option<bool>,
    pub sign: Option<bool>,
    pub verify: Option<bool>,
    pub derive: Option<bool>,
}

const ATTRS: [AttributeType; 19] = [
    AttributeType::Label,
    AttributeType::Id,
    AttributeType::KeyType,
    AttributeType::ValueLen,
    AttributeType::Token,
    AttributeType::Private,
    AttributeType::Sensitive,
    AttributeType::Extractable,
    AttributeType::AlwaysSensitive,
    AttributeType::NeverExtractable,
    AttributeType::Modifiable,
    AttributeType::Destroyable,
    AttributeType::Encrypt,
    AttributeType::Decrypt,
    AttributeType::Wrap,
    AttributeType::Unwrap,
    AttributeType::Sign,
    AttributeType::Verify,
    AttributeType::Derive,
];

/// The usage attributes only (a key lookup).
pub(crate) const USAGE_ATTRS: [AttributeType; 4] = [
    AttributeType::Encrypt,
    AttributeType::Decrypt,
    AttributeType::Wrap,
    AttributeType::Unwrap,
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl KeyAttrs {
    /// Reads the attributes of `handle` (all of them, or only `which`). Attributes
    /// the module does not know are left out.
    pub fn read_some(
        session: &Session,
        handle: ObjectHandle,
        which: &[AttributeType],
    ) -> Result<KeyAttrs, Error> {
        let mut a = KeyAttrs::default();
        for attr in session.get_attributes(handle, which)? {
            match attr {
                Attribute::Label(v) => a.label = Some(String::from_utf8_lossy(&v).into_owned()),
                Attribute::Id(v) => a.id = Some(v),
                Attribute::KeyType(v) => a.key_type = Some(v),
                Attribute::ValueLen(v) => a.value_len = Some(u64::from(v)),
                Attribute::Token(v) => a.token = Some(v),
                Attribute::Private(v) => a.private = Some(v),
                Attribute::Sensitive(v) => a.sensitive = Some(v),
                Attribute::Extractable(v) => a.extractable = Some(v),
                Attribute::AlwaysSensitive(v) => a.always_sensitive = Some(v),
                Attribute::NeverExtractable(v) => a.never_extractable = Some(v),
                Attribute::Modifiable(v) => a.modifiable = Some(v),
                Attribute::Destroyable(v) => a.destroyable = Some(v),
                Attribute::Encrypt(v) => a.encrypt = Some(v),
                Attribute::Decrypt(v) => a.decrypt = Some(v),
                Attribute::Wrap(v) => a.wrap = Some(v),
                Attribute::Unwrap(v) => a.unwrap = Some(v),
                Attribute::Sign(v) => a.sign = Some(v),
                Attribute::Verify(v) => a.verify = Some(v),
                Attribute::Derive(v) => a.derive = Some(v),
                _ => {}
            }
        }
        Ok(a)
    }

    /// Reads every attribute this source shows.
    pub fn read(session: &Session, handle: ObjectHandle) -> Result<KeyAttrs, Error> {
        KeyAttrs::read_some(session, handle, &ATTRS)
    }

    pub fn usage(&self) -> KeyUsage {
        let mut usage = KeyUsage::NONE;
        for (flag, bit) in [
            (self.encrypt, KeyUsage::ENCRYPT),
            (self.decrypt, KeyUsage::DECRYPT),
            (self.wrap, KeyUsage::WRAP),
            (self.unwrap, KeyUsage::UNWRAP),
        ] {
            if flag == Some(true) {
                usage = usage.union(bit);
            }
        }
        usage
    }

    /// The attributes shown in `KeyInfo`. `CKA_DESTROYABLE` is shown only where the
    /// module implements it (`destroyable_known`, PKCS#11 2.40).
    pub fn display(&self, destroyable_known: bool) -> Vec<KeyAttribute> {
        fn b(v: Option<bool>) -> Option<String> {
            v.map(|v| v.to_string())
        }
        let destroyable = self.destroyable.filter(|_| destroyable_known);
        let rows: [(&str, Option<String>); 19] = [
            ("CKA_LABEL", self.label.clone()),
            ("CKA_ID", self.id.as_ref().map(|id| hex(id))),
            ("CKA_KEY_TYPE", self.key_type.map(|t| t.to_string())),
            ("CKA_VALUE_LEN", self.value_len.map(|v| v.to_string())),
            ("CKA_TOKEN", b(self.token)),
            ("CKA_PRIVATE", b(self.private)),
            ("CKA_SENSITIVE", b(self.sensitive)),
            ("CKA_EXTRACTABLE", b(self.extractable)),
            ("CKA_ALWAYS_SENSITIVE", b(self.always_sensitive)),
            ("CKA_NEVER_EXTRACTABLE", b(self.never_extractable)),
            ("CKA_MODIFIABLE", b(self.modifiable)),
            ("CKA_DESTROYABLE", b(destroyable)),
            ("CKA_ENCRYPT", b(self.encrypt)),
            ("CKA_DECRYPT", b(self.decrypt)),
            ("CKA_WRAP", b(self.wrap)),
            ("CKA_UNWRAP", b(self.unwrap)),
            ("CKA_SIGN", b(self.sign)),
            ("CKA_VERIFY", b(self.verify)),
            ("CKA_DERIVE", b(self.derive)),
        ];
        rows.into_iter()
            .filter_map(|(name, value)| {
                value.map(|value| KeyAttribute {
                    name: name.into(),
                    value: value.into(),
                })
            })
            .collect()
    }

    /// One problem per attribute that keeps the key from being a health-check key.
    pub fn health_check_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.key_type != Some(KeyType::AES) {
            problems.push("CKA_KEY_TYPE must be CKK_AES".to_string());
        }
        if self.value_len != Some(KEY_BYTES) {
            problems.push(format!("CKA_VALUE_LEN must be {KEY_BYTES} (AES-256)"));
        }
        if self.extractable != Some(false) {
            problems.push("CKA_EXTRACTABLE must be false".to_string());
        }
        if self.sensitive != Some(true) {
            problems.push("CKA_SENSITIVE must be true".to_string());
        }
        for (name, v) in [
            ("CKA_ENCRYPT", self.encrypt),
            ("CKA_DECRYPT", self.decrypt),
            ("CKA_WRAP", self.wrap),
            ("CKA_UNWRAP", self.unwrap),
        ] {
            if v != Some(true) {
                problems.push(format!("{name} must be true"));
            }
        }
        problems
    }
}

/// The search template of the secret keys labelled `label`.
pub(crate) fn secret_key_template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::Label(label.as_bytes().to_vec()),
    ]
}

/// The template of a key this source creates: every security-relevant attribute is
/// set, none left to the module's defaults (which differ: openCryptoki makes
/// `CKA_SIGN`, `CKA_VERIFY`, `CKA_DERIVE` and `CKA_MODIFIABLE` true). `CKA_DESTROYABLE`
/// is set only where the module implements it (`destroyable_known`); elsewhere the
/// host's `nodelete/<label>` flag keeps a non-deletable key from being deleted.
pub(crate) fn new_key_template(
    label: &str,
    usage: KeyUsage,
    deletable: bool,
    destroyable_known: bool,
) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(KEY_BYTES.into()),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Modifiable(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(label.as_bytes().to_vec()),
        Attribute::Encrypt(usage.contains(KeyUsage::ENCRYPT)),
        Attribute::Decrypt(usage.contains(KeyUsage::DECRYPT)),
        Attribute::Wrap(usage.contains(KeyUsage::WRAP)),
        Attribute::Unwrap(usage.contains(KeyUsage::UNWRAP)),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Derive(false),
    ];
    if destroyable_known {
        t.push(Attribute::Destroyable(deletable));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(t: &[Attribute], a: &Attribute) -> bool {
        t.iter().any(|x| x == a)
    }

    #[test]
    fn the_template_sets_every_security_attribute() {
        let t = new_key_template("k", KeyUsage::ENCRYPT, false, true);
        for a in [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Modifiable(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Derive(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(false),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Destroyable(false),
        ] {
            assert!(has(&t, &a), "{a:?} missing from {t:?}");
        }
        // A PKCS#11 2.20 module does not know CKA_DESTROYABLE: left out.
        let t = new_key_template("k", KeyUsage::ALL, false, false);
        assert!(
            !t.iter()
                .any(|a| a.attribute_type() == AttributeType::Destroyable)
        );
        assert!(has(&t, &Attribute::Wrap(true)));
    }

    #[test]
    fn destroyable_is_shown_only_where_the_module_knows_it() {
        let a = KeyAttrs {
            destroyable: Some(true),
            sign: Some(false),
            ..KeyAttrs::default()
        };
        let names = |v: Vec<KeyAttribute>| -> Vec<String> {
            v.into_iter().map(|a| a.name.to_string()).collect()
        };
        assert_eq!(names(a.display(true)), ["CKA_DESTROYABLE", "CKA_SIGN"]);
        assert_eq!(names(a.display(false)), ["CKA_SIGN"]);
    }
}
