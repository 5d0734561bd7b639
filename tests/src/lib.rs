//! Test infrastructure for encstr (never shipped):
//!
//! - [`apiserver`]: a stateful Kubernetes API server for tests, faithful to
//!   the API conventions the product and its clients use (see
//!   `tests/README.md` for what differs from a real one);
//! - [`harness`]: helpers for end-to-end tests that run the project's real
//!   binaries against it;
//! - [`webhook`]: an admission webhook server whose answers a test decides.

#![forbid(unsafe_code)]

pub mod apiserver;
pub mod harness;
pub mod webhook;

pub use apiserver::TestApiServer;
