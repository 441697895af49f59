//! The forwarding choice: which tracks of a meeting every edge forwards.

use myriad_proto::{ForwardingPlan, ParticipantId, TrackInfo, TrackSource};

/// Chooses what is forwarded, from the published tracks (in publication order), who everyone
/// sees first (the spotlight, the mentioned, the stage: `stage` here), who speaks now if only they and the stage are to be seen
/// (audience mode), and the participants ordered by how recently they were an active
/// speaker.
///
/// - Audio: the microphones of the `max_audio` most recent speakers, then of the stage;
///   while no more than `max_audio` microphones are unmuted, all of them (so nobody's first
///   words are cut).
/// - Video: every unmuted screen share, then the stage's cameras, then cameras of the most
///   recent speakers, then of the earliest publishers, `last_n` cameras at most.
pub fn plan_forwarding(
    tracks: &[&TrackInfo],
    stage: &[ParticipantId],
    speaking: Option<&[ParticipantId]>,
    recent_speakers: &[ParticipantId],
    max_audio: usize,
    last_n: usize,
) -> ForwardingPlan {
    let position = |among: &[ParticipantId], p: ParticipantId| {
        among.iter().position(|x| *x == p).unwrap_or(usize::MAX)
    };
    let live = |source: TrackSource| {
        tracks
            .iter()
            .copied()
            .filter(move |t| t.source == source && !t.muted)
            .collect::<Vec<&TrackInfo>>()
    };
    // Stable sorts: equal ranks keep publication order.
    let mut mics = live(TrackSource::Microphone);
    mics.sort_by_key(|t| {
        (
            position(recent_speakers, t.participant),
            position(stage, t.participant),
        )
    });
    let audio = mics.into_iter().take(max_audio).map(|t| t.id).collect();

    let mut video: Vec<_> = live(TrackSource::Screen).iter().map(|t| t.id).collect();
    let mut cameras = live(TrackSource::Camera);
    if let Some(speaking) = speaking {
        cameras.retain(|t| stage.contains(&t.participant) || speaking.contains(&t.participant));
    }
    cameras.sort_by_key(|t| {
        (
            position(stage, t.participant),
            position(recent_speakers, t.participant),
        )
    });
    video.extend(cameras.into_iter().take(last_n).map(|t| t.id));
    ForwardingPlan { audio, video }
}

#[cfg(test)]
mod tests {
    use myriad_proto::TrackId;

    use super::*;

    fn track(id: u64, participant: u64, source: TrackSource) -> TrackInfo {
        TrackInfo {
            id: TrackId(id),
            participant: ParticipantId(participant),
            source,
            muted: false,
            partition: None,
        }
    }

    #[test]
    fn the_stage_comes_before_speakers_in_video_and_after_them_in_audio() {
        let all: Vec<TrackInfo> = (1..=4)
            .flat_map(|p| {
                [
                    track(p * 10, p, TrackSource::Camera),
                    track(p * 10 + 1, p, TrackSource::Microphone),
                ]
            })
            .collect();
        let tracks: Vec<&TrackInfo> = all.iter().collect();
        let (stage, speakers) = ([ParticipantId(4)], [ParticipantId(2), ParticipantId(3)]);
        let plan = plan_forwarding(&tracks, &stage, None, &speakers, 3, 2);
        assert_eq!(
            plan.video,
            [TrackId(40), TrackId(20)],
            "stage, then the latest speaker"
        );
        assert_eq!(plan.audio, [TrackId(21), TrackId(31), TrackId(41)]);
        let plan = plan_forwarding(&tracks, &[], None, &speakers, 3, 2);
        assert_eq!(plan.video, [TrackId(20), TrackId(30)]);
        // Audience mode: the stage and who speaks now, no silent publisher filling a slot.
        let speaking = [ParticipantId(3)];
        let plan = plan_forwarding(&tracks, &stage, Some(&speaking), &speakers, 3, 9);
        assert_eq!(plan.video, [TrackId(40), TrackId(30)]);
    }
}
