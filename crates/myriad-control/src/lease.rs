//! Who coordinates a meeting: the node holding its lease, an entry in a KV bucket whose entries
//! expire a term after their last write. The holder renews well within the term; a holder that
//! stops (or is cut off) loses it, and the next node to need the meeting takes it. A renewal
//! is a compare-and-set on the revision, so a holder that lost the lease cannot renew it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use myriad_bus::{Bus, BusError, Kv, KvConfig};
use myriad_proto::MeetingId;

/// The bucket of coordinator leases.
const BUCKET: &str = "myriad_leases";
/// A lease lasts this long after its last renewal.
/// It is what a meeting waits for when its coordinator's node dies (failover's target is
/// 3 s, and the journal's rebuild comes on top).
pub(crate) const TERM: Duration = Duration::from_secs(2);
/// The holder renews this often: after a missed renewal, three more tries within the term.
pub(crate) const RENEW_EVERY: Duration = Duration::from_millis(500);

pub(crate) struct Lease {
    kv: Arc<dyn Kv>,
    key: String,
    holder: Bytes,
    revision: u64,
}

pub(crate) async fn bucket(bus: &dyn Bus) -> Result<Arc<dyn Kv>, BusError> {
    bus.kv(KvConfig {
        bucket: BUCKET.to_owned(),
        ttl: Some(TERM),
    })
    .await
}

impl Lease {
    /// Takes the meeting's lease for `node`; `None` while another holds it.
    pub(crate) async fn acquire(
        kv: Arc<dyn Kv>,
        meeting: &MeetingId,
        node: &str,
    ) -> Result<Option<Lease>, BusError> {
        let key = format!("meeting.{meeting}");
        let holder = Bytes::from(node.to_owned());
        match kv.create(&key, holder.clone()).await {
            Ok(revision) => Ok(Some(Lease {
                kv,
                key,
                holder,
                revision,
            })),
            Err(BusError::Exists) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The lease's epoch: it grows with every acquisition and renewal.
    pub(crate) fn epoch(&self) -> u64 {
        self.revision
    }

    /// Renews the lease; an error means it is lost (or cannot be kept): stop acting.
    pub(crate) async fn renew(&mut self) -> Result<(), BusError> {
        self.revision = self
            .kv
            .update(&self.key, self.holder.clone(), self.revision)
            .await?;
        Ok(())
    }

    /// Gives the lease up at once (the coordinator stopped), if it is still ours.
    pub(crate) async fn release(self) {
        if let Ok(Some(entry)) = self.kv.get(&self.key).await {
            if entry.revision == self.revision {
                let _ = self.kv.delete(&self.key).await;
            }
        }
    }
}
