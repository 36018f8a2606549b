//! The template's key source: AES-256 keys generated from the OS random generator and
//! kept in memory, following every rule of [`keyhold_sdk::KeySource`] (names, order of
//! checks, IV lengths, refusals).

use std::{
    collections::BTreeMap,
    sync::{PoisonError, RwLock},
};

use aes_gcm::{
    AeadInPlace, Aes256Gcm, AesGcm, KeyInit,
    aead::{OsRng, consts::U16, generic_array::GenericArray, rand_core::RngCore},
    aes::Aes256,
};
use keyhold_sdk::{
    DecryptInput, EkmNode, Encrypted, HealthStatus, HostBox, KeyInfo, KeySourceError,
    KeySourceImpl, KeyUsage, LogLevel, NewKey, Operation, SourceInfo,
};
use zeroize::Zeroizing;

use crate::MODEL;

/// The longest key name this source holds, in bytes. An HSM plugin puts its label limit
/// here; 128 is the longest XKS external key id.
pub const MAX_NAME_BYTES: usize = 128;

/// One key: its material (wiped on drop) and its attributes.
struct Key {
    material: Zeroizing<[u8; 32]>,
    info: KeyInfo,
}

/// The template key source.
pub struct TemplateSource {
    keys: RwLock<BTreeMap<String, Key>>,
    host: HostBox,
}

fn random(buf: &mut [u8]) -> Result<(), KeySourceError> {
    OsRng
        .try_fill_bytes(buf)
        .map_err(|_| KeySourceError::internal("the operating system's random generator failed"))
}

/// What is wrong with `name` as a key name of this source, if anything.
fn check_name(name: &str) -> Result<(), KeySourceError> {
    KeySourceError::check_name(name, MAX_NAME_BYTES)
}

impl TemplateSource {
    /// Opens the source: the template takes no configuration (`{}`).
    pub fn open(config: &str, host: HostBox) -> Result<TemplateSource, KeySourceError> {
        if config.trim() != "{}" {
            return Err(KeySourceError::invalid_input(
                "the template key source takes no configuration: use {}",
            ));
        }
        Ok(TemplateSource {
            keys: RwLock::new(BTreeMap::new()),
            host,
        })
    }

    fn log(&self, message: String) {
        self.host.log(LogLevel::Info, message.as_str().into());
    }

    /// Runs `f` on the key `name`, after the checks every operation makes in the
    /// documented order: it exists, it is enabled, its usage allows `op`.
    fn with_key<T>(
        &self,
        name: &str,
        op: Operation,
        f: impl FnOnce(&Key) -> Result<T, KeySourceError>,
    ) -> Result<T, KeySourceError> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let key = keys
            .get(name)
            .ok_or_else(|| KeySourceError::not_found(name))?;
        KeySourceError::check_use(name, key.info.enabled, key.info.usage, op)?;
        f(key)
    }
}

impl KeySourceImpl for TemplateSource {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            vendor: "keyhold".into(),
            model: MODEL.into(),
        }
    }

    fn health(&self) -> Vec<EkmNode> {
        vec![EkmNode {
            id: "template-0".into(),
            model: MODEL.into(),
            status: HealthStatus::Active,
        }]
    }

    fn list_keys(&self) -> Result<Vec<KeyInfo>, KeySourceError> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        Ok(keys.values().map(|k| k.info.clone()).collect())
    }

    fn get_key(&self, name: &str) -> Result<KeyInfo, KeySourceError> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        keys.get(name)
            .map(|k| k.info.clone())
            .ok_or_else(|| KeySourceError::not_found(name))
    }

    fn create_key(&self, spec: NewKey) -> Result<KeyInfo, KeySourceError> {
        check_name(&spec.name)?;
        if !KeyUsage::ALL.contains(spec.usage) {
            return Err(KeySourceError::invalid_input("unknown key usage bits"));
        }
        if spec.exportable {
            return Err(KeySourceError::Unsupported {
                reason: "keys of this source are never exportable".into(),
            });
        }
        let mut material = Zeroizing::new([0u8; 32]);
        random(&mut material[..])?;
        let info = KeyInfo {
            name: spec.name.clone(),
            bits: 256,
            usage: spec.usage,
            enabled: true,
            exportable: false,
            deletable: spec.deletable,
            attributes: Vec::new().into(),
        };
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        if keys.contains_key(spec.name.as_str()) {
            return Err(KeySourceError::AlreadyExists {
                key: spec.name.clone(),
            });
        }
        keys.insert(
            spec.name.to_string(),
            Key {
                material,
                info: info.clone(),
            },
        );
        drop(keys);
        self.log(format!("template: created key '{}'", spec.name));
        Ok(info)
    }

    fn delete_key(&self, name: &str) -> Result<(), KeySourceError> {
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        match keys.get(name) {
            None => return Err(KeySourceError::not_found(name)),
            Some(key) if !key.info.deletable => {
                return Err(KeySourceError::InvalidKey {
                    key: name.into(),
                    problems: vec!["the key is not deletable".into()].into(),
                });
            }
            Some(_) => keys.remove(name),
        };
        drop(keys);
        self.log(format!("template: deleted key '{name}'"));
        Ok(())
    }

    fn set_enabled(&self, name: &str, enabled: bool) -> Result<KeyInfo, KeySourceError> {
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        let key = keys
            .get_mut(name)
            .ok_or_else(|| KeySourceError::not_found(name))?;
        key.info.enabled = enabled;
        Ok(key.info.clone())
    }

    fn validate_health_check_key(&self, name: &str) -> Result<(), KeySourceError> {
        let info = self.get_key(name)?;
        let mut problems = Vec::new();
        for usage in info.usage.missing(KeyUsage::ALL) {
            problems.push(format!("the key must allow {}", usage.to_lowercase()));
        }
        if info.deletable {
            problems.push("the key must not be deletable".into());
        }
        KeySourceError::check_key(name, problems)
    }

    fn encrypt(
        &self,
        name: &str,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Encrypted, KeySourceError> {
        self.with_key(name, Operation::Encrypt, |key| {
            let mut iv = [0u8; 12];
            random(&mut iv)?;
            let mut ciphertext = plaintext.to_vec();
            let tag = Aes256Gcm::new(GenericArray::from_slice(&key.material[..]))
                .encrypt_in_place_detached(GenericArray::from_slice(&iv), aad, &mut ciphertext)
                .map_err(|_| KeySourceError::invalid_input("plaintext or AAD too long"))?;
            Ok(Encrypted {
                iv: iv.to_vec().into(),
                ciphertext: ciphertext.into(),
                tag: tag.to_vec().into(),
            })
        })
    }

    fn decrypt(&self, name: &str, input: DecryptInput<'_>) -> Result<Vec<u8>, KeySourceError> {
        self.with_key(name, Operation::Decrypt, |key| {
            let (iv, tag) = (input.iv.as_slice(), input.tag.as_slice());
            if tag.len() != 16 {
                return Err(KeySourceError::invalid_input("tags have 16 bytes"));
            }
            let mut plaintext = input.ciphertext.to_vec();
            let key = GenericArray::from_slice(&key.material[..]);
            let tag = GenericArray::from_slice(tag);
            let verified = match iv.len() {
                12 => Aes256Gcm::new(key).decrypt_in_place_detached(
                    GenericArray::from_slice(iv),
                    input.aad.as_slice(),
                    &mut plaintext,
                    tag,
                ),
                16 => AesGcm::<Aes256, U16>::new(key).decrypt_in_place_detached(
                    GenericArray::from_slice(iv),
                    input.aad.as_slice(),
                    &mut plaintext,
                    tag,
                ),
                _ => return Err(KeySourceError::invalid_input("IVs have 12 or 16 bytes")),
            };
            verified.map_err(|_| KeySourceError::InvalidCiphertext)?;
            Ok(plaintext)
        })
    }
}
