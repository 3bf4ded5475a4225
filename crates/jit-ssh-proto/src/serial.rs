//! Certificate serials on the wire. A serial is a random `u64`; a
//! JavaScript number (an f64) keeps only 53 bits, so a page that parsed
//! `6918481948278662841` showed a different certificate. Serials are
//! therefore written as decimal strings. Reading accepts a string or a
//! number, so answers from older CAs and bodies from older clients still
//! parse. Use as `#[serde(with = "jit_ssh_proto::serial")]`, or
//! [`vec`] for a list.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;

pub fn serialize<S: Serializer>(serial: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(serial)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(SerialVisitor)
}

struct SerialVisitor;

impl Visitor<'_> for SerialVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a certificate serial: a decimal string (or an unsigned integer)")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    /// Digits only: no sign, spaces or exponent, so one serial has one
    /// spelling.
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        if v.is_empty() || v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(E::invalid_value(de::Unexpected::Str(v), &self));
        }
        v.parse()
            .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

/// A list of serials, each as [`self`](crate::serial) writes one.
pub mod vec {
    use serde::de::{Deserializer, SeqAccess, Visitor};
    use serde::ser::{SerializeSeq, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer>(serials: &[u64], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(serials.len()))?;
        for serial in serials {
            seq.serialize_element(&serial.to_string())?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        d.deserialize_seq(Serials)
    }

    /// One element, read with [`super::deserialize`].
    struct One(u64);

    impl<'de> serde::Deserialize<'de> for One {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            super::deserialize(d).map(One)
        }
    }

    struct Serials;

    impl<'de> Visitor<'de> for Serials {
        type Value = Vec<u64>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of certificate serials")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u64>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
            while let Some(One(s)) = seq.next_element()? {
                out.push(s);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Cert {
        #[serde(with = "crate::serial")]
        serial: u64,
        #[serde(with = "crate::serial::vec", default)]
        serials: Vec<u64>,
    }

    #[test]
    fn serials_are_written_as_strings_and_keep_every_digit() {
        let c = Cert {
            serial: 465_906_067_876_377_908,
            serials: vec![u64::MAX, 1],
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"serial":"465906067876377908","serials":["18446744073709551615","1"]}"#
        );
        assert_eq!(serde_json::from_str::<Cert>(&json).unwrap(), c);
    }

    #[test]
    fn numbers_from_older_peers_still_parse() {
        let c: Cert =
            serde_json::from_str(r#"{"serial":465906067876377908,"serials":[5,"6"]}"#).unwrap();
        assert_eq!(c.serial, 465_906_067_876_377_908);
        assert_eq!(c.serials, vec![5, 6]);
    }

    #[test]
    fn anything_but_plain_digits_is_refused() {
        for bad in [
            r#""""#,
            r#""+5""#,
            r#"" 5""#,
            r#""5e3""#,
            r#""-1""#,
            "-1",
            "1.5",
            r#""18446744073709551616""#,
            "null",
        ] {
            let json = format!(r#"{{"serial":{bad}}}"#);
            assert!(serde_json::from_str::<Cert>(&json).is_err(), "{bad}");
        }
    }
}
