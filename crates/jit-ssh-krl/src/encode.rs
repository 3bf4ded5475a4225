//! Writes KRL bytes that OpenSSH reads: the header, one certificate section
//! per CA scope (serials as planned by [`crate::plan`], then key ids), and
//! the explicit-key and fingerprint sections.

use crate::model::{CaScope, Krl};
use crate::plan::{plan, Subsection};
use crate::section;
use crate::wire::{Writer, SSHBUF_SIZE_MAX};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("the KRL would be {0} bytes; OpenSSH reads at most {SSHBUF_SIZE_MAX}")]
    TooLarge(usize),
    #[error("the KRL comment contains a NUL byte")]
    NulInComment,
}

impl Krl {
    /// Encodes the KRL. Every bitmap fits OpenSSH's 2,048-byte limit.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        if self.comment.contains('\0') {
            return Err(EncodeError::NulInComment);
        }
        let mut w = Writer::default();
        w.bytes(section::MAGIC);
        w.u32(section::FORMAT_VERSION);
        w.u64(self.version);
        w.u64(self.generated_date);
        w.u64(0); // flags: none are defined
        w.string(&[]); // reserved
        w.string(self.comment.as_bytes());

        for (scope, rc) in self.cert_sections() {
            w.u8(section::CERTIFICATES);
            let sect = w.begin_string();
            match scope {
                CaScope::AnyCa => w.string(&[]),
                CaScope::Ca(blob) => w.string(blob),
            }
            w.string(&[]); // reserved
            let runs: Vec<(u64, u64)> = rc.serials.ranges().collect();
            for sub in plan(&runs) {
                write_subsection(&mut w, &sub);
            }
            if !rc.key_ids.is_empty() {
                w.u8(section::CERT_KEY_ID);
                let at = w.begin_string();
                for id in &rc.key_ids {
                    w.string(id.as_bytes());
                }
                w.end_string(at);
            }
            w.end_string(sect);
            check_size(&w)?;
        }

        blob_section(
            &mut w,
            section::EXPLICIT_KEY,
            self.explicit_keys.iter().map(Vec::as_slice),
        );
        blob_section(
            &mut w,
            section::FINGERPRINT_SHA1,
            self.sha1s.iter().map(|d| &d[..]),
        );
        blob_section(
            &mut w,
            section::FINGERPRINT_SHA256,
            self.sha256s.iter().map(|d| &d[..]),
        );
        check_size(&w)?;
        Ok(w.buf)
    }
}

fn check_size(w: &Writer) -> Result<(), EncodeError> {
    if w.buf.len() > SSHBUF_SIZE_MAX {
        return Err(EncodeError::TooLarge(w.buf.len()));
    }
    Ok(())
}

fn write_subsection(w: &mut Writer, sub: &Subsection) {
    let kind = match sub {
        Subsection::List(_) => section::CERT_SERIAL_LIST,
        Subsection::Range(..) => section::CERT_SERIAL_RANGE,
        Subsection::Bitmap { .. } => section::CERT_SERIAL_BITMAP,
    };
    w.u8(kind);
    let at = w.begin_string();
    match sub {
        Subsection::List(serials) => serials.iter().for_each(|&s| w.u64(s)),
        Subsection::Range(lo, hi) => {
            w.u64(*lo);
            w.u64(*hi);
        }
        Subsection::Bitmap { start, magnitude } => {
            w.u64(*start);
            w.unsigned_mpint(magnitude);
        }
    }
    w.end_string(at);
}

fn blob_section<'a>(w: &mut Writer, kind: u8, blobs: impl Iterator<Item = &'a [u8]>) {
    let mut blobs = blobs.peekable();
    if blobs.peek().is_none() {
        return;
    }
    w.u8(kind);
    let at = w.begin_string();
    for b in blobs {
        w.string(b);
    }
    w.end_string(at);
}
