//! The forwarding choice: which tracks of a meeting every edge forwards.

use myriad_proto::{ForwardingPlan, ParticipantId, TrackInfo, TrackSource};

/// Chooses what is forwarded, from the published tracks (in publication order) and the
/// participants ordered by how recently they were an active speaker.
///
/// - Audio: the microphones of the `max_audio` most recent speakers; while no more than
///   `max_audio` microphones are unmuted, all of them (so nobody's first words are cut).
/// - Video: every unmuted screen share, then cameras of the most recent speakers, then of
///   the earliest publishers, `last_n` cameras at most.
pub fn plan_forwarding(
    tracks: &[&TrackInfo],
    recent_speakers: &[ParticipantId],
    max_audio: usize,
    last_n: usize,
) -> ForwardingPlan {
    let by_recency = |source: TrackSource| {
        let mut live: Vec<&TrackInfo> = tracks
            .iter()
            .copied()
            .filter(|t| t.source == source && !t.muted)
            .collect();
        let rank = |t: &TrackInfo| {
            recent_speakers
                .iter()
                .position(|p| *p == t.participant)
                .unwrap_or(usize::MAX)
        };
        // Stable: equal ranks keep publication order.
        live.sort_by_key(|t| rank(t));
        live
    };

    let audio = by_recency(TrackSource::Microphone)
        .into_iter()
        .take(max_audio)
        .map(|t| t.id)
        .collect();

    let mut video: Vec<_> = tracks
        .iter()
        .filter(|t| t.source == TrackSource::Screen && !t.muted)
        .map(|t| t.id)
        .collect();
    video.extend(
        by_recency(TrackSource::Camera)
            .into_iter()
            .take(last_n)
            .map(|t| t.id),
    );
    ForwardingPlan { audio, video }
}
