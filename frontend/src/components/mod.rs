//! Pieces shared by several pages.

pub mod alerts;
pub mod compare_table;
pub mod controls;
pub mod header;
pub mod influencers;
pub mod leaderboard;
pub mod live_map;
pub mod photo;
pub mod range_picker;
pub mod window_picker;
