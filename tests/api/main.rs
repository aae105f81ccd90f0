//! HTTP API tests: each spawns a whole node on port 0 with its own
//! temporary data directory.

mod auth;
mod auth_matrix;
mod backup;
mod bad_input;
mod card_at_rest;
mod dead_letters;
mod deferred;
mod events;
mod faults;
mod forward;
mod full_disk;
mod health;
mod helpers;
mod https_webhooks;
mod idempotency;
mod messages;
mod notifications;
mod openapi;
mod overload;
mod products;
mod races;
mod restart;
mod shard;
mod slow_clients;
mod strict_input;
#[path = "../tools/mod.rs"]
mod tools;
mod webhooks;
mod workflows;
