//! The limits every blob and every join must respect: one set of rules for the
//! builders, the parsers, the command line and the media port.

use std::collections::HashMap;

use uuid::Uuid;

use crate::error::BlobError;

/// Most audio contexts (`audioSourceContexts` plus `audioRenderContexts`) one media
/// session may have; a join with more is refused by the media port.
pub const MAX_AUDIO_CONTEXTS: usize = 16;

/// Most entries (GUIDs or `null`s) any one context list of a blob may hold.
pub const MAX_CONTEXTS_PER_LIST: usize = MAX_AUDIO_CONTEXTS;

/// Largest blob accepted, in bytes of its compact JSON text (a blob with 16
/// contexts is about 1.2 KB).
pub const MAX_BLOB_BYTES: usize = 16 * 1024;

/// Longest `mpUri`, in bytes.
pub const MAX_MP_URI_BYTES: usize = 1024;

/// Longest version string (`skypeMediaBotsVersion`, `mediaStackVersion`,
/// `mpVersion`) and `regionAffinity`, in bytes.
pub const MAX_SHORT_FIELD_BYTES: usize = 64;

/// Checks the audio contexts of a media session, or of a join for one: 1 to
/// [`MAX_AUDIO_CONTEXTS`] in all, no GUID twice.
///
/// Errors name the list and the index: `audioRenderContexts[0]: GUID ... appears
/// twice (first at audioSourceContexts[0])`, or `audioSourceContexts,
/// audioRenderContexts: ...` for a wrong count.
///
/// ```
/// use media_blob::check_audio_contexts;
/// use uuid::Uuid;
/// let a = Uuid::new_v4();
/// assert!(check_audio_contexts(&[a], &[Uuid::new_v4()]).is_ok());
/// assert!(check_audio_contexts(&[], &[]).is_err());
/// assert!(check_audio_contexts(&[a], &[a]).is_err());
/// ```
pub fn check_audio_contexts(source: &[Uuid], render: &[Uuid]) -> Result<(), BlobError> {
    let count = source.len() + render.len();
    if count == 0 || count > MAX_AUDIO_CONTEXTS {
        return Err(BlobError::invalid(
            "audioSourceContexts, audioRenderContexts",
            format!(
                "a media session needs 1 to {MAX_AUDIO_CONTEXTS} audio contexts in all, got {count}"
            ),
        ));
    }
    let mut seen = Seen::default();
    for (i, id) in source.iter().enumerate() {
        seen.insert(*id, "audioSourceContexts", i)?;
    }
    for (i, id) in render.iter().enumerate() {
        seen.insert(*id, "audioRenderContexts", i)?;
    }
    Ok(())
}

/// GUIDs seen so far and where: finds the first repeated context GUID.
#[derive(Default)]
pub(crate) struct Seen {
    at: HashMap<Uuid, (&'static str, usize)>,
}

impl Seen {
    /// Records `id` at `list[index]`; an error naming both places if it was seen.
    pub(crate) fn insert(
        &mut self,
        id: Uuid,
        list: &'static str,
        index: usize,
    ) -> Result<(), BlobError> {
        match self.at.insert(id, (list, index)) {
            None => Ok(()),
            Some((first, i)) => Err(BlobError::invalid(
                format!("{list}[{index}]"),
                format!(
                    "GUID {id} appears twice (first at {first}[{i}]); every context needs its own GUID"
                ),
            )),
        }
    }
}

/// Checks a string field's length against `max` bytes without quoting it.
pub(crate) fn check_len(field: &str, value: &str, max: usize) -> Result<(), BlobError> {
    if value.len() > max {
        return Err(BlobError::invalid(
            field,
            format!("{} bytes, more than the {max} allowed", value.len()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<Uuid> {
        (0..n).map(|_| Uuid::new_v4()).collect()
    }

    #[test]
    fn counts_from_one_to_sixteen() {
        assert_eq!(
            check_audio_contexts(&[], &[]).expect_err("0").to_string(),
            "audioSourceContexts, audioRenderContexts: a media session needs 1 to 16 audio \
             contexts in all, got 0"
        );
        assert!(check_audio_contexts(&ids(1), &[]).is_ok());
        assert!(check_audio_contexts(&[], &ids(1)).is_ok());
        assert!(check_audio_contexts(&ids(8), &ids(8)).is_ok());
        let e = check_audio_contexts(&ids(9), &ids(8)).expect_err("17");
        assert!(e.to_string().ends_with("got 17"), "{e}");
    }

    #[test]
    fn a_repeated_guid_is_named_with_both_places() {
        let a = Uuid::nil();
        let e = check_audio_contexts(&[a, Uuid::new_v4()], &[a]).expect_err("twice");
        assert_eq!(e.path(), "audioRenderContexts[0]");
        assert_eq!(
            e.problem(),
            "GUID 00000000-0000-0000-0000-000000000000 appears twice (first at \
             audioSourceContexts[0]); every context needs its own GUID"
        );
        let e = check_audio_contexts(&[a, a], &[]).expect_err("twice in one list");
        assert_eq!(e.path(), "audioSourceContexts[1]");
    }

    #[test]
    fn lengths_are_reported_without_the_value() {
        let e = check_len("mpVersion", &"9".repeat(65), 64).expect_err("long");
        assert_eq!(
            e.to_string(),
            "mpVersion: 65 bytes, more than the 64 allowed"
        );
        assert!(check_len("mpVersion", &"9".repeat(64), 64).is_ok());
    }
}
