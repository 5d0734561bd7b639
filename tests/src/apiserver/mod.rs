//! A stateful Kubernetes API server for tests: built-in and custom resources,
//! get/list/watch/create/update/patch/delete with the API conventions the
//! product and its clients rely on, validation (built-ins, CRD schemas and
//! CEL rules), server-side apply, TLS, authentication and RBAC, plus a
//! request log and programmable faults. Test infrastructure, never shipped.

pub mod admission;
pub mod auth;
pub mod cel;
pub mod controllers;
pub mod errors;
pub mod faults;
pub mod fields;
mod handlers;
pub mod kinds;
pub mod meta;
pub mod patch;
mod prepare;
pub mod proto;
pub mod rbac;
pub mod resources;
pub mod schema;
pub mod selectors;
pub mod server;
pub mod smp;
pub mod storage;
pub mod store;
pub mod strategy;
pub mod table;
pub mod validation;
pub mod watch;

pub use faults::{Delay, Fault, Matcher};
pub use server::TestApiServer;
