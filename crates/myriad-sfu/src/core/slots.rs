//! A subscriber receives on fixed slots — K audio and N video m-lines, negotiated once when it
//! connects — rather than one m-line per meeting track: a publish or an unpublish changes no
//! SDP. Which track a slot carries follows the plan and the subscriber's view; the client is
//! told the new mapping ([`crate::core::SfuEvent::Slots`]) and the slot's forwarder continues
//! one stream across the change, from the new track's next key frame.

use myriad_proto::TrackId;

/// Which track each slot carries next, given what it carries now and the tracks wanted (in
/// order of importance, at most as many as slots are used). A slot keeps its track while it
/// is wanted (no needless switch, no key frame); the wanted ones without a slot take the
/// free slots in order.
pub fn assign(current: &[Option<TrackId>], wanted: &[TrackId]) -> Vec<Option<TrackId>> {
    let wanted = &wanted[..wanted.len().min(current.len())];
    let mut next: Vec<Option<TrackId>> = current
        .iter()
        .map(|t| t.filter(|t| wanted.contains(t)))
        .collect();
    let waiting: Vec<TrackId> = wanted
        .iter()
        .filter(|t| !next.contains(&Some(**t)))
        .copied()
        .collect();
    let mut waiting = waiting.into_iter();
    for slot in next.iter_mut().filter(|s| s.is_none()) {
        *slot = waiting.next();
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ids: &[u64]) -> Vec<TrackId> {
        ids.iter().copied().map(TrackId).collect()
    }

    fn s(ids: &[Option<u64>]) -> Vec<Option<TrackId>> {
        ids.iter().map(|i| i.map(TrackId)).collect()
    }

    #[test]
    fn tracks_keep_their_slots_and_newcomers_take_free_ones() {
        let empty = s(&[None, None, None]);
        assert_eq!(assign(&empty, &t(&[5, 6])), s(&[Some(5), Some(6), None]));
        // 6 stays where it is; 5 left, 7 takes its slot.
        let now = s(&[Some(5), Some(6), None]);
        assert_eq!(assign(&now, &t(&[6, 7])), s(&[Some(7), Some(6), None]));
        // More wanted than slots: the most important ones, the rest wait.
        assert_eq!(
            assign(&now, &t(&[9, 8, 6, 5])),
            s(&[Some(9), Some(6), Some(8)])
        );
        assert_eq!(assign(&now, &[]), empty);
        assert!(assign(&[], &t(&[1])).is_empty());
    }
}
