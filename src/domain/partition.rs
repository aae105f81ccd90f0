//! Which partition an order belongs to, when the log is split by order
//! (the event stream's subjects, the nodes that share one stream).

/// FNV-1a (32 bits) of `bytes`: short, with no key, and written out in a
/// few lines in any language (docs/events.md).
pub fn fnv1a(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in bytes {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The partition of an order: FNV-1a of its id's UTF-8 bytes, modulo
/// `partitions`. Every event of one order lands in one partition, so one
/// partition holds each of its orders' events in order.
pub fn partition(order_id: &str, partitions: u32) -> u32 {
    fnv1a(order_id.as_bytes()) % partitions.max(1)
}
