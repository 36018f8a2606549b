//! PKCS#11 plumbing: the process-wide module registry, the session pool, error
//! classification and the pure AES-GCM helpers.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Condvar, Mutex, MutexGuard, OnceLock},
    time::{Duration, Instant},
};

use cryptoki::{
    context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11},
    error::{Error, RvError},
    mechanism::{Mechanism, aead::GcmParams},
    object::ObjectHandle,
    session::{Session, SessionState},
    slot::Slot,
};
use keyhold_sdk::KeySourceError;

use crate::{config::PinSource, login::LoginKey, token};

/// Length of the GCM authentication tag, in bytes.
pub const TAG_LEN: usize = 16;
/// Length of the IVs this plugin generates, in bytes.
pub const IV_LEN: usize = 12;

/// Locks a mutex, ignoring poisoning (the protected data stays consistent: every
/// critical section here is a few assignments).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A loaded module: its context and the `module_env` it was initialised with.
type Loaded = (Pkcs11, Vec<(String, String)>);

/// The loaded modules of this process, by path: one [`Pkcs11`] (and one
/// `C_Initialize`) per module, shared by every key source using it.
fn modules() -> &'static Mutex<HashMap<PathBuf, Loaded>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Loaded>>> = OnceLock::new();
    MODULES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The `module_env` the module at `path` was initialised with in this process, when
/// it differs from `env` (a module reads its environment once, in `C_Initialize`, and
/// cannot be re-initialised in-process).
pub fn initialised_with_other_env(
    path: &Path,
    env: &[(String, String)],
) -> Option<Vec<(String, String)>> {
    let map = lock(modules());
    let (_, first) = map.get(path)?;
    (first.as_slice() != env).then(|| first.clone())
}

/// Loads and initializes the PKCS#11 module at `path`, once per process, after
/// checking that the process environment already holds `env` (name, value): it is
/// never changed at run time (`setenv` is not safe while other threads run), a
/// difference is refused ([`crate::config::check_module_env`]), on every call. Later
/// callers share the same context.
///
/// `CKR_CRYPTOKI_ALREADY_INITIALIZED` is accepted: another copy of this code (a test,
/// another plugin library) may have initialized the module in this process.
pub fn module(path: &Path, env: &[(String, String)]) -> Result<Pkcs11, KeySourceError> {
    // Never set here: see config::check_module_env.
    crate::config::check_module_env(env)?;
    let mut map = lock(modules());
    if let Some((ctx, _)) = map.get(path) {
        return Ok(ctx.clone());
    }
    if !path.is_file() {
        return Err(KeySourceError::invalid_input(format!(
            "PKCS#11 module file '{}' does not exist or is not a file",
            path.display()
        )));
    }
    let ctx = Pkcs11::new(path).map_err(|e| {
        KeySourceError::invalid_input(format!(
            "cannot load PKCS#11 module '{}': {e}",
            path.display()
        ))
    })?;
    initialize(&ctx).map_err(|e| {
        KeySourceError::unavailable(format!(
            "C_Initialize of PKCS#11 module '{}' failed: {e}",
            path.display()
        ))
    })?;
    map.insert(path.to_path_buf(), (ctx.clone(), env.to_vec()));
    Ok(ctx)
}

fn initialize(ctx: &Pkcs11) -> Result<(), Error> {
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The PKCS#11 return code of an error, if it is one.
pub fn rv(e: &Error) -> Option<RvError> {
    match e {
        Error::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

/// Whether an error means the session (or the login, or the token behind it) is no
/// longer usable: the session is dropped and the operation retried once on a fresh,
/// logged-in session.
pub fn is_session_error(e: &Error) -> bool {
    matches!(
        rv(e),
        Some(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::UserNotLoggedIn
                | RvError::DeviceError
                | RvError::DeviceRemoved
                | RvError::DeviceMemory
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::SlotIdInvalid
                | RvError::CryptokiNotInitialized
        )
    )
}

/// Whether an error means a cached object handle is stale.
pub fn is_handle_error(e: &Error) -> bool {
    matches!(
        rv(e),
        Some(RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid)
    )
}

/// Checks that `session` is still logged in as the user. A session whose login was
/// lost (e.g. `C_Logout` or the last session closed by someone else) sees no private
/// objects: searches come back empty and old handles are "invalid", so an empty search
/// must be told apart from a lost login. A lost login is reported as
/// `CKR_USER_NOT_LOGGED_IN` (a session error: the pool logs in again and retries).
pub fn ensure_logged_in(session: &Session) -> Result<(), Error> {
    match session.get_session_info()?.session_state() {
        SessionState::RoUser | SessionState::RwUser => Ok(()),
        _ => Err(Error::Pkcs11(
            RvError::UserNotLoggedIn,
            Function::GetSessionInfo,
        )),
    }
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn os_random(buf: &mut [u8]) -> Result<(), KeySourceError> {
    use std::io::Read;
    static URANDOM: OnceLock<Result<std::fs::File, String>> = OnceLock::new();
    let file = URANDOM
        .get_or_init(|| std::fs::File::open("/dev/urandom").map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| KeySourceError::internal(format!("cannot open /dev/urandom: {e}")))?;
    let mut reader: &std::fs::File = file;
    reader
        .read_exact(buf)
        .map_err(|e| KeySourceError::internal(format!("cannot read /dev/urandom: {e}")))
}

/// Bytes of OS randomness a thread draws at once for IVs (32 IVs): one `read` of
/// `/dev/urandom` per 32 encryptions instead of one per encryption.
const IV_BATCH: usize = IV_LEN * 32;

/// Fills `iv` (at most [`IV_BATCH`] bytes) with bytes from the OS CSPRNG, drawn in
/// batches per thread. Each byte is used once; IVs are not secret (they travel with the
/// ciphertext), and the batch never leaves the thread.
pub fn random_iv(iv: &mut [u8]) -> Result<(), KeySourceError> {
    use std::cell::RefCell;
    thread_local! {
        static BATCH: RefCell<([u8; IV_BATCH], usize)> = const { RefCell::new(([0; IV_BATCH], IV_BATCH)) };
    }
    if iv.len() > IV_BATCH {
        return os_random(iv);
    }
    BATCH.with(|b| {
        let mut b = b.borrow_mut();
        let (buf, used) = &mut *b;
        if IV_BATCH - *used < iv.len() {
            os_random(buf)?;
            *used = 0;
        }
        iv.copy_from_slice(&buf[*used..*used + iv.len()]);
        // Wiped as used: no IV stays in memory to be handed out twice.
        buf[*used..*used + iv.len()].fill(0);
        *used += iv.len();
        Ok(())
    })
}

/// AES-GCM encryption with `CKM_AES_GCM` and a 128-bit tag. `iv` goes in as the IV
/// to use and comes back as the IV the token used (a module may write its own IV
/// into the buffer). Returns `(ciphertext, tag)`.
pub fn gcm_encrypt(
    session: &Session,
    key: ObjectHandle,
    iv: &mut [u8],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let params = GcmParams::new(iv, aad, ((TAG_LEN * 8) as u64).into())?;
    let mut out = session.encrypt(&Mechanism::AesGcm(params), key, plaintext)?;
    if out.len() != plaintext.len() + TAG_LEN {
        return Err(Error::InvalidValue);
    }
    let tag = out.split_off(plaintext.len());
    Ok((out, tag))
}

/// AES-GCM decryption with `CKM_AES_GCM` and a 128-bit tag. Errors are the module's;
/// classify them with [`decrypt_error`].
pub fn gcm_decrypt(
    session: &Session,
    key: ObjectHandle,
    iv: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, Error> {
    let mut iv = iv.to_vec();
    let params = GcmParams::new(&mut iv, aad, ((tag.len() * 8) as u64).into())?;
    let mut input = Vec::with_capacity(ciphertext.len() + tag.len());
    input.extend_from_slice(ciphertext);
    input.extend_from_slice(tag);
    session.decrypt(&Mechanism::AesGcm(params), key, &input)
}

/// Whether a decryption error is a failed authentication (tag mismatch), whatever code
/// the module uses for it: SoftHSM2 answers `CKR_GENERAL_ERROR` for a wrong tag or AAD,
/// others `CKR_ENCRYPTED_DATA_INVALID` or `CKR_ENCRYPTED_DATA_LEN_RANGE`. Session,
/// handle and permission errors are not.
pub fn decrypt_error(e: &Error) -> bool {
    if is_session_error(e) || is_handle_error(e) {
        return false;
    }
    matches!(
        rv(e),
        Some(
            RvError::EncryptedDataInvalid
                | RvError::EncryptedDataLenRange
                | RvError::GeneralError
                | RvError::FunctionFailed
                | RvError::DataInvalid
                | RvError::DataLenRange
        )
    )
}

/// A failure inside a pooled operation: a module error (classified by the pool) or a
/// key-source error already decided by the operation.
#[derive(Debug)]
pub enum Fail {
    /// The module returned an error.
    Ck(Error),
    /// The operation decided the outcome.
    Ks(KeySourceError),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::Ck(e)
    }
}

impl From<KeySourceError> for Fail {
    fn from(e: KeySourceError) -> Fail {
        Fail::Ks(e)
    }
}

/// Turns a module error into a key-source error.
pub fn ck_error(what: &str, e: &Error) -> KeySourceError {
    if is_session_error(e) {
        KeySourceError::unavailable(format!("{what}: {e}"))
    } else {
        KeySourceError::internal(format!("{what}: {e}"))
    }
}

struct PoolState {
    idle: Vec<Session>,
    /// Sessions open (idle or leased) of the current and older generations.
    open: usize,
    /// Bumped whenever the sessions are found invalid: leased sessions of an older
    /// generation are closed when they come back.
    generation: u64,
    /// The slot of the token, as last found (re-found after an invalidation).
    slot: Option<Slot>,
    /// Callers waiting for a session: a returned session wakes one only when there is
    /// one (a condition variable's notify is a system call even with no waiter).
    waiting: usize,
}

/// A bounded pool of logged-in read-write sessions on one token, found by label.
pub struct SessionPool {
    ctx: Pkcs11,
    token_label: String,
    /// The module and token, for the process-wide login registry ([`crate::login`]).
    login_key: LoginKey,
    /// This pool's number in the login registry.
    holder: u64,
    /// Where the PIN is read for each login; the PIN itself is never kept.
    pin: PinSource,
    size: usize,
    timeout: Duration,
    state: Mutex<PoolState>,
    available: Condvar,
}

/// A session leased from a [`SessionPool`]; it goes back to the pool when dropped
/// (or is closed, when marked broken or when the pool was invalidated meanwhile).
pub struct Lease<'a> {
    pool: &'a SessionPool,
    session: Option<Session>,
    generation: u64,
    broken: bool,
}

impl Lease<'_> {
    /// The leased session.
    pub fn session(&self) -> &Session {
        // Invariant: `session` is Some until drop.
        self.session
            .as_ref()
            .unwrap_or_else(|| unreachable!("lease without a session"))
    }

    /// Marks the session unusable: it is closed instead of returned.
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let mut st = lock(&self.pool.state);
        // A session to close is closed outside the lock.
        let closing = if self.broken || self.generation != st.generation {
            st.open = st.open.saturating_sub(1);
            Some(session)
        } else {
            st.idle.push(session);
            None
        };
        let waiting = st.waiting > 0;
        drop(st);
        drop(closing);
        if waiting {
            self.pool.available.notify_one();
        }
    }
}

impl SessionPool {
    /// A pool of at most `size` sessions on the token labelled `token_label`; a caller
    /// waits at most `timeout` for a free one.
    pub fn new(
        ctx: Pkcs11,
        module: &Path,
        token_label: &str,
        pin: PinSource,
        size: usize,
        timeout: Duration,
    ) -> SessionPool {
        SessionPool {
            ctx,
            token_label: token_label.to_string(),
            login_key: LoginKey {
                module: module.to_path_buf(),
                label: token_label.to_string(),
            },
            holder: crate::login::new_holder(),
            pin,
            size: size.max(1),
            timeout,
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
                generation: 0,
                slot: None,
                waiting: 0,
            }),
            available: Condvar::new(),
        }
    }

    /// The module context.
    pub fn context(&self) -> &Pkcs11 {
        &self.ctx
    }

    /// The token label.
    pub fn token_label(&self) -> &str {
        &self.token_label
    }

    /// The module path.
    pub fn module_path(&self) -> &Path {
        &self.login_key.module
    }

    /// Leases a session: an idle one, a newly opened one while fewer than `size` are
    /// open, or the first one returned within the timeout
    /// ([`KeySourceError::Timeout`] otherwise).
    pub fn acquire(&self) -> Result<Lease<'_>, Fail> {
        let deadline = Instant::now() + self.timeout;
        let mut st = lock(&self.state);
        loop {
            if let Some(session) = st.idle.pop() {
                return Ok(Lease {
                    pool: self,
                    session: Some(session),
                    generation: st.generation,
                    broken: false,
                });
            }
            if st.open < self.size {
                st.open += 1;
                let generation = st.generation;
                let slot = st.slot;
                drop(st);
                return match self.open_session(slot) {
                    Ok((session, slot)) => {
                        let mut st = lock(&self.state);
                        if st.generation == generation {
                            st.slot = Some(slot);
                        }
                        Ok(Lease {
                            pool: self,
                            session: Some(session),
                            generation,
                            broken: false,
                        })
                    }
                    Err(e) => {
                        let mut st = lock(&self.state);
                        st.open = st.open.saturating_sub(1);
                        drop(st);
                        self.available.notify_one();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Fail::Ks(KeySourceError::Timeout {
                    reason: format!(
                        "no PKCS#11 session of token '{}' became free within {} ms \
                         (pool of {})",
                        self.token_label,
                        self.timeout.as_millis(),
                        self.size
                    )
                    .into(),
                }));
            }
            st.waiting += 1;
            st = self
                .available
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
            st.waiting -= 1;
        }
    }

    /// Forgets every idle session and the slot: called when the module reports that
    /// sessions or the token are gone. Leased sessions are closed when returned.
    pub fn invalidate(&self) {
        let mut st = lock(&self.state);
        let idle = std::mem::take(&mut st.idle);
        st.open = st.open.saturating_sub(idle.len());
        st.generation += 1;
        st.slot = None;
        drop(st);
        drop(idle);
        self.available.notify_all();
    }

    fn open_session(&self, slot: Option<Slot>) -> Result<(Session, Slot), Fail> {
        if let Some(slot) = slot {
            match self.open_on(slot) {
                Ok(session) => return Ok((session, slot)),
                Err(Fail::Ck(e)) if is_session_error(&e) => {}
                Err(e) => return Err(e),
            }
        }
        let module = self.module_path();
        let slot = match token::find(&self.ctx, module, &self.token_label) {
            Ok(found) => found,
            Err(e) if rv(&e) == Some(RvError::CryptokiNotInitialized) => {
                initialize(&self.ctx)?;
                token::find(&self.ctx, module, &self.token_label)?
            }
            Err(e) => return Err(Fail::Ck(e)),
        };
        let Some((slot, _)) = slot else {
            return Err(Fail::Ks(KeySourceError::unavailable(format!(
                "no token labelled '{}' is present",
                self.token_label
            ))));
        };
        Ok((self.open_on(slot)?, slot))
    }

    /// Opens a session on `slot` and logs it in with the PIN, read from its source for
    /// this login and wiped when it returns. The PIN is checked even when the token is
    /// already logged in ([`crate::login`]).
    fn open_on(&self, slot: Slot) -> Result<Session, Fail> {
        let session = self.ctx.open_rw_session(slot)?;
        let pin = self.pin.read()?;
        crate::login::login(&session, &pin, &self.login_key, self.holder)?;
        drop(pin);
        Ok(session)
    }

    /// Runs `op` on a leased session. When the module reports the session, login or
    /// token gone, the session is dropped, the pool invalidated, and `op` retried once
    /// on a freshly opened session (the token re-found by label, logged in again).
    pub fn run<T>(
        &self,
        what: &str,
        mut op: impl FnMut(&Session) -> Result<T, Fail>,
    ) -> Result<T, KeySourceError> {
        let mut last = None;
        for _attempt in 0..2 {
            let mut lease = match self.acquire() {
                Ok(lease) => lease,
                Err(Fail::Ks(e)) => return Err(e),
                Err(Fail::Ck(e)) => return Err(open_error(&self.token_label, &e)),
            };
            match op(lease.session()) {
                Ok(v) => return Ok(v),
                Err(Fail::Ks(e)) => return Err(e),
                Err(Fail::Ck(e)) if is_session_error(&e) => {
                    lease.mark_broken();
                    drop(lease);
                    self.invalidate();
                    last = Some(e);
                }
                Err(Fail::Ck(e)) => return Err(ck_error(what, &e)),
            }
        }
        Err(match last {
            Some(e) => {
                KeySourceError::unavailable(format!("{what} on token '{}': {e}", self.token_label))
            }
            None => KeySourceError::internal(format!("{what}: no attempt made")),
        })
    }
}

impl Drop for SessionPool {
    /// Closes the idle sessions, then releases this pool's hold on the token's login.
    fn drop(&mut self) {
        let idle = std::mem::take(&mut lock(&self.state).idle);
        drop(idle);
        crate::login::release(self.holder);
    }
}

/// Describes a failure to open or log in a session (never naming the PIN).
pub fn open_error(label: &str, e: &Error) -> KeySourceError {
    match rv(e) {
        Some(RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange) => {
            KeySourceError::invalid_input(format!(
                "login to token '{label}' refused: the configured PIN is incorrect ({e}); \
                 if the PIN was changed on the token while keyhold runs, note that some \
                 modules (SoftHSM2 among them) read a token's PIN once per process: \
                 restart keyhold to use the new one"
            ))
        }
        Some(RvError::PinLocked | RvError::PinExpired | RvError::UserPinNotInitialized) => {
            KeySourceError::invalid_input(format!("login to token '{label}' refused: {e}"))
        }
        _ => KeySourceError::unavailable(format!("cannot open a session on token '{label}': {e}")),
    }
}

#[cfg(test)]
mod tests;
