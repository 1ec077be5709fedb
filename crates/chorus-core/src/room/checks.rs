//! Checks on bytes before yrs integrates them, where yrs itself would misbehave: a
//! count that would make it reserve gigabytes ([`count_fits`]) and an update that
//! would leave content out of every update it emits ([`leaves_gap`]), both found by
//! fuzzing (docs/FUZZING.md); whether a state vector names no client
//! ([`is_empty_state_vector`]); and [`guarded`], under which yrs code that may
//! panic on hostile input runs. Functions of bytes only; no room state.

use std::panic::{catch_unwind, AssertUnwindSafe};
use yrs::updates::decoder::Decode;
use yrs::{StateVector, Update};

/// Run yrs code that may panic on hostile input; `None` if it did.
pub(super) fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    catch_unwind(AssertUnwindSafe(f)).ok()
}

/// Whether the count that opens a lib0 v1 update or state vector (of clients; each
/// takes at least one byte after it) fits in the bytes. yrs reserves a hash map of
/// that many entries before reading any (`try_reserve`: it only fails past what the
/// allocator refuses), and a hash map's control bytes are written at once: five bytes
/// declaring 2^28 clients made it touch 256 MiB of a 10 GiB reservation, per message.
/// Found by the `room_receive_raw` fuzz target (docs/FUZZING.md).
pub(crate) fn count_fits(bytes: &[u8]) -> bool {
    let mut count: u64 = 0;
    for (i, byte) in bytes.iter().take(10).enumerate() {
        count |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return count <= (bytes.len() - i - 1) as u64;
        }
    }
    // Unterminated: yrs refuses it as it reads.
    true
}

/// Whether `update` holds content of some client past a clock the document does not
/// have yet (`sv`), with the clocks in between in neither.
///
/// yrs (0.28) no longer always holds such an update back as pending: where the
/// blocks' origins are present it integrates them around a Skip placeholder, and
/// neither the state vector nor `has_missing_updates` shows it. The content is then
/// in the document, and in what it encodes for a joiner, but in no update it emits:
/// the other members and the store never get it. Found by the `room_receive_raw`
/// fuzz target (docs/FUZZING.md). Every update a Yjs client sends over one socket
/// follows on from what it was sent, so refusing these refuses no real edit.
pub(crate) fn leaves_gap(update: &Update, sv: &StateVector) -> bool {
    // The first block of each client (a deleted run too) must follow on from what
    // the document has.
    if update
        .state_vector_lower()
        .iter()
        .any(|(client, clock)| *clock > sv.get(client))
    {
        return true;
    }
    let inserted = update.insertions(true);
    for (client, ranges) in inserted.iter() {
        let mut known = sv.get(client);
        let mut ranges: Vec<std::ops::Range<u32>> = ranges.iter().cloned().collect();
        ranges.sort_by_key(|r| r.start);
        for range in ranges {
            if range.start > known {
                return true;
            }
            known = known.max(range.end);
        }
    }
    false
}

/// Does this lib0-v1 state vector name no client (a client that has nothing yet)?
pub fn is_empty_state_vector(sv: &[u8]) -> bool {
    guarded(|| StateVector::decode_v1(sv).ok())
        .flatten()
        .is_some_and(|sv| sv.is_empty())
}
