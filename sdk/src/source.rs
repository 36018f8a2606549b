//! The key-source interface: the FFI-safe [`KeySource`] (with the rules every source
//! follows) and the plain Rust [`KeySourceImpl`] a plugin author implements.

use abi_stable::{
    sabi_trait,
    std_types::{RBox, RResult, RSlice, RStr, RVec},
};

use crate::{DecryptInput, EkmNode, Encrypted, KeyInfo, KeySourceError, NewKey, SourceInfo};

/// An opened key source, as seen across the plugin boundary.
///
/// Plugin authors do not implement this trait directly: implement [`KeySourceImpl`] and
/// let [`crate::export_plugin!`] (through [`crate::guard`]) wrap it, which keeps panics
/// inside the plugin. Hosts hold it as [`KeySourceBox`]. The rules below are what the
/// host relies on and what [`crate::conformance`] checks.
///
/// # Key names
/// A key is named by its *source key name*, passed as the `name` argument byte for byte:
/// the key's `source_key` in keyhold's configuration, which defaults to the XKS external
/// key id (the `{keyId}` of `/kms/xks/v1/keys/{keyId}/encrypt`: 1 to 128 characters of
/// `A-Z a-z 0-9 . _ -`), and for a key store's health-check key its configured
/// `health_check_key`. Names are case-sensitive and never transformed: the source
/// stores, finds and lists a key under exactly that name (an HSM: as its label), never
/// by a handle that could change between processes. A name the key manager cannot hold
/// (e.g. longer than its label limit, or with characters it refuses) is refused by
/// [`KeySource::create_key`] with [`KeySourceError::InvalidInput`] naming the limit,
/// never truncated or rewritten (two names would then share one key).
///
/// # Order of checks
/// [`KeySource::encrypt`] and [`KeySource::decrypt`] check, in this order, and answer
/// the first that fails:
/// 1. the key exists: [`KeySourceError::NotFound`];
/// 2. the key is enabled: [`KeySourceError::Disabled`];
/// 3. the key's usage allows the operation ([`crate::KeyUsage::ENCRYPT`] /
///    [`crate::KeyUsage::DECRYPT`]): [`KeySourceError::KeyUsage`];
/// 4. the input lengths (decrypt: IV of 12 or 16 bytes, tag of 16 bytes):
///    [`KeySourceError::InvalidInput`];
/// 5. the tag verifies: [`KeySourceError::InvalidCiphertext`], whatever the key manager
///    calls the failure.
///
/// # IVs
/// Encryption generates a fresh IV inside the source for every call, from a CSPRNG (or
/// the HSM's generator): 12 bytes (recommended) or 16. Decryption accepts IVs of 12 and
/// of 16 bytes (AWS KMS may hand back a 16-byte IV made by another proxy) and refuses
/// any other length. Tags are always 16 bytes.
///
/// # What a source refuses itself
/// The XKS layer of the host validates what AWS KMS sends (base64, at most 4300 bytes of
/// plaintext and 8192 of AAD, IV and tag lengths) before calling, but a source is also
/// called by the admin API, by the conformance kit and by other hosts, so it refuses on
/// its own: IV and tag lengths as above ([`KeySourceError::InvalidInput`]); an empty
/// name or one it cannot hold, and usage bits outside [`crate::KeyUsage::ALL`], at
/// creation ([`KeySourceError::InvalidInput`]); `exportable: true` when it cannot keep
/// that promise ([`KeySourceError::Unsupported`]); its own configuration, in `open`
/// ([`KeySourceError::InvalidInput`]). Empty plaintext and empty AAD are valid.
///
/// # Where key material may be
/// Key material is generated inside the source and never leaves it: not in return
/// values, errors, log messages, [`KeyInfo::attributes`], nor the host's key-value store
/// in the clear. A source that keeps software keys (like `ctm`) stores them only
/// wrapped under a key the host never sees. Material held in the plugin's memory is
/// wiped on drop (e.g. `zeroize`). Plaintext returned by decrypt is zeroized by the host.
///
/// # Caching
/// A source may cache key records (handles, attributes, unwrapped material) in memory,
/// but the truth is the key manager and the host's key-value store, which other keyhold
/// nodes (and other instances of the same source) change: a cached record is trusted for
/// a short, bounded time only (ctm: 2 seconds), so that disabling or deleting a key on
/// one node takes effect everywhere within that bound. Changes (enable/disable, delete)
/// re-read the current record and write with [`crate::Host::kv_compare_and_swap`] or
/// [`crate::Host::kv_create`], never a blind [`crate::Host::kv_put`] of a record read
/// earlier.
///
/// # Threads and time
/// Methods are called concurrently from a bounded pool of blocking threads, each call
/// under a deadline; they may block on I/O (an HSM, a network KMS) but should honour
/// their own timeouts ([`KeySourceError::Timeout`]). Never log key material or plaintext.
#[sabi_trait]
pub trait KeySource: Send + Sync {
    /// Who serves this key source (vendor and model), for XKS health responses.
    fn info(&self) -> SourceInfo;

    /// The external key managers behind this source (1..=10 entries) and their health,
    /// reported as `ekmFleetDetails`. A source that cannot reach its key manager reports
    /// [`crate::HealthStatus::Unavailable`] rather than failing.
    fn health(&self) -> RVec<EkmNode>;

    /// Every key of this source, named as they were created.
    fn list_keys(&self) -> RResult<RVec<KeyInfo>, KeySourceError>;

    /// One key by name; [`KeySourceError::NotFound`] when there is none.
    fn get_key(&self, name: RStr<'_>) -> RResult<KeyInfo, KeySourceError>;

    /// Generates a new AES-256 key inside the source, named `spec.name` exactly. The key
    /// material never leaves it. [`KeySourceError::AlreadyExists`] when the name is taken
    /// (also when another node created it a moment earlier), leaving that key unchanged.
    fn create_key(&self, spec: NewKey) -> RResult<KeyInfo, KeySourceError>;

    /// Deletes a key; [`KeySourceError::InvalidKey`] when the key is not deletable
    /// (leaving it unchanged), [`KeySourceError::NotFound`] when there is none.
    fn delete_key(&self, name: RStr<'_>) -> RResult<(), KeySourceError>;

    /// Enables or disables a key for cryptographic use, leaving every other attribute
    /// as it is, so that re-enabling restores exactly the previous behaviour. Returns the
    /// key as it is afterwards.
    fn set_enabled(&self, name: RStr<'_>, enabled: bool) -> RResult<KeyInfo, KeySourceError>;

    /// Checks that a key may serve as a key store's health-check key under this
    /// source's rules (ctm: non-exportable, non-deletable, all four usages). Refuses
    /// with [`KeySourceError::InvalidKey`], whose `problems` name every attribute that is
    /// wrong (a missing usage is named by its usage, e.g. "wrap");
    /// [`KeySourceError::NotFound`] when there is no such key.
    fn validate_health_check_key(&self, name: RStr<'_>) -> RResult<(), KeySourceError>;

    /// AES-256-GCM encryption with a fresh IV generated inside the source. The
    /// ciphertext has the plaintext's length; the tag is 16 bytes. See "Order of checks".
    fn encrypt(
        &self,
        name: RStr<'_>,
        plaintext: RSlice<'_, u8>,
        aad: RSlice<'_, u8>,
    ) -> RResult<Encrypted, KeySourceError>;

    /// AES-256-GCM decryption. A tag that does not verify (wrong key, AAD, IV,
    /// ciphertext or tag) is [`KeySourceError::InvalidCiphertext`], whatever the key
    /// manager calls it. The host zeroizes the returned plaintext after use. See "Order
    /// of checks".
    #[sabi(last_prefix_field)]
    fn decrypt(&self, name: RStr<'_>, input: DecryptInput<'_>)
    -> RResult<RVec<u8>, KeySourceError>;
}

/// An owned, FFI-safe [`KeySource`] object: what `open` returns and the host keeps.
pub type KeySourceBox = KeySource_TO<'static, RBox<()>>;

/// The plain Rust trait a plugin author implements for a key source.
///
/// Same operations and rules as [`KeySource`], with ordinary Rust types.
/// [`crate::guard`] turns it into a [`KeySourceBox`] whose every call is protected by
/// `catch_unwind`.
pub trait KeySourceImpl: Send + Sync + 'static {
    /// See [`KeySource::info`].
    fn info(&self) -> SourceInfo;
    /// See [`KeySource::health`].
    fn health(&self) -> Vec<EkmNode>;
    /// See [`KeySource::list_keys`].
    fn list_keys(&self) -> Result<Vec<KeyInfo>, KeySourceError>;
    /// See [`KeySource::get_key`].
    fn get_key(&self, name: &str) -> Result<KeyInfo, KeySourceError>;
    /// See [`KeySource::create_key`].
    fn create_key(&self, spec: NewKey) -> Result<KeyInfo, KeySourceError>;
    /// See [`KeySource::delete_key`].
    fn delete_key(&self, name: &str) -> Result<(), KeySourceError>;
    /// See [`KeySource::set_enabled`].
    fn set_enabled(&self, name: &str, enabled: bool) -> Result<KeyInfo, KeySourceError>;
    /// See [`KeySource::validate_health_check_key`].
    fn validate_health_check_key(&self, name: &str) -> Result<(), KeySourceError>;
    /// See [`KeySource::encrypt`].
    fn encrypt(
        &self,
        name: &str,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Encrypted, KeySourceError>;
    /// See [`KeySource::decrypt`]. Return the plaintext in a buffer the caller zeroizes.
    fn decrypt(&self, name: &str, input: DecryptInput<'_>) -> Result<Vec<u8>, KeySourceError>;
}
