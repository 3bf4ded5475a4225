//! A CA key held in a PKCS#11 token (an HSM; SoftHSM2 in tests). The
//! private key never leaves the token: the CA hands it bytes to sign and
//! gets a signature back, which it verifies with the public key before
//! anything leaves the CA. Ed25519 only (CKM_EDDSA): SoftHSM2 2.6.1 as
//! Debian ships it signs with it, checked against OpenSSL and ssh-keygen.
//!
//! PKCS#11 sessions must not be used by two threads at once, so signing
//! takes a session from a small pool (opening one when the pool is empty)
//! and gives it back only after it worked: a session that failed is
//! dropped, and the next signature opens a fresh one, so a token that
//! comes back is used again while a dead one fails every signature
//! (nothing is issued, the caller gets an error).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use ssh_key::certificate::Builder;
use ssh_key::public::{Ed25519PublicKey, KeyData};
use ssh_key::{Algorithm, Certificate, HashAlg, PublicKey, SshSig};

use super::{CaSigner, SignError};

/// Where the key is: what `[ca_key] kind = "pkcs11"` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenKeyConfig {
    /// The vendor's PKCS#11 module (a shared library).
    pub module: PathBuf,
    /// The token's label (`softhsm2-util --show-slots`, `pkcs11-tool -L`).
    pub token_label: String,
    /// CKA_LABEL of the key pair on the token.
    pub key_label: String,
    /// File holding the user PIN, mode 0600 (never in the config).
    pub pin_file: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum Pkcs11Error {
    #[error("loading the PKCS#11 module {path}")]
    Module {
        path: PathBuf,
        #[source]
        source: CkError,
    },
    #[error("reading the token PIN")]
    Pin(#[source] crate::ca_key::CaKeyError),
    #[error("no token labelled {0:?} is present")]
    NoToken(String),
    #[error("no key pair labelled {key:?} on token {token:?}")]
    NoKey { token: String, key: String },
    #[error("a key labelled {key:?} already exists on token {token:?}")]
    KeyExists { token: String, key: String },
    #[error("the key {0:?} is not an Ed25519 (CKK_EC_EDWARDS over edwards25519) key")]
    NotEd25519(String),
    #[error("the key {0:?} can leave the token (extractable or not sensitive); a CA key must not")]
    Extractable(String),
    #[error("the token's signature does not verify with the public key labelled {0:?}")]
    Mismatch(String),
    #[error("PKCS#11 {op} failed")]
    Token {
        op: &'static str,
        #[source]
        source: CkError,
    },
}

fn poisoned() -> Pkcs11Error {
    Pkcs11Error::Token {
        op: "locking the session pool",
        source: CkError::InvalidValue,
    }
}

fn ck(op: &'static str) -> impl FnOnce(CkError) -> Pkcs11Error {
    move |source| Pkcs11Error::Token { op, source }
}

/// DER of the edwards25519 OID (1.3.101.112), the CKA_EC_PARAMS we write.
const ED25519_OID: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];
/// The same curve as a PrintableString, which pkcs11-tool writes.
const ED25519_NAME: &[u8] = b"\x13\x0cedwards25519";

const PROBE: &[u8] = b"jit-ssh pkcs11 probe";

/// Idle sessions kept open; more are opened (and closed after use) when
/// more threads sign at once.
const POOL: usize = 8;

/// The opened module and token, logged in.
struct Token {
    ctx: Pkcs11,
    label: String,
    /// Found again by label when opening a session fails: a token put
    /// back may sit in another slot.
    slot: Mutex<Slot>,
    pin: AuthPin,
}

impl Token {
    fn open(cfg: &TokenKeyConfig) -> Result<Self, Pkcs11Error> {
        let pin = crate::ca_key::read_passphrase(&cfg.pin_file).map_err(Pkcs11Error::Pin)?;
        let ctx = context(&cfg.module)?;
        let slot = find_token(&ctx, &cfg.token_label)?;
        Ok(Self {
            ctx,
            label: cfg.token_label.clone(),
            slot: Mutex::new(slot),
            pin: AuthPin::from(pin),
        })
    }

    /// A new session, logged in as the user (login is per token: the
    /// first session's login covers the others).
    fn session(&self) -> Result<Session, Pkcs11Error> {
        let mut slot = self.slot.lock().map_err(|_| poisoned())?;
        let s = match self.ctx.open_rw_session(*slot) {
            Ok(s) => s,
            Err(first) => {
                tracing::warn!(error = %first, "opening a PKCS#11 session failed; looking for the token again");
                *slot = find_token(&self.ctx, &self.label)?;
                self.ctx
                    .open_rw_session(*slot)
                    .map_err(ck("C_OpenSession"))?
            }
        };
        drop(slot);
        match s.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(s),
            Err(e) => Err(ck("C_Login")(e)),
        }
    }
}

/// One initialised context per module for the whole process: PKCS#11
/// allows one C_Initialize per process (a second answers
/// CKR_CRYPTOKI_ALREADY_INITIALIZED), and the user and the host CA key may
/// sit on the same module. Contexts are opened once and never finalised
/// (C_Finalize would end every signer's sessions).
fn context(module: &Path) -> Result<Pkcs11, Pkcs11Error> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let err = |source| Pkcs11Error::Module {
        path: module.to_owned(),
        source,
    };
    let mut map = CONTEXTS
        .get_or_init(Default::default)
        .lock()
        .map_err(|_| err(CkError::InvalidValue))?;
    if let Some(ctx) = map.get(module) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(module).map_err(err)?;
    // Several threads sign at once: let the module lock with the OS.
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(err(e)),
    }
    map.insert(module.to_owned(), ctx.clone());
    Ok(ctx)
}

fn find_token(ctx: &Pkcs11, label: &str) -> Result<Slot, Pkcs11Error> {
    for slot in ctx.get_slots_with_token().map_err(ck("C_GetSlotList"))? {
        // A slot whose token went bad answers an error: not ours to fail on.
        let Ok(info) = ctx.get_token_info(slot) else {
            continue;
        };
        if info.label().trim_end() == label {
            return Ok(slot);
        }
    }
    Err(Pkcs11Error::NoToken(label.to_owned()))
}

fn find_one(
    s: &Session,
    class: ObjectClass,
    label: &str,
) -> Result<Option<ObjectHandle>, Pkcs11Error> {
    let found = s
        .find_objects(&[Attribute::Class(class), Attribute::Label(label.into())])
        .map_err(ck("C_FindObjects"))?;
    Ok(found.into_iter().next())
}

/// The Ed25519 public key of the pair labelled `label`.
fn read_public(s: &Session, label: &str) -> Result<PublicKey, Pkcs11Error> {
    let not_ed = || Pkcs11Error::NotEd25519(label.to_owned());
    let obj = find_one(s, ObjectClass::PUBLIC_KEY, label)?.ok_or_else(|| Pkcs11Error::NoKey {
        token: String::new(),
        key: label.to_owned(),
    })?;
    let attrs = s
        .get_attributes(obj, &[AttributeType::EcParams, AttributeType::EcPoint])
        .map_err(ck("C_GetAttributeValue"))?;
    let (mut params, mut point) = (None, None);
    for a in attrs {
        match a {
            Attribute::EcParams(p) => params = Some(p),
            Attribute::EcPoint(p) => point = Some(p),
            _ => {}
        }
    }
    let params = params.ok_or_else(not_ed)?;
    if params != ED25519_OID && params != ED25519_NAME {
        return Err(not_ed());
    }
    // CKA_EC_POINT is a DER OCTET STRING (SoftHSM2); some tokens give the
    // 32 bytes bare.
    let point = point.ok_or_else(not_ed)?;
    let raw: &[u8] = match point.as_slice() {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest,
        bare if bare.len() == 32 => bare,
        _ => return Err(not_ed()),
    };
    let bytes: [u8; 32] = raw.try_into().map_err(|_| not_ed())?;
    Ok(PublicKey::new(
        KeyData::Ed25519(Ed25519PublicKey(bytes)),
        format!("jit-ssh CA (pkcs11 {label})"),
    ))
}

/// The private key labelled `label`, refused unless it is an Ed25519 key
/// that cannot leave the token.
fn private_key(s: &Session, label: &str) -> Result<ObjectHandle, Pkcs11Error> {
    let obj = find_one(s, ObjectClass::PRIVATE_KEY, label)?.ok_or_else(|| Pkcs11Error::NoKey {
        token: String::new(),
        key: label.to_owned(),
    })?;
    let attrs = s
        .get_attributes(
            obj,
            &[
                AttributeType::KeyType,
                AttributeType::Sensitive,
                AttributeType::Extractable,
            ],
        )
        .map_err(ck("C_GetAttributeValue"))?;
    let (mut kind, mut sensitive, mut extractable) = (None, None, None);
    for a in attrs {
        match a {
            Attribute::KeyType(k) => kind = Some(k),
            Attribute::Sensitive(b) => sensitive = Some(b),
            Attribute::Extractable(b) => extractable = Some(b),
            _ => {}
        }
    }
    if kind != Some(KeyType::EC_EDWARDS) {
        return Err(Pkcs11Error::NotEd25519(label.to_owned()));
    }
    // Unknown counts as unsafe: fail closed.
    if sensitive != Some(true) || extractable != Some(false) {
        return Err(Pkcs11Error::Extractable(label.to_owned()));
    }
    Ok(obj)
}

/// A session with the private key's handle in it (handles are per
/// session in general, so they travel together).
struct Pooled {
    session: Session,
    key: ObjectHandle,
}

/// The CA key on a PKCS#11 token.
pub struct Pkcs11Signer {
    token: Token,
    key_label: String,
    public: PublicKey,
    idle: Mutex<Vec<Pooled>>,
}

impl Pkcs11Signer {
    /// Opens the module, finds the token and the key, logs in, and signs
    /// a probe that must verify with the key's public half (a public key
    /// object that does not belong to the private key is refused here,
    /// not at the first issuance).
    pub fn open(cfg: &TokenKeyConfig) -> Result<Self, Pkcs11Error> {
        let token = Token::open(cfg)?;
        let session = token.session()?;
        let no_key = |e| match e {
            Pkcs11Error::NoKey { key, .. } => Pkcs11Error::NoKey {
                token: cfg.token_label.clone(),
                key,
            },
            e => e,
        };
        let public = read_public(&session, &cfg.key_label).map_err(no_key)?;
        let key = private_key(&session, &cfg.key_label).map_err(no_key)?;
        let signer = Self {
            token,
            key_label: cfg.key_label.clone(),
            public,
            idle: Mutex::new(vec![Pooled { session, key }]),
        };
        // First the token must sign at all (its errors say why not), then
        // the signature must verify with the public key we publish.
        signer.raw_sign(PROBE)?;
        signer
            .sign_detached("probe@jit-ssh", PROBE)
            .map_err(|_| Pkcs11Error::Mismatch(cfg.key_label.clone()))?;
        Ok(signer)
    }

    fn take(&self) -> Result<Pooled, Pkcs11Error> {
        if let Some(p) = self.idle.lock().ok().and_then(|mut v| v.pop()) {
            return Ok(p);
        }
        let session = self.token.session()?;
        let key = private_key(&session, &self.key_label)?;
        Ok(Pooled { session, key })
    }

    fn give_back(&self, p: Pooled) {
        if let Ok(mut v) = self.idle.lock() {
            if v.len() < POOL {
                v.push(p);
            }
        }
    }

    /// Raw Ed25519 signature over `msg` by the token. A pooled session
    /// that fails is dropped and one fresh session is tried: that covers
    /// a session the module closed; a token that is gone fails both.
    fn raw_sign(&self, msg: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        let mech = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
        let pooled = self.take()?;
        match pooled.session.sign(&mech, pooled.key, msg) {
            Ok(sig) => {
                self.give_back(pooled);
                return Ok(sig);
            }
            Err(e) => {
                tracing::warn!(error = %e, "PKCS#11 signature failed; retrying on a new session");
                drop(pooled);
            }
        }
        let session = self.token.session()?;
        let key = private_key(&session, &self.key_label)?;
        let sig = session.sign(&mech, key, msg).map_err(ck("C_Sign"))?;
        self.give_back(Pooled { session, key });
        Ok(sig)
    }
}

/// What ssh-key's builder and SSHSIG signer call: one signature by the
/// token. Errors are logged here (they say which PKCS#11 call failed;
/// never the PIN) because `signature::Error` carries no detail upwards.
struct TokenKey<'a>(&'a Pkcs11Signer);

impl signature::Signer<ssh_key::Signature> for TokenKey<'_> {
    fn try_sign(&self, msg: &[u8]) -> Result<ssh_key::Signature, signature::Error> {
        let raw = self.0.raw_sign(msg).map_err(|e| {
            tracing::error!(error = %error_chain(&e), "the CA key's token did not sign");
            signature::Error::from_source(e)
        })?;
        ssh_key::Signature::new(Algorithm::Ed25519, raw).map_err(signature::Error::from_source)
    }
}

impl From<&TokenKey<'_>> for KeyData {
    fn from(k: &TokenKey<'_>) -> Self {
        k.0.public.key_data().clone()
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl CaSigner for Pkcs11Signer {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn sign(&self, builder: Builder) -> Result<Certificate, SignError> {
        let cert = builder.sign(&TokenKey(self)).map_err(SignError)?;
        super::verify_issued(&cert, &self.public)?;
        Ok(cert)
    }

    fn sign_detached(&self, namespace: &str, msg: &[u8]) -> Result<SshSig, SignError> {
        let sig =
            SshSig::sign(&TokenKey(self), namespace, HashAlg::Sha512, msg).map_err(SignError)?;
        self.public
            .verify(namespace, msg, &sig)
            .map_err(SignError)?;
        Ok(sig)
    }
}

/// A logged-in session on the token `cfg` names (for `jit-ssh-ca hsm`
/// and tests that look at the token's objects directly).
pub fn session(cfg: &TokenKeyConfig) -> Result<Session, Pkcs11Error> {
    Token::open(cfg)?.session()
}

/// Makes an Ed25519 key pair on the token: private half sensitive and not
/// extractable (it never leaves the token), both halves token objects
/// labelled `cfg.key_label`. Refuses a label already in use.
pub fn generate(cfg: &TokenKeyConfig) -> Result<PublicKey, Pkcs11Error> {
    let token = Token::open(cfg)?;
    let s = token.session()?;
    let label = cfg.key_label.as_str();
    if find_one(&s, ObjectClass::PRIVATE_KEY, label)?.is_some()
        || find_one(&s, ObjectClass::PUBLIC_KEY, label)?.is_some()
    {
        return Err(Pkcs11Error::KeyExists {
            token: cfg.token_label.clone(),
            key: label.to_owned(),
        });
    }
    let id = label.as_bytes().to_vec();
    let public = [
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::EcParams(ED25519_OID.to_vec()),
        Attribute::Label(label.into()),
        Attribute::Id(id.clone()),
    ];
    let private = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Label(label.into()),
        Attribute::Id(id),
    ];
    s.generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public, &private)
        .map_err(ck("C_GenerateKeyPair"))?;
    read_public(&s, label)
}

/// One key pair on a token, as `jit-ssh-ca hsm list` shows it.
#[derive(Debug, Clone)]
pub struct ListedKey {
    pub label: String,
    /// None when the pair is not Ed25519 (listed, unusable here).
    pub public: Option<PublicKey>,
    /// Whether the private half is sensitive and not extractable.
    pub stays_on_token: bool,
}

/// The key pairs (by private key label) on the token.
pub fn list(cfg: &TokenKeyConfig) -> Result<Vec<ListedKey>, Pkcs11Error> {
    let token = Token::open(cfg)?;
    let s = token.session()?;
    let handles = s
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .map_err(ck("C_FindObjects"))?;
    let mut out = Vec::new();
    for h in handles {
        let label = s
            .get_attributes(h, &[AttributeType::Label])
            .map_err(ck("C_GetAttributeValue"))?
            .into_iter()
            .find_map(|a| match a {
                Attribute::Label(l) => Some(String::from_utf8_lossy(&l).into_owned()),
                _ => None,
            })
            .unwrap_or_default();
        let stays_on_token = !matches!(private_key(&s, &label), Err(Pkcs11Error::Extractable(_)));
        out.push(ListedKey {
            public: read_public(&s, &label).ok(),
            label,
            stays_on_token,
        });
    }
    Ok(out)
}

/// For messages: which key on which token through which module.
pub fn describe(cfg: &TokenKeyConfig) -> String {
    format!(
        "key {:?} on token {:?} ({})",
        cfg.key_label,
        cfg.token_label,
        cfg.module.display()
    )
}
