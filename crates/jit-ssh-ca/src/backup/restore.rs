//! `jit-ssh-ca restore --from BACKUP --data DIR`, offline: checks the
//! whole backup first (manifest signature, every file's SHA-256, no file
//! missing or added, the audit chain and its last checkpoint, the state
//! dump), and only then writes the new data directory. Anything wrong is
//! named and the target is left as it was (absent or empty).

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ssh_key::{PublicKey, SshSig};

use jit_ssh_audit::{AuditLog, AuditRecord, Event};
use jit_ssh_audit_disk::DiskAuditLog;

use super::{
    sha256_file, state_dump, Manifest, BACKUP_FORMAT, CHAIN, MANIFEST, MANIFEST_SIG, NAMESPACE,
};
use crate::rotation_state::{RotationFile, KEYS_DIR, STATE_FILE};
use crate::server::{ADMIN_SOCKET, AUDIT_DIR, STATE_DIR};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("a jit-ssh-ca is running on {0} (its admin socket answers): restore into a new directory, on a CA that is stopped")]
    Running(PathBuf),
    #[error("{0} is not empty: restore goes into a new or empty data directory (nothing is overwritten)")]
    NotEmpty(PathBuf),
    #[error("{MANIFEST} in {dir} is unreadable: {why}")]
    Manifest { dir: PathBuf, why: String },
    #[error("{MANIFEST_SIG} does not verify against the manifest's CA key: {MANIFEST} was edited, or the signature replaced")]
    ManifestSignature,
    #[error("the backup is signed by {found}, not by the CA key given with --ca-public-key ({expected})")]
    OtherCa { found: String, expected: String },
    #[error("the backup has {what} version {found}; this jit-ssh-ca {} reads {what} {known} at most: restore it with the jit-ssh-ca that wrote it ({by}) or a newer one", env!("CARGO_PKG_VERSION"))]
    TooNew {
        what: &'static str,
        found: u32,
        known: u32,
        by: String,
    },
    #[error("the manifest names {0:?}, which is not a plain path inside the backup")]
    BadPath(String),
    #[error("{0} is missing from the backup (the manifest lists it)")]
    Missing(String),
    #[error("{0} is in the backup but not in its manifest")]
    Unlisted(String),
    #[error("{0} in the backup is not a regular file or directory (a symlink, FIFO or device is never restored)")]
    NotAFile(String),
    #[error("{path} was altered: its SHA-256 is {found}, the manifest says {expected}")]
    Altered {
        path: String,
        expected: String,
        found: String,
    },
    #[error("the audit chain in the backup does not verify: {0}")]
    Chain(String),
    #[error("the state dump does not load: {0}")]
    State(#[source] state_dump::ImportError),
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("opening the restored audit log")]
    Audit(#[from] jit_ssh_audit::StoreError),
    #[error("rewriting rotation.json")]
    Rotation(#[from] crate::rotation_state::RotationStateError),
    #[error(transparent)]
    Format(#[from] crate::data_format::DataFormatError),
}

pub(super) fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RestoreError {
    let path = path.to_owned();
    move |source| RestoreError::Io { what, path, source }
}

/// What the operator still has to do, and what was restored.
#[derive(Debug)]
pub struct Restored {
    pub manifest: Manifest,
    /// Key files to put in place before `serve`: (role, where the config
    /// or rotation expects it, the backup's copy if it has one).
    pub keys_to_place: Vec<(String, PathBuf, Option<PathBuf>)>,
}

/// Checks the backup in `from` and restores it into `data`.
pub fn restore(
    from: &Path,
    data: &Path,
    pin: Option<&PublicKey>,
) -> Result<Restored, RestoreError> {
    check_target(data)?;
    // Read once: the checks and the import see the same private copy.
    let staged = super::stage::stage(from, data)?;
    let manifest = check_backup(staged.path(), pin)?;
    let created = !data.exists();
    let result = write_data(staged.path(), data, &manifest);
    drop(staged);
    if result.is_err() {
        // Leave the target as it was: absent, or empty.
        if created {
            let _ = std::fs::remove_dir_all(data);
        } else if let Ok(entries) = std::fs::read_dir(data) {
            for e in entries.flatten() {
                let p = e.path();
                let _ = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
    }
    result?;
    let keys_to_place = manifest
        .keys
        .iter()
        .filter(|k| {
            // Rotation keys with --include-key are restored into DATA/keys.
            !(k.included_as
                .as_deref()
                .is_some_and(|r| r.starts_with("keys/")))
        })
        .map(|k| {
            (
                k.role.clone(),
                moved(&k.original_path, &manifest.data_dir, data),
                k.included_as.as_ref().map(|r| from.join(r)),
            )
        })
        .collect();
    Ok(Restored {
        manifest,
        keys_to_place,
    })
}

fn check_target(data: &Path) -> Result<(), RestoreError> {
    let socket = data.join(ADMIN_SOCKET);
    if socket.exists() && std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        return Err(RestoreError::Running(data.to_owned()));
    }
    match std::fs::read_dir(data) {
        Ok(mut entries) => match entries.next() {
            Some(_) => Err(RestoreError::NotEmpty(data.to_owned())),
            None => Ok(()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("reading", data)(e)),
    }
}

/// Everything that can be checked before writing anything.
pub fn check_backup(from: &Path, pin: Option<&PublicKey>) -> Result<Manifest, RestoreError> {
    let bad = |why: String| RestoreError::Manifest {
        dir: from.to_owned(),
        why,
    };
    let json = std::fs::read(from.join(MANIFEST)).map_err(|e| bad(e.to_string()))?;
    // The versions first, so a newer backup is named as such rather than
    // as a manifest this binary cannot parse.
    #[derive(serde::Deserialize)]
    struct Versions {
        backup_format: u32,
        data_format: u32,
        #[serde(default)]
        jit_ssh_ca_version: String,
    }
    let v: Versions = serde_json::from_slice(&json).map_err(|e| bad(e.to_string()))?;
    for (what, found, known) in [
        ("backup format", v.backup_format, BACKUP_FORMAT),
        ("data format", v.data_format, crate::data_format::CURRENT),
    ] {
        if found > known {
            return Err(RestoreError::TooNew {
                what,
                found,
                known,
                by: v.jit_ssh_ca_version,
            });
        }
    }
    let manifest: Manifest = serde_json::from_slice(&json).map_err(|e| bad(e.to_string()))?;
    let key = PublicKey::from_openssh(&manifest.ca_public_key)
        .map_err(|e| bad(format!("ca_public_key: {e}")))?;
    if let Some(pin) = pin {
        if pin.key_data() != key.key_data() {
            return Err(RestoreError::OtherCa {
                found: key.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
                expected: pin.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
            });
        }
    }
    let sig = std::fs::read_to_string(from.join(MANIFEST_SIG))
        .map_err(|_| RestoreError::Missing(MANIFEST_SIG.into()))?;
    let sig = SshSig::from_pem(&sig).map_err(|_| RestoreError::ManifestSignature)?;
    if sig.public_key() != key.key_data() || key.verify(NAMESPACE, &json, &sig).is_err() {
        return Err(RestoreError::ManifestSignature);
    }
    check_files(from, &manifest)?;
    check_chain(&from.join(CHAIN), &manifest, &key)?;
    let dump = from.join(state_dump::FILE);
    let file = std::fs::File::open(&dump).map_err(io("opening", &dump))?;
    let n = state_dump::read(&mut std::io::BufReader::new(file), |_, _, _| Ok(()))
        .map_err(RestoreError::State)?;
    if n != manifest.state_entries {
        return Err(bad(format!(
            "it counts {} state entries, {} has {n}",
            manifest.state_entries,
            state_dump::FILE
        )));
    }
    Ok(manifest)
}

/// Every listed file present with its hash, nothing else besides the
/// manifest and its signature.
fn check_files(from: &Path, manifest: &Manifest) -> Result<(), RestoreError> {
    let mut listed = std::collections::BTreeSet::new();
    for f in &manifest.files {
        let plain = !f.path.is_empty()
            && !f.path.starts_with('/')
            && f.path
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..");
        if !plain {
            return Err(RestoreError::BadPath(f.path.clone()));
        }
        listed.insert(f.path.clone());
    }
    let mut present = Vec::new();
    walk(from, "", &mut present)?;
    for p in &present {
        if !listed.contains(p) && p != MANIFEST && p != MANIFEST_SIG {
            return Err(RestoreError::Unlisted(p.clone()));
        }
    }
    for f in &manifest.files {
        let path = from.join(&f.path);
        if !present.contains(&f.path) {
            return Err(RestoreError::Missing(f.path.clone()));
        }
        let (_, found) = sha256_file(&path).map_err(io("reading", &path))?;
        if found != f.sha256 {
            return Err(RestoreError::Altered {
                path: f.path.clone(),
                expected: f.sha256.clone(),
                found,
            });
        }
    }
    Ok(())
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<(), RestoreError> {
    for e in std::fs::read_dir(dir).map_err(io("reading", dir))? {
        let e = e.map_err(io("reading", dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let kind = e.file_type().map_err(io("reading", &e.path()))?;
        if kind.is_dir() {
            walk(&e.path(), &rel, out)?;
        } else {
            out.push(rel);
        }
    }
    Ok(())
}

/// The chain links from record 1, ends at the manifest's head on a record
/// boundary, and its last record is a checkpoint of the one before,
/// signed by the CA key: the signature covers, through the hashes, every
/// record before it.
fn check_chain(path: &Path, manifest: &Manifest, key: &PublicKey) -> Result<(), RestoreError> {
    use std::io::{BufRead, Read, Seek, SeekFrom};
    let chain = |why: String| RestoreError::Chain(why);
    let mut file = std::fs::File::open(path).map_err(io("opening", path))?;
    let len = file.metadata().map_err(io("reading", path))?.len();
    if len > 0 {
        let mut last_byte = [0u8; 1];
        file.seek(SeekFrom::Start(len - 1))
            .and_then(|_| file.read_exact(&mut last_byte))
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .map_err(io("reading", path))?;
        if last_byte[0] != b'\n' {
            return Err(chain(
                "it does not end at a record boundary (cut off)".into(),
            ));
        }
    }
    // The recent records' hashes, to find what the last checkpoint signs
    // (the head a moment before it: appends that raced it lie between,
    // covered by the links and the signed manifest). Streamed: a chain of
    // millions of records is never held in memory.
    let mut recent: std::collections::VecDeque<(u64, jit_ssh_audit::Hash)> =
        std::collections::VecDeque::with_capacity(RECENT);
    let mut last_checkpoint: Option<(u64, jit_ssh_audit::Checkpoint)> = None;
    let mut last: Option<(u64, &'static str)> = None;
    let mut read_error = None;
    let lines = std::io::BufReader::with_capacity(1 << 20, file)
        .split(b'\n')
        .map_while(|l| l.map_err(|e| read_error = Some(e)).ok())
        .filter(|l| !l.is_empty());
    let report = jit_ssh_audit::chain::verify(lines.map(|l| {
        let rec: Result<AuditRecord, String> =
            serde_json::from_slice(&l).map_err(|e| e.to_string());
        if let Ok(r) = &rec {
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back((r.seq, r.hash));
            last = Some((r.seq, r.event.kind()));
            if let Event::Checkpoint(c) = &r.event {
                last_checkpoint = Some((r.seq, c.clone()));
            }
        }
        rec
    }));
    if let Some(e) = read_error {
        return Err(io("reading", path)(e));
    }
    if let Some(b) = report.first_break {
        return Err(chain(b.to_string()));
    }
    if report.records != manifest.audit_records
        || report.head.hash.to_string() != manifest.audit_head_hash && manifest.audit_records > 0
    {
        return Err(chain(format!(
            "it has {} records ending in hash {}; the manifest says {} ending in {}",
            report.records, report.head.hash, manifest.audit_records, manifest.audit_head_hash
        )));
    }
    let Some((seq, kind)) = last else {
        return Ok(());
    };
    let c = match last_checkpoint {
        Some((at, c)) if at == seq => c,
        _ => {
            return Err(chain(format!(
                "its last record ({seq}) is a {kind}, not the backup's checkpoint (cut off?)"
            )))
        }
    };
    let signed = recent.iter().find(|(s, _)| *s == c.seq).map(|(_, h)| h);
    if c.seq >= seq || signed != Some(&c.hash) {
        return Err(chain(format!(
            "the last checkpoint (record {seq}) does not sign a record shortly before it"
        )));
    }
    jit_ssh_audit::checkpoint::check_signature(&c, std::slice::from_ref(key))
        .map_err(|why| chain(format!("the last checkpoint (record {seq}): {why}")))
}

/// How far back (in records) the backup's checkpoint may sign: only the
/// appends that raced it lie between.
const RECENT: usize = 65_536;

fn mkdir(path: &Path) -> Result<(), RestoreError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io("creating", path))
}

fn copy_private(from: &Path, to: &Path) -> Result<(), RestoreError> {
    let mut src = std::fs::File::open(from).map_err(io("opening", from))?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(io("creating", to))?;
    std::io::copy(&mut src, &mut dst).map_err(io("copying to", to))?;
    dst.sync_all().map_err(io("syncing", to))
}

/// A path under the old data directory, moved under the new one.
fn moved(p: &Path, old: &Path, new: &Path) -> PathBuf {
    match p.strip_prefix(old) {
        Ok(rest) => new.join(rest),
        Err(_) => p.to_owned(),
    }
}

fn write_data(from: &Path, data: &Path, m: &Manifest) -> Result<(), RestoreError> {
    if data.exists() {
        // Empty (checked): it becomes the CA's private directory.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700))
            .map_err(io("chmod 700", data))?;
    }
    crate::server::create_private_dir(data).map_err(|e| RestoreError::Io {
        what: "preparing",
        path: data.to_owned(),
        source: std::io::Error::other(format!("{e:#}")),
    })?;
    crate::data_format::stamp(data)?;
    state_dump::import(&from.join(state_dump::FILE), &data.join(STATE_DIR))
        .map_err(RestoreError::State)?;

    // The chain as it was, its offsets computed, the indexes rebuilt by
    // opening it.
    let audit = data.join(AUDIT_DIR);
    mkdir(&audit)?;
    let chain = audit.join("chain.jsonl");
    copy_private(&from.join(CHAIN), &chain)?;
    write_offsets(&chain, &audit.join("chain.offsets"))?;
    {
        let log = DiskAuditLog::open(&audit)?;
        let head = log.head();
        if head.seq != m.audit_records {
            return Err(RestoreError::Chain(format!(
                "the restored log opens with {} records, not {}",
                head.seq, m.audit_records
            )));
        }
    }

    if m.files.iter().any(|f| f.path == STATE_FILE) {
        let mut rotation = RotationFile::load(from)?.unwrap_or_default();
        for role in [rotation.user.as_mut(), rotation.host.as_mut()]
            .into_iter()
            .flatten()
        {
            role.active = moved(&role.active, &m.data_dir, data);
            if let Some(s) = role.staged.as_mut() {
                *s = moved(s, &m.data_dir, data);
            }
            if let Some(r) = role.retiring.as_mut() {
                r.key_file = moved(&r.key_file, &m.data_dir, data);
            }
        }
        rotation.save(data)?;
    }
    let keys = data.join(KEYS_DIR);
    for f in m.files.iter().filter(|f| f.path.starts_with("keys/")) {
        mkdir(&keys)?;
        let name = f.path.trim_start_matches("keys/");
        copy_private(&from.join(&f.path), &keys.join(name))?;
    }
    let dir = std::fs::File::open(data).map_err(io("opening", data))?;
    dir.sync_all().map_err(io("syncing", data))
}

/// `chain.offsets` for a chain file: each record's end offset, 8 bytes
/// big-endian (what `jit-ssh-audit-disk` keeps beside the chain).
fn write_offsets(chain: &Path, to: &Path) -> Result<(), RestoreError> {
    use std::io::{BufRead, Write};
    let file = std::fs::File::open(chain).map_err(io("opening", chain))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(io("creating", to))?;
    let mut out = std::io::BufWriter::new(out);
    let mut end = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(io("reading", chain))?;
        if n == 0 {
            break;
        }
        end += n as u64;
        out.write_all(&end.to_be_bytes())
            .map_err(io("writing", to))?;
    }
    let out = out
        .into_inner()
        .map_err(|e| io("writing", to)(e.into_error()))?;
    out.sync_all().map_err(io("syncing", to))
}
