//! One module per page of the dashboard.

pub mod brand;
pub mod compare;
pub mod feeds;
pub mod health;
pub mod map;
pub mod overview;
pub mod present;
