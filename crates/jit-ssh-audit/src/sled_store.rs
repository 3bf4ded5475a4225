//! The audit log on sled 0.34: records and index entries in one tree,
//! appends serialised by the chain head and made durable by group commit.

use std::path::Path;
use std::sync::Mutex;

use time::OffsetDateTime;

use crate::chain::{self, ChainHead, VerifyReport};
use crate::group_commit::{FlushOutcome, GroupCommit};
use crate::index::{self, GRANT, HOST, RECORD, SERIAL, TIME, USER};
use crate::query::AuditQuery;
use crate::record::{Actor, AuditRecord, Event};
use crate::{AppendError, AuditLog, StoreError};

const TREE: &str = "audit";

struct ChainState {
    head: ChainHead,
    /// A write failed: the head may not match storage, so stop appending.
    poisoned: bool,
}

pub struct SledAuditLog {
    db: sled::Db,
    tree: sled::Tree,
    chain: Mutex<ChainState>,
    commit: GroupCommit,
}

impl SledAuditLog {
    /// Opens (or creates) the log in the sled database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_in(sled::open(path)?)
    }

    /// Opens the log inside an already open database, which other stores
    /// of the CA share (sled allows one process per database).
    pub fn open_in(db: sled::Db) -> Result<Self, StoreError> {
        let tree = db.open_tree(TREE)?;
        let head = match tree.scan_prefix([RECORD]).next_back() {
            None => ChainHead::default(),
            Some(item) => {
                let (key, value) = item?;
                let rec = parse(&key, &value)?;
                ChainHead {
                    seq: rec.seq,
                    hash: rec.hash,
                }
            }
        };
        Ok(Self {
            db,
            tree,
            chain: Mutex::new(ChainState {
                head,
                poisoned: false,
            }),
            commit: GroupCommit::starting_at(head.seq),
        })
    }

    /// The last record's sequence number and hash.
    pub fn head(&self) -> Option<ChainHead> {
        self.chain.lock().ok().map(|c| c.head)
    }

    fn record(&self, seq: u64) -> Result<Option<AuditRecord>, StoreError> {
        let key = index::record_key(seq);
        match self.tree.get(key)? {
            None => Ok(None),
            Some(v) => parse(&key, &v).map(Some),
        }
    }

    /// Sequence numbers from the most selective index the query allows.
    fn candidates<'a>(
        &'a self,
        q: &AuditQuery,
    ) -> Box<dyn Iterator<Item = Result<u64, StoreError>> + 'a> {
        let after = q.after_seq.map_or(0, |s| s.saturating_add(1));
        let prefix = if let Some(s) = q.serial {
            Some(index::u64_prefix(SERIAL, s))
        } else if let Some(g) = &q.grant {
            Some(index::text_prefix(GRANT, g))
        } else if let Some(u) = &q.user {
            Some(index::text_prefix(USER, u))
        } else {
            q.host.as_ref().map(|h| index::text_prefix(HOST, h))
        };
        if let Some(prefix) = prefix {
            let start = index::with_seq(prefix.clone(), after);
            return Box::new(
                self.tree
                    .range(start..)
                    .take_while(move |item| {
                        item.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix))
                    })
                    .map(|item| {
                        item.map(|(k, _)| index::seq_of(&k).unwrap_or(0))
                            .map_err(StoreError::from)
                    }),
            );
        }
        if q.since.is_some() || q.until.is_some() {
            let from = index::u64_prefix(TIME, q.since.map_or(0, index::unix_seconds));
            let to = index::u64_prefix(
                TIME,
                q.until
                    .map_or(u64::MAX, |t| index::unix_seconds(t).saturating_add(1)),
            );
            return Box::new(self.tree.range(from..to).map(|item| {
                item.map(|(k, _)| index::seq_of(&k).unwrap_or(0))
                    .map_err(StoreError::from)
            }));
        }
        Box::new(
            self.tree
                .range(index::record_key(after)..=index::record_key(u64::MAX))
                .map(|item| {
                    item.map(|(k, _)| index::seq_of(&k).unwrap_or(0))
                        .map_err(StoreError::from)
                }),
        )
    }
}

fn parse(key: &[u8], value: &[u8]) -> Result<AuditRecord, StoreError> {
    serde_json::from_slice(value).map_err(|source| StoreError::Corrupt {
        key: hex::encode(key),
        source,
    })
}

impl AuditLog for SledAuditLog {
    fn append(&self, actor: Actor, event: Event) -> Result<AuditRecord, AppendError> {
        let rec = {
            let mut chain = self.chain.lock().map_err(|_| AppendError::Poisoned)?;
            if chain.poisoned || self.commit.has_failed() {
                return Err(AppendError::Poisoned);
            }
            let rec = chain::seal(chain.head, OffsetDateTime::now_utc(), actor, event)
                .map_err(AppendError::Encode)?;
            let json = serde_json::to_vec(&rec).map_err(AppendError::Encode)?;
            let mut batch = sled::Batch::default();
            batch.insert(&index::record_key(rec.seq)[..], json);
            for key in index::entries(&rec) {
                batch.insert(key, &[][..]);
            }
            if let Err(e) = self.tree.apply_batch(batch) {
                chain.poisoned = true;
                return Err(AppendError::Write(e.into()));
            }
            chain.head = ChainHead {
                seq: rec.seq,
                hash: rec.hash,
            };
            self.commit.mark_written(rec.seq);
            rec
        };
        self.commit
            .wait_durable(rec.seq, || self.db.flush().map(drop))
            .map_err(|outcome| match outcome {
                FlushOutcome::Error(e) => AppendError::Flush(e.into()),
                FlushOutcome::Failed(_) => AppendError::Poisoned,
            })?;
        Ok(rec)
    }

    fn query(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let mut out = Vec::new();
        for seq in self.candidates(q) {
            let Some(rec) = self.record(seq?)? else {
                continue;
            };
            if q.matches(&rec) {
                out.push(rec);
                if q.limit != 0 && out.len() >= q.limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn serial_issued(&self, serial: u64) -> Result<bool, StoreError> {
        Ok(self
            .tree
            .scan_prefix(index::u64_prefix(SERIAL, serial))
            .next()
            .transpose()?
            .is_some())
    }

    fn verify(&self) -> Result<VerifyReport, StoreError> {
        let mut failure = None;
        let records = self
            .tree
            .scan_prefix([RECORD])
            .map_while(|item| match item {
                Ok((_, v)) => {
                    Some(serde_json::from_slice::<AuditRecord>(&v).map_err(|e| e.to_string()))
                }
                Err(e) => {
                    failure = Some(e);
                    None
                }
            });
        let report = chain::verify(records);
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(report),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::ChainBreak;
    use crate::record::{CertificateIssued, IssuedVia};

    fn issued(user: &str, host: &str, serial: u64) -> Event {
        Event::CertificateIssued(CertificateIssued {
            serial,
            key_id: format!("jit-ssh:{user}:g{serial}:{serial}"),
            user: user.into(),
            host: host.into(),
            account: "oncall".into(),
            principals: vec![format!("oncall@{host}")],
            valid_after: 1,
            valid_before: 2,
            public_key_fingerprint: "SHA256:x".into(),
            ca_fingerprint: "SHA256:y".into(),
            grant: format!("g{serial}"),
            reason: "test".into(),
            critical_options: vec![],
            extensions: vec!["permit-pty".into()],
            via: IssuedVia::OfflineSign,
        })
    }

    fn log_with(n: u64) -> (tempfile::TempDir, SledAuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let log = SledAuditLog::open(dir.path()).unwrap();
        for i in 1..=n {
            let user = if i % 2 == 0 { "alice" } else { "bob" };
            log.append(
                Actor::Operator {
                    login: "root".into(),
                },
                issued(user, &format!("h{}", i % 3), 100 + i),
            )
            .unwrap();
        }
        (dir, log)
    }

    #[test]
    fn appends_chain_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = SledAuditLog::open(dir.path()).unwrap();
            let a = log.append(Actor::System, issued("alice", "db", 7)).unwrap();
            let b = log.append(Actor::System, issued("alice", "db", 8)).unwrap();
            assert_eq!((a.seq, b.seq), (1, 2));
            assert_eq!(b.prev_hash, a.hash);
        }
        let log = SledAuditLog::open(dir.path()).unwrap();
        assert_eq!(log.head().unwrap().seq, 2);
        let c = log.append(Actor::System, issued("bob", "db", 9)).unwrap();
        assert_eq!(c.seq, 3);
        let report = log.verify().unwrap();
        assert_eq!((report.records, report.first_break), (3, None));
    }

    #[test]
    fn queries_use_indexes_and_combine_filters() {
        let (_d, log) = log_with(30);
        let q = |q: AuditQuery| {
            log.query(&q)
                .unwrap()
                .iter()
                .map(|r| r.seq)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            q(AuditQuery {
                serial: Some(107),
                ..Default::default()
            }),
            vec![7]
        );
        assert_eq!(
            q(AuditQuery {
                user: Some("alice".into()),
                ..Default::default()
            })
            .len(),
            15
        );
        assert_eq!(
            q(AuditQuery {
                user: Some("alice".into()),
                host: Some("h0".into()),
                ..Default::default()
            }),
            vec![6, 12, 18, 24, 30]
        );
        assert_eq!(
            q(AuditQuery {
                user: Some("alice".into()),
                after_seq: Some(12),
                limit: 2,
                ..Default::default()
            }),
            vec![14, 16]
        );
        assert_eq!(
            q(AuditQuery {
                grant: Some("g105".into()),
                ..Default::default()
            }),
            vec![5]
        );
        assert!(q(AuditQuery {
            user: Some("mallory".into()),
            ..Default::default()
        })
        .is_empty());
        let all = q(AuditQuery {
            since: Some(OffsetDateTime::UNIX_EPOCH),
            ..Default::default()
        });
        assert_eq!(all.len(), 30);
        assert!(log.serial_issued(130).unwrap() && !log.serial_issued(131).unwrap());
    }

    fn raw(log: &SledAuditLog, seq: u64) -> AuditRecord {
        log.record(seq).unwrap().unwrap()
    }

    fn put(log: &SledAuditLog, pos: u64, rec: &AuditRecord) {
        log.tree
            .insert(index::record_key(pos), serde_json::to_vec(rec).unwrap())
            .unwrap();
    }

    #[test]
    fn verify_names_an_edited_record() {
        let (_d, log) = log_with(10);
        let mut r = raw(&log, 4);
        let Event::CertificateIssued(c) = &mut r.event;
        c.host = "prod-db".into();
        put(&log, 4, &r);
        assert_eq!(
            log.verify().unwrap().first_break,
            Some(ChainBreak::Altered { seq: 4 })
        );
    }

    #[test]
    fn verify_names_an_edit_with_a_recomputed_hash() {
        let (_d, log) = log_with(10);
        let r = raw(&log, 4);
        let prev = ChainHead {
            seq: 3,
            hash: r.prev_hash,
        };
        let mut event = r.event.clone();
        let Event::CertificateIssued(c) = &mut event;
        c.valid_before += 86_400;
        let forged = chain::seal(prev, r.time, r.actor.clone(), event).unwrap();
        put(&log, 4, &forged);
        assert_eq!(
            log.verify().unwrap().first_break,
            Some(ChainBreak::BrokenLink { seq: 5 })
        );
    }

    #[test]
    fn verify_names_a_removed_record() {
        let (_d, log) = log_with(10);
        log.tree.remove(index::record_key(6)).unwrap();
        let report = log.verify().unwrap();
        assert_eq!(
            report.first_break,
            Some(ChainBreak::OutOfOrder {
                position: 6,
                found: 7
            })
        );
        assert_eq!(report.records, 5);
    }

    #[test]
    fn verify_names_reordered_records() {
        let (_d, log) = log_with(10);
        let (a, b) = (raw(&log, 3), raw(&log, 8));
        put(&log, 3, &b);
        put(&log, 8, &a);
        assert_eq!(
            log.verify().unwrap().first_break,
            Some(ChainBreak::OutOfOrder {
                position: 3,
                found: 8
            })
        );
    }

    #[test]
    fn refuses_to_open_over_a_corrupt_head() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = SledAuditLog::open(dir.path()).unwrap();
            log.append(Actor::System, issued("a", "b", 1)).unwrap();
            log.tree
                .insert(index::record_key(1), &b"{not json"[..])
                .unwrap();
            log.db.flush().unwrap();
        }
        assert!(matches!(
            SledAuditLog::open(dir.path()),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
