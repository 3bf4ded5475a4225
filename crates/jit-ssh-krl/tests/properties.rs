//! Encode → decode round trips for random serial sets, and the decoder's
//! refusals of everything OpenSSH's reader refuses.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_ssh_krl::{CaScope, DecodeError, Krl, SerialSet, MAX_BIGNUM_BYTES};
use proptest::prelude::*;
use ssh_key::PublicKey;

const CA: &str = include_str!("data/test-ca.pub");

fn ca() -> CaScope {
    CaScope::of(&PublicKey::from_openssh(CA.trim()).unwrap())
}

fn krl_with(serials: Vec<u64>) -> (Krl, SerialSet) {
    let set = SerialSet::from_serials(serials).unwrap();
    let mut krl = Krl::new();
    krl.revoke_serials(&ca(), &set);
    (krl, set)
}

/// Every bitmap subsection in encoded KRL bytes, as mpint lengths.
fn bitmap_sizes(bytes: &[u8]) -> Vec<usize> {
    // Walk the format: header, then sections; only certificate sections
    // hold subsections.
    let u32_at =
        |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    let mut at = 8 + 4 + 8 + 8 + 8;
    at += 4 + u32_at(bytes, at); // reserved
    at += 4 + u32_at(bytes, at); // comment
    let mut sizes = Vec::new();
    while at < bytes.len() {
        let kind = bytes[at];
        let len = u32_at(bytes, at + 1);
        let body = &bytes[at + 5..at + 5 + len];
        at += 5 + len;
        if kind != 1 {
            continue;
        }
        let mut p = 4 + u32_at(body, 0);
        p += 4 + u32_at(body, p);
        while p < body.len() {
            let sub_kind = body[p];
            let sub_len = u32_at(body, p + 1);
            if sub_kind == 0x22 {
                sizes.push(u32_at(body, p + 5 + 8));
            }
            p += 5 + sub_len;
        }
    }
    sizes
}

fn sparse() -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(1u64.., 0..300)
}

fn dense() -> impl Strategy<Value = Vec<u64>> {
    (
        1u64..u64::MAX / 2,
        prop::collection::vec(0u64..40_000, 0..3000),
    )
        .prop_map(|(base, offs)| offs.into_iter().map(|o| base + o).collect())
}

fn mixed() -> impl Strategy<Value = Vec<u64>> {
    (
        sparse(),
        dense(),
        prop::collection::vec((1u64..1 << 40, 1u64..5000), 0..20),
    )
        .prop_map(|(mut a, b, ranges)| {
            a.extend(b);
            for (lo, len) in ranges {
                a.extend(lo..lo + len);
            }
            a
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sparse_sets_round_trip(serials in sparse()) {
        let (krl, set) = krl_with(serials);
        let back = Krl::decode(&krl.encode().unwrap()).unwrap();
        prop_assert_eq!(&back.revoked_certs(&ca()).cloned().unwrap_or_default().serials, &set);
    }

    #[test]
    fn dense_sets_round_trip_with_readable_bitmaps(serials in dense()) {
        let (krl, set) = krl_with(serials);
        let bytes = krl.encode().unwrap();
        for size in bitmap_sizes(&bytes) {
            prop_assert!(size <= MAX_BIGNUM_BYTES + 1, "bitmap of {} bytes", size);
        }
        let back = Krl::decode(&bytes).unwrap();
        prop_assert_eq!(&back.revoked_certs(&ca()).cloned().unwrap_or_default().serials, &set);
    }

    #[test]
    fn mixed_sets_round_trip(serials in mixed(), ids in prop::collection::btree_set("[a-z0-9:-]{1,30}", 0..5)) {
        let (mut krl, set) = krl_with(serials);
        for id in &ids {
            krl.revoke_key_id(&CaScope::AnyCa, id).unwrap();
        }
        krl.version = 7;
        krl.comment = "round trip".into();
        let back = Krl::decode(&krl.encode().unwrap()).unwrap();
        prop_assert_eq!(back.version, 7);
        prop_assert_eq!(&back.comment, "round trip");
        prop_assert_eq!(&back.revoked_certs(&ca()).cloned().unwrap_or_default().serials, &set);
        let back_ids = back.revoked_certs(&CaScope::AnyCa).map(|rc| rc.key_ids.clone()).unwrap_or_default();
        prop_assert_eq!(back_ids, ids);
    }
}

#[test]
fn empty_krl_round_trips() {
    let krl = Krl::new();
    let back = Krl::decode(&krl.encode().unwrap()).unwrap();
    assert!(back.is_empty());
}

#[test]
fn keys_and_fingerprints_round_trip() {
    let key = PublicKey::from_openssh(CA.trim()).unwrap();
    let mut krl = Krl::new();
    krl.revoke_key_explicit(&key);
    krl.revoke_key_sha1(&key);
    krl.revoke_key_sha256(&key);
    let back = Krl::decode(&krl.encode().unwrap()).unwrap();
    assert_eq!(back, krl);
    assert!(back.is_key_revoked(&key));
}

/// Hand-built KRL bytes: a header, then the given raw sections.
fn raw_krl(sections: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut b = b"SSHKRL\n\0".to_vec();
    b.extend(1u32.to_be_bytes());
    b.extend([0u8; 24]);
    b.extend(0u32.to_be_bytes());
    b.extend(0u32.to_be_bytes());
    for (kind, body) in sections {
        b.push(*kind);
        b.extend((body.len() as u32).to_be_bytes());
        b.extend(body);
    }
    b
}

/// A wildcard-CA certificate section holding one subsection.
fn cert_section(sub_kind: u8, sub: Vec<u8>) -> (u8, Vec<u8>) {
    let mut body = vec![0, 0, 0, 0, 0, 0, 0, 0];
    body.push(sub_kind);
    body.extend((sub.len() as u32).to_be_bytes());
    body.extend(sub);
    (1, body)
}

fn bitmap_sub(start: u64, mpint: &[u8]) -> Vec<u8> {
    let mut s = start.to_be_bytes().to_vec();
    s.extend((mpint.len() as u32).to_be_bytes());
    s.extend(mpint);
    s
}

#[test]
fn refuses_what_openssh_refuses() {
    let mut big = vec![0x01];
    big.extend(vec![0u8; MAX_BIGNUM_BYTES]); // 2,049 significant bytes
    let mut max_ok = vec![0x00, 0x80];
    max_ok.extend(vec![0u8; MAX_BIGNUM_BYTES - 1]); // 2,048 bytes + pad
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"SSHKRL\n\x01".to_vec(), "bad magic"),
        (
            raw_krl(&[cert_section(0x22, bitmap_sub(1, &big))]),
            "bignum is too large",
        ),
        (
            raw_krl(&[cert_section(0x22, bitmap_sub(1, &[0x80]))]),
            "negative",
        ),
        (
            raw_krl(&[cert_section(0x22, bitmap_sub(0, &[0x01]))]),
            "serial 0",
        ),
        (
            raw_krl(&[cert_section(0x22, bitmap_sub(u64::MAX, &[0x02]))]),
            "wraps",
        ),
        (
            raw_krl(&[cert_section(0x20, 0u64.to_be_bytes().to_vec())]),
            "serial 0",
        ),
        (
            raw_krl(&[cert_section(0x20, vec![0, 0, 0, 1])]),
            "truncated",
        ),
        (
            raw_krl(&[cert_section(
                0x21,
                [9u64.to_be_bytes(), 3u64.to_be_bytes()].concat(),
            )]),
            "invalid serial range",
        ),
        (
            raw_krl(&[cert_section(
                0x21,
                [1u64.to_be_bytes(), 3u64.to_be_bytes(), [0; 8]].concat(),
            )]),
            "trailing data",
        ),
        (
            raw_krl(&[cert_section(0x39, vec![])]),
            "unsupported certificate subsection",
        ),
        (raw_krl(&[(4, vec![])]), "embedded signature"),
        (raw_krl(&[(0xff, vec![])]), "unsupported KRL section"),
        (
            raw_krl(&[(3, [vec![0, 0, 0, 19], vec![0; 19]].concat())]),
            "expected 20",
        ),
        (
            raw_krl(&[(5, [vec![0, 0, 0, 20], vec![0; 20]].concat())]),
            "expected 32",
        ),
        (
            raw_krl(&[cert_section(
                0x23,
                [vec![0, 0, 0, 3], b"a\0b".to_vec()].concat(),
            )]),
            "NUL",
        ),
        (
            raw_krl(&[(1, vec![0, 0, 0, 5, 1, 2, 3, 4, 5, 0, 0, 0, 0])]),
            "invalid CA key",
        ),
    ];
    for (bytes, needle) in cases {
        let err = Krl::decode(&bytes).unwrap_err();
        assert!(
            err.to_string().contains(needle),
            "expected {needle:?}, got {err}"
        );
    }
    // Truncating a valid KRL anywhere inside a section is refused.
    let (krl, _) = krl_with(vec![1, 2, 3, 1000, 5000]);
    let bytes = krl.encode().unwrap();
    for cut in 45..bytes.len() {
        assert!(
            Krl::decode(&bytes[..cut]).is_err(),
            "accepted a KRL cut at {cut}"
        );
    }
    // The largest bitmap OpenSSH accepts is accepted.
    let ok = Krl::decode(&raw_krl(&[cert_section(0x22, bitmap_sub(1, &max_ok))])).unwrap();
    assert_eq!(ok.revoked_certs(&CaScope::AnyCa).unwrap().serials.len(), 1);
    assert!(matches!(
        Krl::decode(b"SSHKRL\n\0\0\0\0\x02"),
        Err(DecodeError::FormatVersion(2))
    ));
}
