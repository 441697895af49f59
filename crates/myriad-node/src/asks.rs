//! What a participant's message asks of its meeting, when the meeting answers it with done
//! or a refusal and nothing else: a pure translation, the participant as the actor.

use myriad_proto::meeting::{Actor, MeetingRequest};
use myriad_proto::{ClientMsg, ParticipantId};

/// The meeting request `msg` makes for participant `me`, or `msg` back if it is not one of
/// these (it needs more than an ask: media, history, a limit checked first…).
pub fn ask_of(msg: ClientMsg, me: ParticipantId) -> Result<MeetingRequest, ClientMsg> {
    let actor = Actor::Participant(me);
    Ok(match msg {
        ClientMsg::Mute { source, muted } => MeetingRequest::Mute {
            actor,
            target: me,
            source,
            muted,
        },
        ClientMsg::MuteOther {
            participant,
            source,
        } => MeetingRequest::Mute {
            actor,
            target: participant,
            source,
            muted: true,
        },
        ClientMsg::MuteAll => MeetingRequest::MuteAll { actor },
        ClientMsg::Remove { participant } => MeetingRequest::Remove {
            actor,
            target: participant,
        },
        ClientMsg::Lock { locked } => MeetingRequest::Lock { actor, locked },
        ClientMsg::Spotlight { participant } => MeetingRequest::Spotlight {
            actor,
            target: participant,
        },
        ClientMsg::Board { op } => MeetingRequest::Board {
            participant: me,
            board: op,
        },
        ClientMsg::Breakouts { op } => MeetingRequest::Breakouts {
            actor,
            breakout: op,
        },
        ClientMsg::SetWaitingRoom { on } => MeetingRequest::SetWaitingRoom { actor, on },
        ClientMsg::Admit { ticket, admit } => MeetingRequest::Admit {
            actor,
            ticket,
            admit,
        },
        ClientMsg::EndMeeting => MeetingRequest::End { actor },
        ClientMsg::SetAudience { audience } => MeetingRequest::SetAudience { actor, audience },
        ClientMsg::SetRole { participant, role } => MeetingRequest::SetRole {
            actor,
            target: participant,
            role,
        },
        ClientMsg::DeleteChat { id } => MeetingRequest::DeleteChat { actor, id },
        ClientMsg::ReleaseChat { id } => MeetingRequest::ReleaseChat { actor, id },
        ClientMsg::LikeChat { id } => MeetingRequest::LikeChat {
            participant: me,
            id,
        },
        ClientMsg::BanChat {
            participant,
            banned,
        } => MeetingRequest::BanChat {
            actor,
            target: participant,
            banned,
        },
        ClientMsg::Vote { poll, answer } => MeetingRequest::Vote {
            participant: me,
            poll,
            answer,
        },
        ClientMsg::ClosePoll { poll } => MeetingRequest::ClosePoll { actor, poll },
        ClientMsg::Ask { text } => MeetingRequest::Ask {
            participant: me,
            text,
        },
        ClientMsg::Upvote { question } => MeetingRequest::Upvote {
            participant: me,
            question,
        },
        ClientMsg::AnswerQuestion { question, text } => MeetingRequest::SettleQuestion {
            actor,
            question,
            dismiss: false,
            text,
        },
        ClientMsg::DismissQuestion { question } => MeetingRequest::SettleQuestion {
            actor,
            question,
            dismiss: true,
            text: None,
        },
        ClientMsg::Hand { raised } => MeetingRequest::Hand {
            participant: me,
            raised,
        },
        ClientMsg::LowerHands { participant } => MeetingRequest::LowerHands {
            actor,
            target: participant,
        },
        ClientMsg::Stage { participant, on } => MeetingRequest::Stage {
            actor,
            target: participant,
            on,
        },
        other => return Err(other),
    })
}

#[cfg(test)]
mod tests {
    use myriad_proto::{Role, TrackSource};

    use super::*;

    #[test]
    fn the_sender_is_the_actor_and_acts_on_itself_where_it_names_nobody() {
        let (me, other) = (ParticipantId(7), ParticipantId(9));
        assert_eq!(
            ask_of(
                ClientMsg::Mute {
                    source: TrackSource::Camera,
                    muted: false
                },
                me
            ),
            Ok(MeetingRequest::Mute {
                actor: Actor::Participant(me),
                target: me,
                source: TrackSource::Camera,
                muted: false
            })
        );
        // A moderator's mute of someone else only ever mutes.
        assert_eq!(
            ask_of(
                ClientMsg::MuteOther {
                    participant: other,
                    source: TrackSource::Microphone
                },
                me
            ),
            Ok(MeetingRequest::Mute {
                actor: Actor::Participant(me),
                target: other,
                source: TrackSource::Microphone,
                muted: true
            })
        );
        assert_eq!(
            ask_of(
                ClientMsg::SetRole {
                    participant: other,
                    role: Role::Panelist
                },
                me
            ),
            Ok(MeetingRequest::SetRole {
                actor: Actor::Participant(me),
                target: other,
                role: Role::Panelist
            })
        );
        assert_eq!(
            ask_of(ClientMsg::Hand { raised: true }, me),
            Ok(MeetingRequest::Hand {
                participant: me,
                raised: true
            })
        );
        assert_eq!(ask_of(ClientMsg::Ping, me), Err(ClientMsg::Ping));
    }
}
