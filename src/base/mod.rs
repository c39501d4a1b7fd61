//! The bottom layer: text and time helpers every other layer uses.
//! Owns shell quoting, secret masking and clocks. Imports nothing from the
//! crate.

pub mod limits;
pub mod secrets;
pub mod shell;
pub mod time;
