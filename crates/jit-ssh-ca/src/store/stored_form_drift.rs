//! A value stored by another version of the CA, or of a library it
//! stores values of: the same value, in another form.
//!
//! Compare-and-swap compares bytes. A version that adds a field (read
//! back with its default) writes `"break_glass":false` where the stored
//! text has nothing, so a swap from the value as read never matches what
//! an older version stored: a request waiting for approval across an
//! upgrade could be neither approved nor claimed. A swap that missed
//! looks at what is stored: if it decodes to the very value the caller
//! read (encoded alike), it is the same value, and the swap is tried once
//! more against the stored bytes. A real change in between still wins.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Whether `stored` is `was` (this version's encoding of the value the
/// caller read) in another form. Stored bytes this version cannot
/// decode are not.
pub(super) fn same_value_in_another_form<T: Serialize + DeserializeOwned>(
    stored: &[u8],
    was: &[u8],
) -> bool {
    stored != was
        && serde_json::from_slice::<T>(stored)
            .ok()
            .and_then(|v| serde_json::to_vec(&v).ok())
            .is_some_and(|again| again == was)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Now {
        id: String,
        #[serde(default)]
        added_since: bool,
    }

    #[test]
    fn an_older_form_of_the_value_is_the_value_and_a_changed_one_is_not() {
        let was = serde_json::to_vec(&Now {
            id: "a".into(),
            added_since: false,
        })
        .unwrap();
        assert!(same_value_in_another_form::<Now>(br#"{"id":"a"}"#, &was));
        assert!(same_value_in_another_form::<Now>(
            br#"{ "added_since": false, "id": "a" }"#,
            &was
        ));
        assert!(!same_value_in_another_form::<Now>(br#"{"id":"b"}"#, &was));
        assert!(
            !same_value_in_another_form::<Now>(&was, &was),
            "not another form"
        );
        assert!(!same_value_in_another_form::<Now>(b"{", &was));
    }
}
