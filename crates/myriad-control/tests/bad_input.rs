//! A coordinator fed requests it cannot take — another version of the envelope, another kind
//! of message, an unknown operation, no JSON at all — answers each with a clear refusal
//! (`bad_request`) and goes on serving the meeting.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use myriad_auth::ApiKey;
use myriad_bus::{Bus, InProcessBus};
use myriad_control::{Control, ControlConfig, Directory, PlannerConfig};
use myriad_proto::bus::decode;
use myriad_proto::meeting::{rpc_subject, ConnRef, Joiner, MeetingReply, RefusalKind};
use myriad_proto::{MeetingId, Role};
use myriad_store::MeetingSettings;

#[tokio::test]
async fn requests_of_another_version_kind_or_shape_are_refused_and_the_meeting_goes_on() {
    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());
    let directory = Directory::shared(bus.as_ref()).await.unwrap();
    let control = Control::start(
        directory,
        ApiKey::new("MKtest", "secret"),
        Arc::clone(&bus),
        ControlConfig {
            dev_mode: false,
            node: "n1".into(),
            partitions: PlannerConfig::default(),
        },
    )
    .await
    .unwrap();
    let id = MeetingId::parse("m").unwrap();
    control
        .create_meeting(Some(id.clone()), "t".into(), MeetingSettings::default())
        .await
        .unwrap();
    control.ensure_coordinator(&id).await.unwrap();

    let bad: [&[u8]; 6] = [
        br#"{"v":2,"kind":"meeting.request","body":{"op":"end"}}"#,
        br#"{"v":1,"kind":"meeting.broadcast","body":{"op":"stopped"}}"#,
        br#"{"v":1,"kind":"meeting.request","body":{"op":"launch"}}"#,
        br#"{"v":1,"kind":"meeting.request","body":{"op":"chat","participant":1}}"#,
        b"not json at all",
        &[0xff; 300],
    ];
    for payload in bad {
        let answer = bus
            .request(
                &rpc_subject(&id),
                Bytes::copy_from_slice(payload),
                Duration::from_secs(5),
            )
            .await
            .expect("an answer");
        match decode::<MeetingReply>(&answer) {
            Ok(MeetingReply::Refused { kind, message }) => {
                assert_eq!(kind, RefusalKind::BadRequest);
                assert!(!message.is_empty(), "a refusal says why");
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(payload)),
        }
    }
    // Nothing stalled: a join is served.
    let joiner = Joiner {
        identity: "ada".into(),
        name: "Ada".into(),
        role: Role::Attendee,
        publish: false,
        subscribe: true,
        moderate: false,
    };
    let conn = ConnRef {
        node: "n1".into(),
        conn: 1,
    };
    let joined = control
        .client(&id)
        .join(joiner, "secret".into(), conn)
        .await
        .expect("joined after the bad requests");
    assert!(joined.partition.is_some());
}
