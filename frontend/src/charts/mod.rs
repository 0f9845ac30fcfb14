//! One chart per module, each drawing one kind of picture from plain data: the
//! sparkline is pure (SVG points), the others paint a canvas and exist only in the
//! browser build.

pub mod sparkline;

#[cfg(target_arch = "wasm32")]
pub mod compare;
#[cfg(target_arch = "wasm32")]
pub mod series;
#[cfg(target_arch = "wasm32")]
pub mod worldmap;
