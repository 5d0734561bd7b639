//! A stateful Kubernetes API server for tests: built-in and custom resources,
//! get/list/watch/create/update/patch/delete with the API conventions the
//! product and its clients rely on, plus a request log and programmable
//! faults. Test infrastructure, never shipped.

pub mod faults;
pub mod patch;
pub mod proto;
pub mod resources;
pub mod selectors;
pub mod server;
pub mod store;

pub use faults::{Delay, Fault, Matcher};
pub use server::TestApiServer;
