//! Appends to one partition of a stream, fenced: what keeps two owners of
//! a partition from both writing to it.
//!
//! A lease ([`super::lease`]) says who should own a partition, but a node
//! paused past its lease still believes it owns it until its next renewal
//! fails. So every append names the last sequence of the partition's
//! subject that its writer has seen (`Nats-Expected-Last-Subject-Sequence`)
//! and goes as one atomic batch (JetStream's ADR-50: all of it is stored or
//! none): once another writer has appended, a stale writer's batch is
//! refused whole, and it learns it lost the partition. The stream must
//! allow atomic batches (`allow_atomic`).

use async_nats::header::{
    NATS_BATCH_COMMIT, NATS_BATCH_ID, NATS_BATCH_SEQUENCE, NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
};
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::HeaderMap;

/// The most messages one atomic batch may hold (the server's default).
pub const MAX_BATCH: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another writer appended to the partition after `after`: this writer
    /// no longer owns it, and nothing of its batch was stored.
    #[error(
        "partition {subject}: another writer appended after sequence {after}; this one no longer owns it"
    )]
    Fenced { subject: String, after: u64 },
    #[error("partition {subject}: a batch holds at most {MAX_BATCH} events, not {len}")]
    TooLarge { subject: String, len: usize },
    /// The server, the connection: unknown whether the batch was stored;
    /// take the partition over again to find out.
    #[error("partition {subject}: {why}")]
    Nats { subject: String, why: String },
}

/// The one writer of a partition's subject.
pub struct PartitionWriter {
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    subject: String,
    /// The stream sequence of the partition's last message (0: none).
    last: u64,
}

impl PartitionWriter {
    /// Takes over the partition `subject` of `stream`, after whatever is
    /// in it: the next append is fenced on its last message.
    pub async fn take_over(
        client: &async_nats::Client,
        stream: &str,
        subject: &str,
    ) -> Result<PartitionWriter, AppendError> {
        let failed = |why: String| AppendError::Nats { subject: subject.to_owned(), why };
        let js = async_nats::jetstream::new(client.clone());
        let stream = js.get_stream(stream).await.map_err(|e| failed(e.to_string()))?;
        let last = match stream.get_last_raw_message_by_subject(subject).await {
            Ok(message) => message.sequence,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => 0,
            Err(e) => return Err(failed(e.to_string())),
        };
        Ok(PartitionWriter { client: client.clone(), js, subject: subject.to_owned(), last })
    }

    /// The stream sequence of the partition's last message this writer
    /// knows of.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Says that the partition's last message is `last`: after the
    /// messages [`PartitionWriter::send`] sent were acknowledged.
    pub fn set_last(&mut self, last: u64) {
        self.last = last;
    }

    /// Sends one message fenced on `after`, the stream's last sequence
    /// once everything sent before it is stored, and returns without
    /// waiting for its acknowledgement: a writer may keep several in
    /// flight, each fenced on the one before, and a stale writer's are
    /// refused all the same.
    ///
    /// Only for a partition that is its stream's one subject, where the
    /// stream's sequence and the subject's are the same: a JetStream
    /// cluster refuses a message fenced on its *subject's* sequence while
    /// an earlier one of the subject is still being agreed on (error
    /// 10164, seen with three copies), but orders messages fenced on the
    /// stream's sequence, in flight or not.
    pub async fn send(&self, after: u64, payload: Vec<u8>) -> Result<PublishAckFuture, AppendError> {
        let message = PublishMessage::build().payload(payload.into()).expected_last_sequence(after);
        let sent = self.js.send_publish(self.subject.clone(), message).await;
        sent.map_err(|e| AppendError::Nats { subject: self.subject.clone(), why: e.to_string() })
    }

    /// Appends `payloads` in order as one atomic batch after the
    /// partition's last message; returns the sequence of the new last.
    pub async fn append(&mut self, payloads: Vec<Vec<u8>>) -> Result<u64, AppendError> {
        let subject = self.subject.clone();
        let failed = |why: String| AppendError::Nats { subject: subject.clone(), why };
        if payloads.is_empty() {
            return Ok(self.last);
        }
        if payloads.len() > MAX_BATCH {
            return Err(AppendError::TooLarge { subject, len: payloads.len() });
        }
        let batch = uuid::Uuid::now_v7().simple().to_string();
        let count = payloads.len();
        let mut commit = None;
        for (i, payload) in payloads.into_iter().enumerate() {
            let mut headers = HeaderMap::new();
            // One message is stored whole or not at all by itself: a batch
            // would only add the server's staging of it.
            if count > 1 {
                headers.insert(NATS_BATCH_ID, batch.as_str());
                headers.insert(NATS_BATCH_SEQUENCE, (i + 1).to_string().as_str());
            }
            if i == 0 {
                // The fence: the server checks it when the batch commits.
                headers.insert(NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, self.last.to_string().as_str());
            }
            if i + 1 < count {
                // Every message but the commit goes without a reply: the
                // server answers the batch once, at its commit.
                self.client
                    .publish_with_headers(self.subject.clone(), headers, payload.into())
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                continue;
            }
            if count > 1 {
                headers.insert(NATS_BATCH_COMMIT, "1");
            }
            let message = PublishMessage::build().payload(payload.into()).headers(headers);
            let ack = self.js.send_publish(self.subject.clone(), message).await;
            commit = Some(ack.map_err(|e| failed(e.to_string()))?);
        }
        let Some(commit) = commit else { return Ok(self.last) };
        match commit.await {
            Ok(ack) => {
                self.last = ack.sequence;
                Ok(ack.sequence)
            }
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                Err(AppendError::Fenced { subject, after: self.last })
            }
            Err(e) => Err(failed(e.to_string())),
        }
    }
}
