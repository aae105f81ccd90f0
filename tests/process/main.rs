//! Tests of the real `fulfil` binary as a process: configuration, signals,
//! and crashes (`kill -9`) under load.

mod binary;
mod crash;
mod damage;
mod failover;
mod helpers;
mod isolation;
mod leases;
mod lifecycle;
#[path = "../tools/nats.rs"]
mod nats;
mod otlp;
mod overload;
mod partition;
mod readme;
mod replica;
mod shards;
mod stream;
#[path = "../tools/mod.rs"]
mod tools;
mod webhooks;
